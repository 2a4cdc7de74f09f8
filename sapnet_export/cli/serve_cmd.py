"""``sapnet-export serve``: serve a model on a real Triton Inference Server (PyTriton) on this machine."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from sapnet_export.errors import InputError
from sapnet_export.model.tiling import DEFAULT_OVERLAP
from sapnet_export.run.derain import DEFAULT_MAX_MEGAPIXELS
from ._app import BACKEND_HELP, DeviceOpt, ModelOpt, StagesOpt, WeightsOpt, app, console
from .options import MaxMegapixelsOpt
from .run_cmd import _tile

PortOpt = lambda flag, default, what: Annotated[int, typer.Option(  # noqa: E731 - three alike options
    flag, min=1, max=65535, help=f"TCP port of {what} (Triton's default {default}).")]


@app.command("serve")
def serve_command(
    model: ModelOpt = None,
    weights: WeightsOpt = "default",
    backend: Annotated[Optional[str], typer.Option(
        "--backend", "-b", help=BACKEND_HELP + " Default: onnxruntime with --model, torch without.")] = None,
    device: DeviceOpt = None,
    stages: StagesOpt = None,
    name: Annotated[str, typer.Option("--name", help="Triton model name.")] = "sapnet",
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; 0.0.0.0 serves every interface.")] = "127.0.0.1",
    http_port: PortOpt("--http-port", 8000, "HTTP/REST (KServe v2) and health") = 8000,
    grpc_port: PortOpt("--grpc-port", 8001, "gRPC") = 8001,
    metrics_port: PortOpt("--metrics-port", 8002, "Prometheus metrics (/metrics)") = 8002,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", min=1, max=256, help="max_batch_size: frames per model call; 1 turns dynamic "
        "batching off. Frames of different sizes are never batched together.")] = 4,
    batch_delay_us: Annotated[int, typer.Option(
        "--batch-delay-us", min=0, max=10_000_000, help="max_queue_delay_microseconds: how long the "
        "dynamic batcher may hold a request to fill a batch.")] = 0,
    instances: Annotated[int, typer.Option(
        "--instances", min=1, max=64, help="Model instances, each with its own Runner, run in parallel.")] = 1,
    tile: Annotated[Optional[str], typer.Option(
        "--tile", help="Run frames larger than HxW as overlapping tiles.")] = None,
    overlap: Annotated[int, typer.Option(
        "--overlap", min=0, max=4096, help="Pixels shared by neighbouring tiles.")] = DEFAULT_OVERLAP,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    log: Annotated[Optional[Path], typer.Option(
        "--log", help="tritonserver's log file (default: a temporary file, named on failure).")] = None,
) -> None:
    """Serve the model on Triton Inference Server until SIGINT/SIGTERM (in-flight requests finish).

    Input 'rainy' FP32 [-1, 3, -1, -1] in [0, 1], output 'derained' FP32 of the same shape; verify it
    with: sapnet-export verify grpc://HOST:GRPC_PORT/NAME --data FOLDER (docs/serving.md)."""
    from sapnet_export.runners import create_runner
    from sapnet_export.serve.server import ServeOptions, serve

    if backend == "triton":
        raise InputError("--backend triton: serve runs the model itself; give --model F.onnx or --weights")
    options = ServeOptions(name=name, host=host, http_port=http_port, grpc_port=grpc_port,
                           metrics_port=metrics_port, max_batch=max_batch, batch_delay_us=batch_delay_us,
                           instances=instances, max_megapixels=max_megapixels, tile=_tile(tile),
                           overlap=overlap, log_file=log)
    chosen = backend or ("onnxruntime" if model else "torch")

    def make_runner():  # noqa: ANN202 - Runner
        return create_runner(chosen, model=model, weights=weights, stages=stages, device=device)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(served) -> None:  # noqa: ANN001 - Served
        info = served.models[0].runner.info
        console.print(f"serving {name}: backend {info.backend}, precision {info.precision}, device "
                      f"{info.device}, {info.stages} stages, model {info.model}; max batch {max_batch}, "
                      f"batch delay {batch_delay_us} us, {instances} instance(s)")
        for kind, url in served.urls.items():
            console.print(f"  {kind:8s} {url}")
        console.print(f"ready (tritonserver log: {served.log_file}); stop with Ctrl-C or SIGTERM", highlight=False)

    served = serve(make_runner, options, stop, on_ready=ready)
    console.print(f"stopped; {sum(len(m.batches) for m in served.models)} model calls, "
                  f"{sum(sum(m.batches) for m in served.models)} frames")
