"""``sapnet-export onnx``: export, convert (fp16, int8) and verify against PyTorch fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from sapnet_export.export.precision import DEFAULT_MIN_PSNR_DB
from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from . import options as opts
from .options import MAX_PSNR_DB, MaxMegapixelsOpt, number
from ._app import (StagesOpt, WeightsOpt, app, console, fmt_db, held_out_source, print_coverage,
                   print_held_out_warning, print_qat_note, print_summary)


@app.command("onnx")
def onnx_command(
    weights: WeightsOpt = "default",
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .onnx file (its report: "
                                         "OUTPUT.json beside it).")] = Path("engines/sapnet.onnx"),
    stages: StagesOpt = None,
    static: Annotated[Optional[str], typer.Option(
        "--static", metavar="HxW", help="Fix the input to 1x3xHxW (default: N, H, W dynamic).")] = None,
    opset: Annotated[int, typer.Option("--opset", min=17, max=20, help="ONNX opset, 17..20.")] = 17,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32; fp16 (float16 compute, float32 graph input and output); int8 "
        "(QDQ, scales from --calib).")] = "fp32",
    images: Annotated[Optional[list[Path]], typer.Option(
        "--images", help="Held-out image files or folders (never calibration frames) to measure "
        "fidelity on, besides random probes. int8 without them: 4 built-in heavy-rain frames with ground "
        "truth, which warn below the gate instead of refusing (unless --min-psnr). Repeatable.")] = None,
    gt: Annotated[Optional[Path], typer.Option(
        "--gt", help="Ground-truth folder matching --images by name: adds Y-PSNR/SSIM of the "
        "reference and the converted model.")] = None,
    min_psnr: Annotated[Optional[float], number(
        "--min-psnr", min=0, max=MAX_PSNR_DB, help="Fidelity threshold in dB against PyTorch fp32. fp32 (default "
        f"{DEFAULT_MIN_PSNR_DB['fp32']:g}) and fp16 ({DEFAULT_MIN_PSNR_DB['fp16']:g}): every input. int8: "
        "the budget on held-out images (min over images): groups are kept in float until it is met "
        f"(default: full INT8, {DEFAULT_MIN_PSNR_DB['int8']:g} dB floor).")] = None,
    calib: opts.CalibOpt = None,
    calib_method: opts.Int8CalibMethodOpt = "auto",
    qdq_profile: opts.QdqProfileOpt = "tensorrt",
    keep_fp32: opts.KeepFp32Opt = None,
    float_precision: opts.FloatPrecisionOpt = "fp32",
    shared_pooling: Annotated[bool, typer.Option(
        "--shared-pooling", help="Add the input pool_weights [N, 1, H, W] so the tiles of a frame, run "
        "as one batch, share its channel-attention pooling: 'run --tile' then matches the untiled "
        "frame (docs/commands.md 'Tiling'). Whole frames compute as without it.")] = False,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Export the derain network to ONNX (fp32, fp16 or int8), verify it against PyTorch fp32 before
    keeping it, and write a JSON report beside it."""
    from sapnet_export.export.onnx_export import ExportOptions, export_onnx
    from sapnet_export.shapes import parse_hw
    from sapnet_export.data.images import discover_images
    from sapnet_export.model.checkpoints import load_weights
    from sapnet_export.fileio import check_output
    from sapnet_export.data.frame_guard import check_images

    check_output(output, force=force, option="--output")
    check_output(output.with_name(output.name + ".json"), option="--output (its report)")
    static_hw = parse_hw(static) if static else None
    items = discover_images(images) if images else []
    check_images([path for path, _ in items], max_megapixels=max_megapixels, backends=["torch", "onnxruntime"])
    int8 = opts.int8_options(calib, profile=qdq_profile, method=calib_method, keep_fp32=keep_fp32,
                             int8_flag="--precision int8 (with --calib)", float_precision=float_precision)
    model, info = load_weights(weights)
    console.print(f"weights: {info.name} -> {info.path} ({info.layout}, {info.source}, "
                  f"sha256 {info.sha256[:12]})")
    checker = _checker(precision, qdq_profile)
    table = Table(title=f"fidelity: {checker} (CPU) {precision} vs PyTorch fp32")
    table.add_column("input", overflow="fold")
    for column in ("shape", "PSNR dB", "max diff u8", "changed px", "s"):
        table.add_column(column, justify="right", no_wrap=True)
    trials = Table(title="int8 variants measured (min / mean PSNR over held-out images)")
    for column in ("int8 groups", "float groups", "int8 MACs", "min dB", "mean dB"):
        trials.add_column(column, overflow="fold")

    def add_row(row) -> None:
        table.add_row(row.name, "x".join(map(str, row.shape)), fmt_db(row.fidelity.psnr_db),
                      str(row.fidelity.max_abs_u8),
            f"{100 * row.fidelity.changed_pixels:.2f}%", f"{row.seconds:.2f}")

    def add_trial(trial) -> None:
        trials.add_row(_groups(trial.int8_groups), _groups(trial.float_groups),
                       f"{100 * trial.int8_mac_share:.1f}%", fmt_db(trial.min_psnr_db),
                       fmt_db(trial.mean_psnr_db))

    try:
        with console.status(f"exporting ({precision}) and checking fidelity..."):
            options = ExportOptions(stages=stages, opset=opset, precision=precision, static_hw=static_hw,
                                    shared_pooling=shared_pooling, min_psnr_db=min_psnr, int8=int8)
            result = export_onnx(model, info, output, options, images=items, gt_dir=gt, force=force,
                                 on_row=add_row, on_trial=add_trial)
    finally:
        for done in (trials, table):
            if done.rows:
                console.print(done)
    _print_result(result, precision, opset, shared_pooling)
    print_qat_note(result.report, info, result.path)


