"""``sapnet-export bench``: every form of the model this machine can run, verified and timed in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _results as shared
from . import options as opts
from sapnet_export.errors import InputError
from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from .options import MaxMegapixelsOpt
from ._app import WeightsOpt, app, console, load_calibration_warning_if_stale


def parse_stage_list(text: str) -> list[int]:
    """``--stages`` of bench: ``6``, ``1-6`` or ``1,3,6`` -> sorted distinct stage counts in 1..6.

    Raises:
        InputError: anything else.
    """
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            values.update(range(int(low), int(high or low) + 1))
    except ValueError:
        values = set()
    if not values or min(values) < 1 or max(values) > 6:
        raise InputError(f"--stages {text!r}: expected K, K1-K2 or K1,K2,... within 1..6")
    return sorted(values)


@app.command("bench")
@opts.verification_options
def bench_command(
    data: opts.DataOpt,
    gt: opts.GtOpt = None,
    weights: WeightsOpt = "default",
    stages: Annotated[Optional[str], typer.Option(
        "--stages", help="Recurrent stages: K, or several (1-6, 2,4,6): one bench per K, each into "
        "WORKDIR/kK with --json/--report naming a folder that gets kK.json / kK/ (the --configs of "
        "'run --target-fps'). Default: all the checkpoint has.")] = None,
    calib: opts.CalibOpt = None,
    formats: Annotated[Optional[str], typer.Option(
        "--formats", help="Comma-separated: torch, onnx, onnx-fp16, onnx-int8-cpu, onnx-int8-tensorrt, "
        "openvino, openvino-bf16, openvino-int8 (NNCF), openvino-int8-bf16, tensorrt, tensorrt-fp16, "
        "tensorrt-int8 (default: all; engines only with a GPU).")] = None,
    workdir: Annotated[Path, typer.Option(
        "--workdir", help="Where the ONNX files and engines are made (replaced each run).")] = Path("engines/bench"),
    log: Annotated[Path, typer.Option("--log", help="Append a JSON line per run here.")] = Path("engines/bench.log"),
    triton: Annotated[Optional[list[str]], typer.Option(
        "--triton", metavar="URL", help="A model served by Triton (grpc://HOST:PORT/NAME or "
        "http://HOST:PORT/NAME, e.g. by 'sapnet-export serve') to verify and time beside the formats "
        "(repeatable).")] = None,
    checks: opts.VerificationArgs = opts.VerificationArgs(),
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
) -> None:
    """Make each format from the weights (ONNX fp32/fp16/int8, engines on a GPU), verify it against
    PyTorch fp32 on --data (fidelity; quality with --gt), time it, and print one row per format. Exit 0
    even when a format fails its gates (the table says so); 2 on usage or input errors."""
    from sapnet_export.runners.triton_runner import is_triton_url
    from sapnet_export.verify.bench import parse_formats
    from sapnet_export.engine.trt_api import current_gpu
    from sapnet_export.model.checkpoints import load_weights

    from sapnet_export.fileio import check_output

    sweep = parse_stage_list(stages) if stages else [None]
    json_path, report = checks.json_path, checks.report
    shared.check_outputs(json_path, report, several=len(sweep) > 1)
    check_output(workdir, kind="folder", option="--workdir")
    check_output(log, option="--log")
    gpu = current_gpu() is not None
    names = parse_formats(formats, gpu=gpu)
    served = list(triton or [])
    for url in served:
        if not is_triton_url(url):
            raise InputError(f"--triton {url}: expected grpc://HOST:PORT/NAME or http://HOST:PORT/NAME")
    calibration = load_calibration_warning_if_stale(calib) if calib is not None else None
    items, unmatched = shared.discover_with_ground_truth(data, gt, checks.limit)
    shared.guard_sizes(items, checks.sizes, max_megapixels, ["torch", "onnxruntime"])
    model, info = load_weights(weights)
    if sweep[-1] is not None and sweep[-1] > model.stages:
        raise InputError(f"--stages {stages}: {info.name} has {model.stages} stages")
    several = len(sweep) > 1
    for k in sweep:
        _bench_once(model, info, k, names, served, calibration, items, unmatched, gpu=gpu,
                    workdir=workdir / f"k{k}" if several else workdir,
                    json_path=json_path / f"k{k}.json" if several and json_path else json_path,
                    report=report / f"k{k}" if several and report else report, log=log,
                    options=dict(data=data, gt=gt, checks=checks))


def _bench_once(model, info, stages, names, served, calibration, items, unmatched, *, gpu,  # noqa: ANN001
                workdir, json_path, report, log, options) -> None:
    """One bench at ``stages`` (:func:`~sapnet_export.verify.bench.run_bench`): print and write the results."""
    from sapnet_export.verify.bench import append_log, run_bench
    from sapnet_export.runners.torch_runner import TorchRunner

    reference = TorchRunner(model, info, stages=stages, device="cpu")
    console.print(f"reference: torch fp32 on the CPU, {info.name} (sha256 {info.sha256[:12]}), "
                  f"{reference.info.stages} stages; {len(items)} images; formats: {', '.join(names + served)}")

    def made(target) -> None:  # noqa: ANN001 - verify.targets.Target
        console.print(f"{target.name}: " + (f"[red]failed[/] {target.reason}" if target.status == "failed"
                                           else f"{target.file or 'PyTorch'} ({target.backend} {target.precision})"))

    with shared.verification_args(options["checks"], data=options["data"], gt=options["gt"],
                                  unmatched=unmatched, count=len(items)) as (args, describe):
        verification = run_bench(model, info, reference, names, items, workdir=workdir,
                                 calibration=calibration, stages=stages, gpu=gpu, served=served,
                                 on_step=lambda name: describe(f"making {name}"), on_made=made, **args)
    shared.finish(verification, f"bench: {reference.info.stages} stages, {len(items)} images, "
                                f"{verification.payload['machine']['cpu']}",
                  json_path, report)
    append_log(log, verification.payload)
    console.print(f"appended a line to {log}")
