"""``sapnet-export trt``: build a TensorRT or TensorRT-RTX engine (fp32, fp16, int8) with its sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from . import options as opts
from .options import MAX_PSNR_DB, AllowForeignOpt, MaxMegapixelsOpt, number
from ._app import (StagesOpt, app, console, err_console, held_out_source, print_coverage,
                   print_held_out_warning, print_qat_note)


@app.command("trt")
def trt_command(
    weights: Annotated[Optional[str], typer.Option(
        "--weights", "-w", help="Checkpoint path, 'default' or 'official': export (and convert) to ONNX first, "
        "beside the engine as OUTPUT.onnx. Default 'default' unless --onnx is given.")] = None,
    onnx_file: Annotated[Optional[Path], typer.Option(
        "--onnx", help="Build from this ONNX (any precision from 'sapnet-export onnx').")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 compute (the graph is converted).")] = False,
    int8: Annotated[bool, typer.Option(
        "--int8", help="int8 QDQ graph, TensorRT profile; needs --calib.")] = False,
    calib: opts.CalibOpt = None,
    calib_method: opts.Int8CalibMethodOpt = "auto",
    keep_fp32: opts.KeepFp32Opt = None,
    float_precision: opts.FloatPrecisionOpt = "fp32",
    images: Annotated[Optional[list[Path]], typer.Option(
        "--images", help="Held-out images to check the converted ONNX's fidelity on (int8 without "
        "them: 4 built-in heavy-rain frames, which warn below the gate). Repeatable.")] = None,
    min_psnr: Annotated[Optional[float], number(
        "--min-psnr", min=0, max=MAX_PSNR_DB, help="Fidelity threshold in dB for the ONNX conversion (see 'onnx --help').")] = None,
    stages: StagesOpt = None,
    shapes: Annotated[Optional[str], typer.Option(
        "--shapes", metavar="MIN:OPT:MAX", help="Optimization profile, NxCxHxW or HxW each, e.g. "
        "1x3x64x64:1x3x480x640:1x3x1080x1920 (default; int8: OPT at the calibration size).")] = None,
    target: Annotated[Optional[list[str]], typer.Option(
        "--target", help="TensorRT-RTX: compute capability to compile for: sm75, sm80, sm86, sm89, "
        "sm120, sm121 (repeatable). Required without a GPU; default: the GPU present.")] = None,
    builder: Annotated[str, typer.Option(
        "--builder", help="auto (TensorRT with a GPU, else TensorRT-RTX) | tensorrt | tensorrt-rtx.")] = "auto",
    timing_cache: Annotated[Optional[Path], typer.Option(
        "--timing-cache", help="Timing cache file, read and updated (full TensorRT; TensorRT-RTX "
        "has none).")] = None,
    workspace: Annotated[Optional[int], typer.Option(
        "--workspace", metavar="MiB", min=1, help="Workspace memory pool limit in MiB.")] = None,
    opt_level: Annotated[int, typer.Option(
        "--opt-level", min=0, max=5, help="Builder optimization level 0..5 (default 3).")] = 3,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Engine file (default engines/sapnet_<precision>.engine); its sidecar "
        "OUTPUT.json is written beside it.")] = None,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    allow_foreign_model: AllowForeignOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
) -> None:
    """Build a TensorRT (GPU present) or TensorRT-RTX (ahead of time, no GPU needed) engine from a
    typed ONNX graph, with a provenance sidecar. From --weights, the ONNX is exported, converted and
    checked against PyTorch first ('onnx')."""
    from sapnet_export.engine.build import BuildOptions, build_engine
    from sapnet_export.errors import InputError
    from sapnet_export.engine.sidecar import parse_profile, sidecar_path
    from sapnet_export.fileio import check_output

    if fp16 and int8:
        raise InputError("--fp16 and --int8: choose one")
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    if onnx_file is not None and weights is not None:
        raise InputError("--weights and --onnx: give one (the ONNX already holds its weights)")
    if calib is not None and not int8:
        raise InputError("--calib is for --int8")
    if int8 and onnx_file is None and calib is None:
        raise InputError("--int8 needs a calibration set: --calib DIR (make one with 'sapnet-export "
                         "calib build')")
    options = BuildOptions(builder=builder, profile=parse_profile(shapes) if shapes else None,
                           targets=tuple(target or ()), timing_cache=timing_cache,
                           workspace_mib=workspace, opt_level=opt_level)
    output = output or Path(f"engines/sapnet_{precision}.engine")
    if onnx_file is None:  # weights -> ONNX beside the engine -> engine
        from sapnet_export.export.onnx_export import ExportOptions

        int8_options = opts.int8_options(calib, method=calib_method, keep_fp32=keep_fp32, int8_flag="--int8",
                                         float_precision=float_precision)
        export = ExportOptions(stages=stages, precision=precision, min_psnr_db=min_psnr, int8=int8_options)
        _from_weights(weights or "default", output, export, options, images, force, max_megapixels)
        return
    if calib is not None or keep_fp32 or float_precision != "fp32":
        raise InputError("--calib/--keep-fp32/--float-precision convert weights; an --onnx graph already "
                         "carries its precision (convert with 'sapnet-export onnx --precision int8')")
    check_output(output, force=force, option="--output")
    check_output(sidecar_path(output), option="--output (its sidecar)")
    if timing_cache is not None:
        check_output(timing_cache, option="--timing-cache")
    with console.status(f"building the engine from {onnx_file}..."):
        result = build_engine(onnx_file, output, options, force=force,
                              expect_precision=precision if (fp16 or int8) else None,
                              expect_stages=stages, allow_foreign_model=allow_foreign_model)
    _print_engine(result)


def _print_engine(result) -> None:  # noqa: ANN001 - EngineResult
    """The build's warnings and a table of what the sidecar records."""
    side = result.sidecar
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    table = Table(title=f"engine {result.path}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    target_text = ", ".join(side["target"]["compute_capabilities"])
    rows = (("builder", f"{side['builder']['name']} {side['builder']['version']}"),
            ("target", target_text + (f" ({side['target']['gpu']})" if side["target"]["gpu"] else "")),
            ("precision", side["precision"]), ("stages", str(side["stages"])),
            ("profile (min:opt:max)", ":".join("x".join(map(str, side["profile"][k]))
                                               for k in ("min", "opt", "max"))),
            ("layers (type precision: count)", ", ".join(f"{k}: {v}" for k, v in
                                                        side["layers"]["precisions"].items())),
            ("build time", f"{result.build_s:.1f} s"), ("size", f"{result.size_bytes / 1e6:.1f} MB"),
            ("onnx", f"{side['files']['onnx']} (sha256 {side['sha256']['onnx'][:12]})"),
            ("sidecar", str(result.sidecar_path)),
            *((("model identity", f"FOREIGN MODEL (--allow-foreign-model): {side['foreign_model']}"),)
              if side.get("foreign_model") else ()))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    console.print(f"[green]wrote[/] {result.path} with {side['builder']['name']} "
                  f"{side['builder']['version']} for {target_text}")


def _from_weights(weights: str, output: Path, export, build, images: list[Path] | None,  # noqa: ANN001
                  force: bool, max_megapixels: float) -> None:
    """:func:`~sapnet_export.engine.from_weights.export_and_build` with ``export`` (ExportOptions) and
    ``build`` (BuildOptions), printing the export's check and the engine."""
    from sapnet_export.data.frame_guard import check_images
    from sapnet_export.data.images import discover_images
    from sapnet_export.engine.from_weights import export_and_build
    from sapnet_export.model.checkpoints import load_weights

    items = discover_images(images) if images else []
    check_images([path for path, _ in items], max_megapixels=max_megapixels, backends=["torch", "onnxruntime"])
    model, info = load_weights(weights)
    console.print(f"weights: {info.name} -> {info.path} (sha256 {info.sha256[:12]})")
    status = console.status(f"exporting {export.precision} ONNX and checking it against PyTorch...")
    status.start()
    try:
        def exported(result) -> None:  # noqa: ANN001 - ExportResult
            status.stop()
            _print_export(result, export.precision)
            print_qat_note(result.report, info, result.path)
            status.update(f"building the engine from {result.path}...")
            status.start()

        _, engine = export_and_build(model, info, output, export, build, images=items, force=force,
                                     on_exported=exported)
    finally:
        status.stop()
    _print_engine(engine)


def _print_export(result, precision: str) -> None:  # noqa: ANN001 - ExportResult
    """The exported ONNX's coverage, its check against PyTorch, and where it was written."""
    print_coverage(result.report)
    print_held_out_warning(result.report)
    summary = result.report["held_out"]["summary"]
    if summary["images"]:
        console.print(f"{precision} ONNX vs PyTorch fp32 on {summary['images']} held-out images"
                      f"{held_out_source(result.report)}: "
                      f"mean {summary['fidelity']['psnr_mean_db']:.1f} dB, min "
                      f"{summary['fidelity']['psnr_min_db']:.1f} dB")
        if summary.get("quality") and summary.get("reference_quality"):
            change = summary["quality"]["psnr_y"] - summary["reference_quality"]["psnr_y"]
            console.print(f"Y-PSNR vs ground truth: {summary['quality']['psnr_y']:.2f} dB "
                          f"({change:+.2f} dB against PyTorch fp32)")
    else:  # fp32, fp16 without --images (int8 always has held-out images: the built-in ones)
        worst = min(row.fidelity.psnr_db for row in result.probes)
        console.print(f"{precision} ONNX vs PyTorch fp32 on {len(result.probes)} random probes: min "
                      f"{worst:.1f} dB (threshold {result.report['fidelity_threshold_db']:.0f} dB)")
    console.print(f"[green]wrote[/] {result.path} ({result.size_bytes / 1e6:.2f} MB) and its report")
