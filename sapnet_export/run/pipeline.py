"""The streaming pipeline of ``sapnet-export run``: decode, inference and encode overlap.

Three stages in three threads joined by bounded queues (:data:`QUEUE_FRAMES` frames each)::

    reader thread: source -> decoded queue -> main thread: Runner (tiled if needed) -> encoded queue -> writer thread: sink

The backend runs in the calling thread and only waits for frames when decoding is slower than it.
A file source blocks when the decoded queue is full (no frame is lost). A live source (camera,
network stream) cannot wait: when the queue is full, the oldest waiting frame is dropped and
counted, so the output stays current. A frame that fails to decode is counted and skipped.
``KeyboardInterrupt`` (Ctrl-C) stops reading; frames still waiting to be derained are discarded,
every frame already derained is written, and the sink is closed, so the video file is complete
and playable.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sapnet_export.data.images import to_uint8
from sapnet_export.runners.base import Runner
from sapnet_export.data.stream import FrameSource
from sapnet_export.data.sinks import FrameSink
from sapnet_export.model.tiling import TilePlan, plan_tiles, run_tiled, run_tiled_shared_pooling

#: Capacity of each queue, frames (bounds memory: 2 x 4 frames of 1080p uint8 is 50 MB).
QUEUE_FRAMES = 4
_END = object()


@dataclass
class StreamStats:
    """What a run did.

    Attributes:
        frames_written: frames derained and given to the sink.
        failed: frames that failed to decode (skipped), with their reasons in ``failures``.
        dropped: frames a live source produced while the queue was full (never for files).
        latencies_s: seconds of inference per frame (tiles and blending included), in order.
        wall_s: seconds from the first frame read to the last frame written.
        tiles_per_frame: tiles of the last frame (1 when untiled).
        interrupted: the run was stopped by Ctrl-C.
        frames_read: frames taken from the source, failed ones included (within ``max_frames``).
        source_ended: the source reached its end (False when ``max_frames`` or Ctrl-C stopped it).
    """

    frames_written: int = 0
    failed: int = 0
    dropped: int = 0
    failures: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    tiles_per_frame: int = 1
    interrupted: bool = False
    frames_read: int = 0
    source_ended: bool = False

    def latency_ms(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) in ms; NaN with no frame."""
        return float(np.percentile(self.latencies_s, q) * 1e3) if self.latencies_s else float("nan")

    @property
    def fps(self) -> float:
        """Frames written per wall-clock second, end to end (decode and encode included)."""
        return self.frames_written / self.wall_s if self.wall_s > 0 else float("nan")


