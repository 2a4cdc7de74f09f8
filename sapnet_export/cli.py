"""The ``sapnet-export`` command: one sub-command per stage of the pipeline.

Exit codes: 0 success; 1 a check failed (fidelity, failed images); 2 usage or input error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .derain import DEFAULT_MAX_MEGAPIXELS
from .errors import CheckFailed, SapnetError

console = Console()
err_console = Console(stderr=True)


class _Group(TyperGroup):
    """Turns toolkit errors into one red line on stderr and the documented exit code."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except SapnetError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="SAPNet deraining: weights -> ONNX -> engines, with proof of quality and speed.")

WeightsOpt = Annotated[str, typer.Option(
    "--weights", "-w", help="Checkpoint path, or 'official' (published SAPNet Model11; "
    "$SAPNET_WEIGHTS, torch hub cache, or download; sha256-verified).")]
StagesOpt = Annotated[Optional[int], typer.Option(
    "--stages", min=1, max=6, help="Recurrent stages to run, 1..6 (early exit: fewer is faster, "
    "lower quality). Default: all the checkpoint has.")]


def _fmt_db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1f}"


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"sapnet-export {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                                is_eager=True, help="Print the version.")] = False
          ) -> None:
    """SAPNet deraining: weights -> ONNX -> engines, with proof of quality and speed."""


@app.command("onnx")
def onnx_command(
    weights: WeightsOpt = "official",
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .onnx file.")]
    = Path("engines/sapnet.onnx"),
    stages: StagesOpt = None,
    static: Annotated[Optional[str], typer.Option(
        "--static", metavar="HxW", help="Fix the input to 1x3xHxW (default: N, H, W dynamic).")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17..20.")] = 17,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32, or fp16 (float16 compute, float32 graph input and output).")]
    = "fp32",
    images: Annotated[Optional[list[Path]], typer.Option(
        "--images", help="Image files or folders to check PyTorch/ONNX Runtime parity on "
        "(besides random probes). Repeatable.")] = None,
    min_psnr: Annotated[Optional[float], typer.Option(
        "--min-psnr", help="Fidelity threshold in dB (ONNX Runtime vs PyTorch fp32, every input). "
        "Default by precision: fp32 80, fp16 60.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Export the derain network to ONNX (fp32 or fp16), then verify it against PyTorch before keeping it."""
    from .export import export_onnx, parse_hw
    from .images import discover_images
    from .weights import load_weights

    static_hw = parse_hw(static) if static else None
    image_paths = [p for p, _ in discover_images(images)] if images else []
    model, info = load_weights(weights)
    console.print(f"weights: {info.name} -> {info.path} ({info.layout}, {info.source}, "
                  f"sha256 {info.sha256[:12]})")
    table = Table(title=f"fidelity: ONNX Runtime (CPU) {precision} vs PyTorch fp32")
    table.add_column("input", overflow="fold")
    for column in ("shape", "max abs", "PSNR dB", "torch s", "onnxruntime s"):
        table.add_column(column, justify="right", no_wrap=True)

    def add_row(row) -> None:
        table.add_row(row.name, "x".join(map(str, row.shape)), f"{row.max_abs:.2e}",
                      _fmt_db(row.psnr_db), f"{row.torch_s:.2f}", f"{row.onnxruntime_s:.2f}")

    try:
        with console.status("exporting and checking parity..."):
            result = export_onnx(model, info, output, stages=stages, opset=opset, precision=precision,
                                 static_hw=static_hw,
                                 images=image_paths, min_psnr_db=min_psnr, force=force,
                                 on_row=add_row)
    finally:
        if table.rows:
            console.print(table)
    meta = result.metadata
    if precision == "fp16":
        console.print(f"fp16: compute nodes kept in float32: {meta['fp32_nodes']}; weights clamped "
                      f"to +-1e-7 by the converter: {meta['fp16_clamped_weights']}")
    console.print(f"[green]wrote[/] {result.path}: {meta['precision']}, {result.size_bytes / 1e6:.2f} MB, "
                  f"opset {opset}, {meta['stages']} stages, {meta['shape']}, exported in "
                  f"{result.export_s:.1f} s; fidelity on all {len(result.parity)} inputs: min "
                  f"{_fmt_db(min(r.psnr_db for r in result.parity))} dB")


@app.command("derain")
def derain_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and folders.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for PNGs.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="torch | onnxruntime.")] = "torch",
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model file for file-based backends (.onnx).")] = None,
    weights: WeightsOpt = "official",
    stages: StagesOpt = None,
    device: Annotated[str, typer.Option(
        "--device", help="cpu, cuda (torch, onnxruntime) or tensorrt (ONNX Runtime's TensorRT "
        "provider). Never falls back.")] = "cpu",
    max_megapixels: Annotated[float, typer.Option(
        "--max-megapixels", help="Refuse larger frames (memory: ~1.1 GB per megapixel).")] = DEFAULT_MAX_MEGAPIXELS,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="Stop at the first file that fails.")] = False,
) -> None:
    """Derain image files and folders into OUTPUT as 8-bit PNGs, with a latency summary."""
    from .derain import derain_files
    from .images import discover_images
    from .runners import create_runner

    items = discover_images(inputs)
    runner = create_runner(backend, model=model, weights=weights, stages=stages, device=device)
    info = runner.info
    console.print(f"backend {info.backend}, precision {info.precision}, device {info.device}, "
                  f"{info.stages} stages, model {info.model}, "
                  + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("deraining", total=len(items))
        summary = derain_files(runner, items, output, fail_fast=fail_fast,
                               max_megapixels=max_megapixels,
                               on_done=lambda _: progress.advance(task))
    for path, reason in summary.failures:
        err_console.print(f"[red]failed[/] {reason}")
    table = Table(title=f"derain summary -> {output}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in (("images written", str(len(summary.written))),
                       ("failed", str(len(summary.failures))),
                       ("median s/image", f"{summary.median_s:.3f}"),
                       ("p90 s/image", f"{summary.p90_s:.3f}"),
                       ("megapixels/s", f"{summary.megapixels_per_s:.3f}"),
                       ("backend", info.backend), ("precision", info.precision),
                       ("device", info.device), ("stages", str(info.stages))):
        table.add_row(key, value)
    console.print(table)
    if summary.failures:
        raise CheckFailed(f"{len(summary.failures)} of {len(items)} images failed")


def main() -> None:
    """Console-script entry point (``sapnet-export``)."""
    app()
