"""``sapnet-export derain``: derain files and folders with any backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from sapnet_export.errors import CheckFailed
from .options import AllowForeignOpt, MaxMegapixelsOpt, foreign_note
from ._app import (BackendOpt, DeviceOpt, ForceBf16Opt, ModelOpt, PrecisionOpt, StagesOpt, WeightsOpt,
                   app, console, err_console)


@app.command("derain")
def derain_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and folders.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for PNGs.")],
    backend: BackendOpt = "torch",
    model: ModelOpt = None,
    weights: WeightsOpt = "default",
    stages: StagesOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    force_bf16: ForceBf16Opt = False,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    allow_foreign_model: AllowForeignOpt = False,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="Stop at the first file that fails.")] = False,
) -> None:
    """Derain image files and folders into OUTPUT as 8-bit PNGs, with a latency summary."""
    from sapnet_export.run.derain import derain_files
    from sapnet_export.data.images import discover_images
    from sapnet_export.runners import create_runner

    from sapnet_export.fileio import check_output

    check_output(output, kind="folder", option="--output")
    items = discover_images(inputs)
    runner = create_runner(backend, model=model, weights=weights, stages=stages, device=device,
                           precision=precision, force_bf16=force_bf16,
                           allow_foreign_model=allow_foreign_model)
    info = runner.info
    foreign = foreign_note(info)
    console.print(f"backend {info.backend}, precision {info.precision}, device {info.device}, "
                  f"{info.stages} stages, model {info.model}, "
                  + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    if foreign:
        err_console.print(f"[yellow]warning:[/] {foreign}")
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
                       ("device", info.device), ("stages", str(info.stages)),
                       *((("model identity", foreign),) if foreign else ())):
        table.add_row(key, value)
    console.print(table)
    if summary.failures:
        raise CheckFailed(f"{len(summary.failures)} of {len(items)} images failed")