def derain_frame(runner: Runner, image: np.ndarray, tile: tuple[int, int] | None,
                 overlap: int) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> derained uint8 [H, W, 3], whole or in ``tile``-sized tiles with
    ``overlap``, clipped and rounded. Tiles share the frame's channel-attention pooling where the Runner
    can (:attr:`~sapnet_export.runners.base.Runner.shared_pooling`,
    :func:`~sapnet_export.model.tiling.run_tiled_shared_pooling`), else run one by one
    (:func:`~sapnet_export.model.tiling.run_tiled`)."""
    batch = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    if tile is None:
        out = runner.run(batch)
    elif runner.shared_pooling:
        out = run_tiled_shared_pooling(runner.run_tiles, batch, tile, overlap)
    else:
        out = run_tiled(runner.run, batch, tile, overlap)
    return to_uint8(out[0])


def _reader(source: FrameSource, frames: queue.Queue, stop: threading.Event, stats: StreamStats,
            errors: list[BaseException]) -> None:
    try:
        for frame in source:
            if stop.is_set():
                break
            if source.live:
                while True:
                    try:
                        frames.put_nowait(frame)
                        break
                    except queue.Full:
                        try:
                            frames.get_nowait()
                            stats.dropped += 1
                        except queue.Empty:
                            pass
            else:
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        errors.append(exc)
    finally:
        frames.put(_END)


def _writer(sink: FrameSink, outputs: queue.Queue, errors: list[BaseException]) -> None:
    while True:
        item = outputs.get()
        if item is _END:
            return
        if errors:
            continue  # drain after a failure
        try:
            sink.write(*item)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)


def run_stream(source: FrameSource, runner: Runner, sink: FrameSink, *,
               tile: tuple[int, int] | None = None, overlap: int = 0, plan: TilePlan | None = None,
               on_frame: Callable[[StreamStats], None] | None = None,
               max_frames: int | None = None, stop_event: threading.Event | None = None) -> StreamStats:
    """Derain every frame of ``source`` with ``runner`` into ``sink`` (see the module docstring).

    Args:
        source, runner, sink: the three ends.
        tile: largest input given to the runner, (h, w); None runs frames whole unless they exceed
            the runner's ``max_frame`` (an engine's profile), which tiles them too
            (:func:`~sapnet_export.model.tiling.plan_tiles`).
        overlap: pixels shared by neighbouring tiles.
        plan: the tile plan already made for the source's frame size (``run`` makes it to say how it
            tiles); frames of that size use it, frames of another size get their own, once per size.
        on_frame: called after each frame (a live status line).
        max_frames: stop after this many frames read.
        stop_event: set from another thread to stop as Ctrl-C does (``run`` with several sources).

    Returns:
        The counts and timings; ``interrupted`` when Ctrl-C stopped the run.

    Raises:
        The source's, runner's or sink's first error (after the sink was aborted).
    """
    stats = StreamStats()
    frames: queue.Queue = queue.Queue(QUEUE_FRAMES)
    outputs: queue.Queue = queue.Queue(QUEUE_FRAMES)
    stop = threading.Event()
    reader_errors: list[BaseException] = []
    writer_errors: list[BaseException] = []
    reader = threading.Thread(target=_reader, args=(source, frames, stop, stats, reader_errors),
                              name="decode", daemon=True)
    writer = threading.Thread(target=_writer, args=(sink, outputs, writer_errors), name="encode",
                              daemon=True)
    start = time.perf_counter()
    reader.start()
    writer.start()
    plans = {(plan.height, plan.width): plan} if plan is not None else {}
    ended = False
    try:
        try:
            ended = _infer_loop(frames, outputs, runner, stats, plans, tile=tile, overlap=overlap,
                                writer_errors=writer_errors, max_frames=max_frames, on_frame=on_frame,
                                start=start, stop_event=stop_event)
            stats.source_ended = ended
        except KeyboardInterrupt:
            stats.interrupted = True
        stop.set()
        if not ended:
            _drain(frames)
        reader.join()
    except BaseException:
        stop.set()
        outputs.put(_END)
        writer.join()
        sink.abort()
        raise
    outputs.put(_END)
    writer.join()
    return _finish(sink, stats, start, reader_errors + writer_errors)


def _finish(sink: FrameSink, stats: StreamStats, start: float, errors: list[BaseException]) -> StreamStats:
    """Close the sink, or abort it and raise the first error of the reader or the writer."""
    stats.wall_s = time.perf_counter() - start
    if errors:
        sink.abort()
        raise errors[0]
    sink.close()
    return stats


def _infer_loop(frames: queue.Queue, outputs: queue.Queue, runner: Runner, stats: StreamStats,
                plans: dict[tuple[int, int], TilePlan], *, tile: tuple[int, int] | None, overlap: int,
                writer_errors: list[BaseException], max_frames: int | None,
                on_frame: Callable[[StreamStats], None] | None, start: float,
                stop_event: threading.Event | None = None) -> bool:
    """The main thread's stage: derain decoded frames (with the tile plan of their size, made once per
    size) and hand them to the writer, until the source ends (returns True), ``max_frames`` were read,
    ``stop_event`` was set (``stats.interrupted``) or the writer failed (False)."""
    read = 0
    while not writer_errors:
        if stop_event is not None and stop_event.is_set():
            stats.interrupted = True
            return False
        frame = frames.get()
        if frame is _END:
            return True
        read += 1
        if max_frames is not None and read > max_frames:
            return False
        stats.frames_read = read
        if frame.image is None:
            stats.failed += 1
            stats.failures.append(frame.error or f"frame {frame.index}: no image")
            continue
        size = frame.image.shape[:2]
        if size not in plans:
            plans[size] = plan_tiles(*size, tile, runner.max_frame, overlap)
        begin = time.perf_counter()
        out = derain_frame(runner, frame.image, plans[size].tile, plans[size].overlap)
        stats.latencies_s.append(time.perf_counter() - begin)
        stats.tiles_per_frame = plans[size].count
        outputs.put((frame.index, out))
        stats.frames_written += 1
        stats.wall_s = time.perf_counter() - start
        if on_frame:
            on_frame(stats)
    return False


def _drain(frames: queue.Queue) -> None:
    """Empty the decoded queue so a reader blocked on it can see the stop and finish."""
    while True:
        try:
            if frames.get(timeout=0.05) is _END:
                return
        except queue.Empty:
            continue
