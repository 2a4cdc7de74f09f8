"""``sapnet-export sensitivity``: which groups cost the most fidelity when quantized to INT8
(:func:`sapnet_export.export.int8.scan.scan_sensitivity`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from . import options as opts
from .options import MaxMegapixelsOpt
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
    calib_method: opts.CalibMethodOpt = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="JSON report (default: sensitivity-PROFILE.json in the current "
        "folder).")] = None,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
) -> None:
    """Quantize one group at a time (everything else float) and rank the groups by the fidelity they
    cost: PSNR of the output against PyTorch fp32 on held-out images, lowest first."""
    from sapnet_export.data.images import discover_images, evenly_spaced
    from sapnet_export.export.int8.quantize import analysis_calib_method, check_int8_options
    from sapnet_export.export.int8.scan import scan_sensitivity
    from sapnet_export.fileio import check_output, write_json
    from sapnet_export.model.checkpoints import load_weights

    output = check_output(output or Path(f"sensitivity-{qdq_profile}.json"), option="--output")
    calib_method = calib_method or analysis_calib_method(qdq_profile)
    check_int8_options(qdq_profile, calib_method)
    calibration = load_calibration_warning_if_stale(calib)
    items = evenly_spaced(discover_images(data), limit)
    from sapnet_export.data.frame_guard import check_images

    check_images([path for path, _ in items], max_megapixels=max_megapixels, backends=["torch", "onnxruntime"])
    model, info = load_weights(weights)
    with console.status("starting...") as status:
        scan = scan_sensitivity(
            model, info, calibration, items, stages=stages, profile=qdq_profile, method=calib_method,
            on_step=status.update,
            on_trial=lambda trial: status.update(
                f"measured {trial.int8_groups[0]} alone: {fmt_db(trial.min_psnr_db)} dB"))
    table = Table(title=f"INT8 sensitivity ({qdq_profile} profile, {calib_method}; {len(items)} held-out "
                        "images; fidelity vs PyTorch fp32)")
    for column in ("rank", "group int8 alone", "share of MACs", "min dB", "mean dB"):
        table.add_column(column, justify="right" if column != "group int8 alone" else "left")
    for rank, trial in enumerate(scan.ranking, 1):
        table.add_row(str(rank), trial.int8_groups[0], f"{100 * trial.int8_mac_share:.1f}%",
                      fmt_db(trial.min_psnr_db), fmt_db(trial.mean_psnr_db))
    table.add_row("", "all groups (full INT8)", f"{100 * scan.full.int8_mac_share:.1f}%",
                  fmt_db(scan.full.min_psnr_db), fmt_db(scan.full.mean_psnr_db))
    console.print(table)
    print_coverage({"int8": {"coverage": scan.coverage}})
    write_json(output, scan.report)
    console.print(f"[green]wrote[/] {output}")
