"""``sapnet-export triton-repo``: a model repository entry for NVIDIA Triton Inference Server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sapnet_export.errors import InputError
from sapnet_export.shapes import parse_sizes
from ._app import app, console, err_console


@app.command("triton-repo")
def triton_repo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Model repository folder (REPO).")],
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="ONNX export to serve.")] = None,
    engines: Annotated[Optional[list[Path]], typer.Option(
        "--engine", help="TensorRT engine(s) from 'sapnet-export trt' with their sidecars, one per GPU "
        "compute capability; repeatable.")] = None,
    name: Annotated[str, typer.Option("--name", help="Model name (REPO/NAME).")] = "sapnet",
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=256,
                                           help="max_batch_size.")] = 4,
    instances: Annotated[int, typer.Option("--instances", min=1, max=64,
                                           help="Instances per device (instance_group count).")] = 1,
    kind: Annotated[str, typer.Option("--kind", help="cpu or gpu (instance_group kind).")] = "cpu",
    trt_accelerator: Annotated[Optional[str], typer.Option(
        "--trt-accelerator", help="fp16: ONNX Runtime's TensorRT execution accelerator (--kind gpu).")] = None,
    openvino_accelerator: Annotated[bool, typer.Option(
        "--openvino-accelerator", help="ONNX Runtime's OpenVINO execution accelerator (--kind cpu).")] = False,
    batch_delay_us: Annotated[int, typer.Option(
        "--batch-delay-us", min=0, max=10_000_000, help="dynamic_batching max_queue_delay_microseconds.")] = 0,
    warmup: Annotated[str, typer.Option(
        "--warmup", help="HxW of the warm-up frame Triton runs when it loads the model.")] = "480x640",
    container_tensorrt: Annotated[Optional[str], typer.Option(
        "--container-tensorrt", metavar="X.Y.Z", help="TensorRT version of the Triton container that "
        "will serve the --engine plans (its release notes list it); a plan built by another version is "
        "refused, since TensorRT loads only engines of its own version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing REPO/NAME.")] = False,
) -> None:
    """Write REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx (or model_smXY.plan per compute
    capability), checked by Triton's ModelConfig protobuf first; serve with the NGC container
    (docs/serving.md)."""
    from sapnet_export.serve.repository import RepoOptions, write_repository

    if kind not in ("cpu", "gpu"):
        raise InputError(f"--kind {kind!r}: choose cpu or gpu")
    if trt_accelerator not in (None, "fp16", "fp32"):
        raise InputError(f"--trt-accelerator {trt_accelerator!r}: choose fp16 (or fp32)")
    sizes = parse_sizes(warmup, "--warmup")
    if len(sizes) != 1:
        raise InputError(f"--warmup {warmup!r}: expected one HxW, e.g. 480x640")
    options = RepoOptions(name=name, max_batch=max_batch, instances=instances, kind=kind,
                          trt_accelerator=trt_accelerator, openvino_accelerator=openvino_accelerator,
                          batch_delay_us=batch_delay_us, warmup=sizes[0],
                          container_tensorrt=container_tensorrt)
    if container_tensorrt is not None and not engines:
        raise InputError("--container-tensorrt checks TensorRT plans: give --engine")
    final = write_repository(output, options, onnx=onnx, engines=engines or None, force=force)
    if engines and container_tensorrt is None:
        err_console.print("[yellow]warning:[/] a TensorRT plan loads only in a container whose TensorRT "
                          "built it (config parameter sapnet.tensorrt_version); pass "
                          "--container-tensorrt X.Y.Z to check it against the container you will run")
    console.print(f"wrote {final}/config.pbtxt and {final}/1/ "
                  f"({', '.join(p.name for p in sorted((final / '1').iterdir()))}); serve it with: docker run "
                  f"--rm -p8000:8000 -p8001:8001 -p8002:8002 -v {output.resolve()}:/models "
                  "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models "
                  "(docs/serving.md)", highlight=False)
