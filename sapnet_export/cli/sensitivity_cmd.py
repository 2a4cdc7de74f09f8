"""``sapnet-export sensitivity``: which groups cost the most fidelity when quantized to INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options as opts
from ._app import (StagesOpt, WeightsOpt, app, console, fmt_db, load_calibration_warning_if_stale,
                   print_coverage)


@app.command("sensitivity")
def sensitivity_command(
    calib: opts.CalibRequiredOpt,
    data: Annotated[list[Path], typer.Option(
        "--data", help="Held-out image files or folders (never calibration frames). Repeatable.")],
    weights: WeightsOpt = "default",
    stages: StagesOpt = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, help="Use at most this many held-out images, evenly spaced.")] = 8,
    qdq_profile: opts.QdqProfileOpt = "tensorrt",
    calib_method: opts.CalibMethodOpt = "percentile",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="JSON report (default: sensitivity-PROFILE.json in the current "
        "folder).")] = None,
) -> None:
    """Quantize one group at a time (everything else float) and rank the groups by the fidelity they
    cost: PSNR of the output against PyTorch fp32 on held-out images, lowest first."""
    from sapnet_export.errors import InputError
    from sapnet_export.measure.evaluation import prepare_held_out
    from sapnet_export.export.onnx_export import DEFAULT_OPSET, to_onnx_proto
    from sapnet_export.fileio import write_json
    from sapnet_export.data.images import discover_images, evenly_spaced
    from sapnet_export.export.int8.sensitivity import Int8Session, describe_mix, group_sensitivity
    from sapnet_export.export.int8.quantize import check_int8_options
    from sapnet_export.runners.torch_runner import TorchRunner
    from sapnet_export.model.checkpoints import load_weights

    from sapnet_export.fileio import check_output

    output = check_output(output or Path(f"sensitivity-{qdq_profile}.json"), option="--output")
    check_int8_options(qdq_profile, calib_method)
    calibration = load_calibration_warning_if_stale(calib)
    items = discover_images(data)
    items = evenly_spaced(items, limit)
    model, info = load_weights(weights)
    try:
        stages = model.resolve_stages(stages)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with console.status(f"PyTorch fp32 references on {len(items)} held-out images..."):
        held_out = prepare_held_out(TorchRunner(model, info, stages=stages), items,
                                    exclude_sha256=calibration.source_sha256)
    session = Int8Session(to_onnx_proto(model, stages, DEFAULT_OPSET, None), calibration.frames,
                          held_out, profile=qdq_profile, calib_method=calib_method)
    try:
        with console.status("calibrating, then quantizing the whole network...") as status:
            full = session.trial(session.quantizable_groups)
            session.on_trial = lambda trial: status.update(
                f"measured {trial.int8_groups[0]} alone: {fmt_db(trial.min_psnr_db)} dB")
            ranking = group_sensitivity(session)
            status.update("calibration coverage on the held-out images...")
            coverage = session.coverage().as_dict()
    finally:
        session.close()
    table = Table(title=f"INT8 sensitivity ({qdq_profile} profile, {calib_method}; {len(items)} held-out "
                        "images; fidelity vs PyTorch fp32)")
    for column in ("rank", "group int8 alone", "share of MACs", "min dB", "mean dB"):
        table.add_column(column, justify="right" if column != "group int8 alone" else "left")
    for rank, trial in enumerate(ranking, 1):
        table.add_row(str(rank), trial.int8_groups[0], f"{100 * trial.int8_mac_share:.1f}%",
                      fmt_db(trial.min_psnr_db), fmt_db(trial.mean_psnr_db))
    table.add_row("", "all groups (full INT8)", f"{100 * full.int8_mac_share:.1f}%",
                  fmt_db(full.min_psnr_db), fmt_db(full.mean_psnr_db))
    console.print(table)
    print_coverage({"int8": {"coverage": coverage}})
    write_json(output, {
        "format": "sapnet-export/sensitivity-v1", "profile": qdq_profile, "calib_method": calib_method,
        "calibration": str(calib), "calibration_frames_sha256": calibration.sha256,
        "checkpoint": info.name, "checkpoint_sha256": info.sha256, "stages": stages,
        "held_out_images": [str(p) for p, _ in items],
        "reference": "PyTorch fp32 (CPU)", "full_int8": describe_mix(full),
        "ranking": [describe_mix(t) for t in ranking], "coverage": coverage})
    console.print(f"[green]wrote[/] {output}")
