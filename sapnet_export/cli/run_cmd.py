"""``sapnet-export run``: derain a stream (video file, camera, URL, image folder) with any backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from sapnet_export.shapes import parse_one_size
from sapnet_export.model.tiling import DEFAULT_OVERLAP, plan_tiles
from ._app import (BACKEND_HELP, DeviceOpt, ForceBf16Opt, ModelOpt, PrecisionOpt, StagesOpt, WeightsOpt, app,
                   console, err_console)
from ._budget import choose_for_source
from .options import AllowForeignOpt, MaxMegapixelsOpt, foreign_note


def _tile(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    return parse_one_size(text, "--tile")


def _say_tiling(plan, tile: tuple[int, int] | None, runner) -> None:  # noqa: ANN001 - TilePlan | None, Runner
    """Say when frames will be tiled, why, and what tiling costs this network (docs/commands.md 'Tiling')."""
    limit = runner.max_frame
    if plan is None or plan.tile is None:
        return
    if limit is not None and plan.tile != tile:
        console.print(f"frames {plan.height}x{plan.width} exceed the engine's optimization profile (max "
                      f"{limit[0]}x{limit[1]}): tiles of at most {plan.tile[0]}x{plan.tile[1]}, "
                      f"overlap {plan.overlap}")
    if runner.shared_pooling:
        console.print(f"tiles run as one batch whose channel attention pools over the whole frame "
                      f"({runner.info.backend}; docs/commands.md 'Tiling')")
    else:
        fix = ("export the model with 'sapnet-export onnx --shared-pooling' so that tiles share the "
               "frame's pooling" if runner.info.backend == "onnxruntime"
               else "the torch backend and ONNX Runtime with a --shared-pooling export share the "
                    "frame's pooling across tiles")
        err_console.print(f"[yellow]note:[/] {runner.info.backend} runs each tile of {runner.info.model} "
                          "alone: SAPNet's channel attention then averages over the tile, not the frame, "
                          "so the output differs from the whole frame's beyond what the overlap hides "
                          f"(measured in docs/commands.md 'Tiling'); {fix}")


def _exit_code(src, stats, declared: int | None) -> None:  # noqa: ANN001 - FrameSource, StreamStats
    """derain's rule: 2 when no frame could be read, 1 when frames failed or the source ended before
    the ``declared`` frames of its container (a truncated file)."""
    declared = declared if stats.source_ended else None
    if stats.frames_written == 0:
        raise InputError(f"{src.description}: no frame could be read"
                         + (f" ({stats.failed} failed to decode)" if stats.failed else " (the source is empty)"))
    if declared and stats.frames_read + 1 < declared:
        err_console.print(f"[yellow]warning:[/] {src.description}: the source ended early: "
                          f"{stats.frames_read} frames read, its container declares {declared}; "
                          "the file is truncated")
    if stats.failed:
        raise CheckFailed(f"{stats.failed} of {stats.frames_read} frames failed (skipped)")
    if declared and stats.frames_read + 1 < declared:
        raise CheckFailed(f"{src.description}: the source ended early after {stats.frames_read} of "
                          f"{declared} declared frames")


@app.command("run")
def run_command(
    sources: Annotated[list[str], typer.Argument(help="Video file, image folder, /dev/videoN or a stream "
                                                 "URL (rtsp://, http://, udp://...); several run "
                                                 "concurrently against one backend.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Video file (.mp4, .mkv, .mov, .avi: H.264) or a folder of PNGs; with "
        "several sources, a folder OUTDIR (N-name.mp4 or N-name/ per source); omit to measure only.")] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", "-b", help=BACKEND_HELP + " Default: torch; with --target-fps, limits the choice "
        "to this backend.")] = None,
    model: ModelOpt = None,
    weights: WeightsOpt = "default",
    stages: StagesOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    force_bf16: ForceBf16Opt = False,
    tile: Annotated[Optional[str], typer.Option(
        "--tile", help="Run frames larger than HxW as overlapping tiles.")] = None,
    overlap: Annotated[int, typer.Option(
        "--overlap", min=0, help="Pixels shared by neighbouring tiles (default: measured, see "
        "docs/commands.md 'Tiling').")] = DEFAULT_OVERLAP,
    target_fps: Annotated[Optional[float], typer.Option(
        "--target-fps", min=0.001, help="Choose backend, precision and stages among the --configs "
        "measured on this machine: the least quality loss that reaches F frames/s (else the fastest).")] = None,
    configs: Annotated[Optional[list[Path]], typer.Option(
        "--configs", help="Bench reports or folders of them ('sapnet-export bench --gt G --stages 1-6 "
        "--json engines/configs'), for --target-fps; repeatable.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(
        "--max-frames", min=1, help="Stop after this many frames.")] = None,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    allow_foreign_model: AllowForeignOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output (a video, or a "
                                        "folder that holds files).")] = False,
) -> None:
    """Derain a video, camera or stream frame by frame: decoding, inference and encoding overlap;
    prints live fps and latency, then frames, failed and dropped frames, latency p50/p99 and fps.
    Exit 0: every frame derained; 1: frames failed or the source ended before the frames it declares;
    2: usage or input error, or no frame could be read. A video output has one frame size: an image
    folder of mixed sizes is refused (naming the first frame that differs), never rescaled."""
    from sapnet_export.runners import create_runner
    from sapnet_export.data.stream import check_source, open_source
    from sapnet_export.data.sinks import open_sink
    from sapnet_export.data.video import VIDEO_SUFFIXES

    tile_size = _tile(tile)
    if len(sources) > 1:
        from ._multi import run_many

        if target_fps is not None:
            raise InputError("--target-fps chooses for one source; give one source, or --backend/--model")
        run_many(sources, output, backend=backend or "torch", model=model, weights=weights, stages=stages,
                 device=device, precision=precision, force_bf16=force_bf16, tile=tile_size,
                 overlap=overlap, max_frames=max_frames, force=force, max_megapixels=max_megapixels,
                 allow_foreign_model=allow_foreign_model)
        return
    (source,) = sources
    _check_options(output, force, target_fps, configs, given=(model, stages, precision))
    src = open_source(source)
    try:
        if target_fps is not None:
            # the choice counts the pixels of --tile's tiles; a chosen engine's profile may tile further
            asked = plan_tiles(*src.size, tile_size, None, overlap) if src.size else None
            runner = choose_for_source(src, target_fps, configs or [], backend=backend, weights=weights,
                                       device=device, plan=asked)
        else:
            runner = create_runner(backend or "torch", model=model, weights=weights, stages=stages,
                                   device=device, precision=precision, force_bf16=force_bf16,
                                   allow_foreign_model=allow_foreign_model)
        info = runner.info
        check_source(src, backends=[info.backend], max_megapixels=max_megapixels, tile=tile_size,
                     video_output=output is not None and output.suffix.lower() in VIDEO_SUFFIXES)
        sink = open_sink(output, src.fps)
        console.print(f"source {src.description} ({'live' if src.live else 'file'}"
                      + (f", {src.fps:g} fps" if src.fps else "") + f") -> {sink.description}")
        console.print(f"backend {info.backend}, precision {info.precision}, device {info.device}, "
                      f"{info.stages} stages, model {info.model}"
                      + (f", tiles {tile_size[0]}x{tile_size[1]} overlap {overlap}" if tile_size else ""))
        plan = plan_tiles(*src.size, tile_size, runner.max_frame, overlap) if src.size else None
        _say_tiling(plan, tile_size, runner)
        stats = _stream(src, runner, sink, tile=tile_size, overlap=overlap, plan=plan, max_frames=max_frames)
        if foreign_note(info):
            err_console.print(f"[yellow]warning:[/] {foreign_note(info)}")
        declared = getattr(src, "declared_frames", None)  # read before the container is closed
    finally:
        src.close()
    _print_summary(stats, info, sink)
    if stats.interrupted:
        raise typer.Exit(130)
    _exit_code(src, stats, declared)


def _check_options(output: Path | None, force: bool, target_fps: float | None, configs: list[Path] | None,
                   given: tuple) -> None:
    """Refuse, before any work, an output that cannot be written and options that conflict.

    ``given`` is (--model, --stages, --precision), which --target-fps chooses itself.

    Raises:
        InputError: the output exists without --force, is not writable, or the options conflict.
    """
    from sapnet_export.data.video import VIDEO_SUFFIXES
    from sapnet_export.fileio import check_output

    if output is not None:
        kind = "file" if output.suffix.lower() in VIDEO_SUFFIXES else "folder"
        check_output(output, kind=kind, force=force, option="--output")
    if target_fps is None and configs:
        raise InputError("--configs is read only with --target-fps F")
    if target_fps is not None and any(value is not None for value in given):
        raise InputError("--target-fps chooses the model, precision and stages from --configs; drop "
                         "--model/--stages/--precision (or drop --target-fps to run them as given)")


def _stream(src, runner, sink, **options):  # noqa: ANN001, ANN003, ANN202 - run_stream's arguments
    """:func:`sapnet_export.run.pipeline.run_stream` with a live status line (frames, fps, latency)."""
    from sapnet_export.run.pipeline import run_stream

    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as progress:
        task = progress.add_task("starting")

        def on_frame(stats) -> None:  # noqa: ANN001 - StreamStats
            progress.update(task, description=(
                f"frames {stats.frames_written}  fps {stats.fps:.2f}  latency last "
                f"{stats.latencies_s[-1] * 1e3:.0f} ms  failed {stats.failed}  dropped {stats.dropped}"))

        return run_stream(src, runner, sink, on_frame=on_frame, **options)


def _print_summary(stats, info, sink) -> None:  # noqa: ANN001 - StreamStats, RunnerInfo, FrameSink
    """The failed frames, a padding note, and the run's summary table."""
    for reason in stats.failures[:10]:
        err_console.print(f"[yellow]failed frame[/] {reason}")
    if getattr(sink, "padded", False):
        err_console.print("[yellow]note:[/] odd frame size padded by one row/column for H.264 yuv420p")
    table = Table(title=f"run summary{' (interrupted)' if stats.interrupted else ''}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    p50, p99 = stats.latency_ms(50), stats.latency_ms(99)
    for key, value in (("frames written", str(stats.frames_written)),
                       ("failed frames (skipped)", str(stats.failed)),
                       ("dropped frames (live source behind)", str(stats.dropped)),
                       ("latency p50 / p99 (ms, inference)",
                        "n/a" if math.isnan(p50) else f"{p50:.1f} / {p99:.1f}"),
                       ("fps reached (end to end)", f"{stats.fps:.2f}"),
                       ("tiles per frame", str(stats.tiles_per_frame)),
                       ("backend / precision / device", f"{info.backend} / {info.precision} / {info.device}"),
                       ("stages", str(info.stages)),
                       ("output", sink.description),
                       *((("model identity", foreign_note(info)),) if foreign_note(info) else ())):
        table.add_row(key, value)
    console.print(table)
