"""``sapnet-export bench``: every form of the model this machine can run, verified and timed in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _results as shared
from ._app import StagesOpt, WeightsOpt, app, console, load_calibration_warning_if_stale


@app.command("bench")
def bench_command(
    data: shared.DataOpt,
    gt: shared.GtOpt = None,
    weights: WeightsOpt = "default",
    stages: StagesOpt = None,
    calib: Annotated[Optional[Path], typer.Option(
        "--calib", help="Calibration set for the int8 formats (without it they are rows that failed).")] = None,
    formats: Annotated[Optional[str], typer.Option(
        "--formats", help="Comma-separated: torch, onnx, onnx-fp16, onnx-int8-cpu, onnx-int8-tensorrt, "
        "tensorrt, tensorrt-fp16, tensorrt-int8 (default: all; engines only with a GPU).")] = None,
    workdir: Annotated[Path, typer.Option(
        "--workdir", help="Where the ONNX files and engines are made (replaced each run).")] = Path("engines/bench"),
    log: Annotated[Path, typer.Option("--log", help="Append a JSON line per run here.")] = Path("engines/bench.log"),
    min_psnr: shared.MinPsnrOpt = None,
    max_quality_drop: shared.MaxDropOpt = 0.5,
    json_path: shared.JsonOpt = None,
    report: shared.ReportOpt = None,
    sizes: shared.SizesOpt = None,
    runs: shared.RunsOpt = 20,
    duration: shared.DurationOpt = None,
    limit: shared.LimitOpt = None,
) -> None:
    """Make each format from the weights (ONNX fp32/fp16/int8, engines on a GPU), verify it against
    PyTorch fp32 on --data (fidelity; quality with --gt), time it, and print one row per format. Exit 0
    even when a format fails its gates (the table says so); 2 on usage or input errors."""
    from ..bench import append_log, check_held_out, make_targets, parse_formats
    from ..runners.torch_runner import TorchRunner
    from ..trt_api import current_gpu
    from ..weights import load_weights

    gpu = current_gpu() is not None
    names = parse_formats(formats, gpu=gpu)
    calibration = load_calibration_warning_if_stale(calib) if calib is not None else None
    items, unmatched = shared.discover_with_ground_truth(data, gt, limit)
    check_held_out(items, calibration)
    model, info = load_weights(weights)
    reference = TorchRunner(model, info, stages=stages, device="cpu")
    console.print(f"reference: torch fp32 on the CPU, {info.name} (sha256 {info.sha256[:12]}), "
                  f"{reference.info.stages} stages; {len(items)} images; formats: {', '.join(names)}")
    with console.status("making the formats...") as status:
        targets = make_targets(model, info, reference, names, workdir, calibration=calibration,
                               stages=stages, gpu=gpu, on_step=lambda name: status.update(f"making {name}..."))
    for target in targets:
        console.print(f"{target.name}: " + (f"[red]failed[/] {target.reason}" if target.status == "failed"
                                           else f"{target.file or 'PyTorch'} ({target.backend} {target.precision})"))
    verification = shared.run(reference, info.sha256, targets, items, data=data, gt=gt,
                              min_psnr=min_psnr, max_quality_drop=max_quality_drop, sizes=sizes,
                              runs=runs, duration=duration, unmatched=unmatched)
    shared.finish(verification, f"bench: {len(items)} images, {verification.payload['machine']['cpu']}",
                  json_path, report)
    append_log(log, verification.payload)
    console.print(f"appended a line to {log}")
