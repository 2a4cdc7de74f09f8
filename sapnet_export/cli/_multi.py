"""``run`` with several sources (``run CAM1 CAM2 ... -o OUTDIR``): the table of every stream."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from sapnet_export.errors import CheckFailed, InputError
from ._app import console, err_console


def run_many(specs: list[str], output: Path | None, *, backend: str, model: str | None, weights: str,
             stages: int | None, device: str | None, precision: str | None, force_bf16: bool,
             tile: tuple[int, int] | None, overlap: int, max_frames: int | None, force: bool,
             max_megapixels: float, allow_foreign_model: bool = False) -> None:
    """Open every source, run them concurrently (:func:`sapnet_export.run.multi.run_streams`) and print
    one row per stream. Exit 1 when a stream failed, 130 when interrupted.

    Raises:
        InputError: OUTDIR is a video file name or cannot be written, a source cannot be opened, or
            the backend cannot be built.
    """
    from sapnet_export.data.stream import check_source, open_source
    from sapnet_export.data.video import VIDEO_SUFFIXES
    from sapnet_export.fileio import check_output
    from sapnet_export.run.multi import run_streams
    from sapnet_export.runners import create_runner

    if output is not None:
        if output.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(f"--output {output}: with several sources, give a folder (OUTDIR); each "
                             "source is written into it")
        check_output(output, kind="folder", force=force, option="--output")

    def make_runner():  # noqa: ANN202 - Runner
        return create_runner(backend, model=model, weights=weights, stages=stages, device=device,
                             precision=precision, force_bf16=force_bf16,
                             allow_foreign_model=allow_foreign_model)

    opened = []
    try:
        for spec in specs:
            opened.append(open_source(spec))
            check_source(opened[-1], backends=[backend], max_megapixels=max_megapixels, tile=tile,
                         video_output=False)  # image folders go to PNG folders (run/multi.py)
        console.print(f"{len(specs)} sources, backend {backend}"
                      + (" (one client per stream: frames meet in the server's dynamic batcher)"
                         if backend == "triton" else " (one Runner, called by one stream at a time)"))
        results = run_streams(specs, opened, make_runner, output, one_runner_per_stream=backend == "triton",
                              tile=tile, overlap=overlap, max_frames=max_frames)
    finally:
        for source in opened:
            source.close()
    table = Table(title="run summary, per stream")
    for column in ("stream", "source", "output", "frames", "failed", "dropped", "p50 / p99 ms", "fps"):
        table.add_column(column, justify="right" if column in ("frames", "failed", "dropped", "fps") else "left")
    for r in results:
        if r.stats is None:
            table.add_row(r.label, r.description, r.output, "-", "-", "-", "-", "-")
            err_console.print(f"[red]stream {r.label} failed:[/] {r.error}", highlight=False)
            continue
        p50, p99 = r.stats.latency_ms(50), r.stats.latency_ms(99)
        table.add_row(r.label, r.description, r.output, str(r.stats.frames_written), str(r.stats.failed),
                      str(r.stats.dropped), "n/a" if math.isnan(p50) else f"{p50:.1f} / {p99:.1f}",
                      f"{r.stats.fps:.2f}")
    console.print(table)
    failed = [r for r in results if r.stats is None]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(results)} streams failed: "
                          + "; ".join(f"{r.label}: {r.error}" for r in failed))
    if any(r.stats.interrupted for r in results):
        raise typer.Exit(130)