def _print_result(result, precision: str, opset: int, shared_pooling: bool) -> None:  # noqa: ANN001 - ExportResult
    """What the export converted and kept, the calibration coverage, the held-out summary, the file."""
    meta = result.metadata
    if precision == "fp16":
        kept = meta["fp32_nodes"].split(",") if meta["fp32_nodes"] != "none" else []
        listed = ", ".join(kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
        console.print(f"fp16: compute nodes kept in float32: {len(kept)}{f' ({listed})' if kept else ''}; "
                      "weights clamped "
                      f"to +-1e-7 by the converter: {meta['fp16_clamped_weights']}")
    if precision == "int8":
        console.print(f"int8 ({meta['qdq_profile']} profile, calibration {meta['calib_method']} "
                      f"<{meta['calib_method_from']}>): int8 groups {meta['int8_groups']}; float groups "
                      f"{meta['float_groups']} (--keep-fp32 {meta['keep_fp32']} <{meta['keep_fp32_from']}>); "
                      f"int8 share of Conv MACs {100 * float(meta['int8_mac_share']):.1f}%; the rest in "
                      f"{meta['float_precision']}" + (f" ({meta['fp16_nodes']} nodes)" if meta['float_precision'] == "fp16" else ""))
    print_coverage(result.report)
    print_held_out_warning(result.report)
    summary = result.report["held_out"]["summary"]
    if summary["images"]:
        print_summary(f"held-out images vs PyTorch fp32 ({summary['images']}){held_out_source(result.report)}",
                      summary, checker=f"{_checker(precision, meta.get('qdq_profile'))} CPU")
    console.print(f"[green]wrote[/] {result.path}: {meta['precision']}, {result.size_bytes / 1e6:.2f} MB, "
                  f"opset {opset}, {meta['stages']} stages, {meta['shape']}"
                  f"{', shared pooling (input pool_weights)' if shared_pooling else ''}, converted in "
                  f"{result.export_s:.1f} s; report {result.report_path}")


def _checker(precision: str, profile: str | None) -> str:
    """The Runner that checks the written graph: OpenVINO for the openvino profile's int8."""
    return "OpenVINO" if precision == "int8" and profile == "openvino" else "ONNX Runtime"


def _groups(groups: tuple[str, ...]) -> str:
    return ", ".join(groups) if groups else "-"
