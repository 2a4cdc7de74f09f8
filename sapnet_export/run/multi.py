"""``sapnet-export run CAM1 CAM2 ... -o OUTDIR``: several sources at once against one backend.

Each source gets its own pipeline (:func:`~sapnet_export.run.pipeline.run_stream`: decode, inference
and encode threads) in its own thread. The backend is shared: a local Runner is called by one stream
at a time (:class:`SerializedRunner`; decoding and encoding of the others go on meanwhile), while the
``triton`` backend gives each stream its own client, so the streams' requests are in flight together
and meet in the server's dynamic batcher (docs/serving.md).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sapnet_export.data.stream import FrameSource

from sapnet_export.data.sinks import open_sink
from sapnet_export.runners.base import Runner
from .pipeline import StreamStats, run_stream


class SerializedRunner(Runner):
    """A Runner shared by several threads: one call at a time (a lock), the same info and limits."""

    def __init__(self, runner: Runner) -> None:
        self.inner, self.lock = runner, threading.Lock()
        self.info, self.max_frame, self.shared_pooling = runner.info, runner.max_frame, runner.shared_pooling

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.inner.run(batch)

    def _run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.inner.run_tiles(tiles, pool_weights)


def stream_label(index: int, spec: str) -> str:
    """``1-cam0``: the source's position and a file-name-safe stem, unique per run."""
    stem = Path(spec.rstrip("/")).stem or spec
    return f"{index}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)[:40]}"


def stream_output(outdir: Path | None, index: int, spec: str, source: FrameSource) -> Path | None:
    """Where a source's frames go in OUTDIR: ``N-stem.mp4`` for videos, cameras and streams, a PNG
    folder ``N-stem/`` for image folders; None measures only."""
    if outdir is None:
        return None
    label = stream_label(index, spec)
    return outdir / (f"{label}/" if source.fps is None else f"{label}.mp4")


@dataclass
class StreamResult:
    """One source's outcome: ``stats`` when it ran, ``error`` (the exception) when it failed."""

    label: str
    description: str
    output: str
    stats: StreamStats | None = None
    error: BaseException | None = None


def run_streams(specs: list[str], sources: list[FrameSource], make_runner: Callable[[], Runner],
                outdir: Path | None, *, one_runner_per_stream: bool, tile: tuple[int, int] | None = None,
                overlap: int = 0, max_frames: int | None = None,
                stop_event: threading.Event | None = None) -> list[StreamResult]:
    """Run every source concurrently (see the module docstring) and return one result per source, in
    order. A stream that fails does not stop the others; ``stop_event`` (Ctrl-C) stops them all.

    Args:
        specs, sources: the sources as given and opened.
        make_runner: builds a Runner; called once (shared, serialized) or once per stream
            (``one_runner_per_stream``, the triton backend).
        outdir: OUTDIR, or None to measure only.
    """
    stop_event = stop_event or threading.Event()
    shared = None if one_runner_per_stream else SerializedRunner(make_runner())
    results = []
    for index, (spec, source) in enumerate(zip(specs, sources), 1):
        output = stream_output(outdir, index, spec, source)
        results.append(StreamResult(stream_label(index, spec), source.description, str(output or "-")))

    def work(result: StreamResult, source: FrameSource, output: Path | None) -> None:
        try:
            runner = shared or make_runner()
            sink = open_sink(output, source.fps)
            result.stats = run_stream(source, runner, sink, tile=tile, overlap=overlap,
                                      max_frames=max_frames, stop_event=stop_event)
        except BaseException as exc:  # noqa: BLE001 - reported per stream
            result.error = exc

    threads = [threading.Thread(target=work, name=f"stream {r.label}", daemon=True,
                                args=(r, s, stream_output(outdir, i, spec, s)))
               for i, (r, s, spec) in enumerate(zip(results, sources, specs), 1)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        stop_event.set()
        for thread in threads:
            thread.join()
    return results
