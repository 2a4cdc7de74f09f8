"""Frame sinks of ``sapnet-export run``: video files (H.264 through PyAV) and image folders out, or nothing.

Frames are uint8 [H, W, 3] RGB. Outputs are written under a temporary name and renamed when complete
(``sapnet_export/fileio.py``), so an interrupted run never leaves a half-written file at the destination.
"""

from __future__ import annotations

import abc
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from sapnet_export.errors import ImageError, InputError
from sapnet_export.fileio import atomic_output, check_output, temporary_path
from .video import VIDEO_SUFFIXES

#: Container format PyAV writes for each output suffix.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
#: Frame rate given to a video written from an image folder (which has none).
DEFAULT_FPS = 25.0


class FrameSink(abc.ABC):
    """Where derained frames go. :meth:`close` finishes the output (also after Ctrl-C);
    :meth:`abort` removes what was written."""

    description: str

    @abc.abstractmethod
    def write(self, index: int, image: np.ndarray) -> None:
        """Write uint8 [H, W, 3] RGB frame number ``index``."""

    def close(self) -> None:
        """Finish the output."""

    def abort(self) -> None:
        """Discard the output (an error before anything useful was written)."""


class NullSink(FrameSink):
    """Measure only: frames are dropped after inference."""

    description = "nothing (measure only)"

    def write(self, index: int, image: np.ndarray) -> None:
        return None


class FolderSink(FrameSink):
    """One PNG per frame, ``frame_000000.png`` numbered by source index, each written atomically.

    Raises:
        InputError: the folder cannot be created or written.
    """

    def __init__(self, folder: Path) -> None:
        self.folder, self.description = folder, f"{folder}/ (PNG per frame)"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the output folder: {exc}") from exc

    def write(self, index: int, image: np.ndarray) -> None:
        path = self.folder / f"frame_{index:06d}.png"
        try:
            with atomic_output(path) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
        except OSError as exc:
            raise InputError(f"{path}: cannot write: {exc}") from exc


class VideoSink(FrameSink):
    """H.264 (libx264, yuv420p, CRF 18) in the container the suffix names, written to a temporary
    file beside ``path`` and renamed by :meth:`close`. yuv420p needs even sizes: an odd width or
    height is padded by repeating the last column or row (:attr:`padded` says so).

    Raises:
        InputError: unsupported suffix, or the file cannot be created.
    """

    def __init__(self, path: Path, fps: float) -> None:
        import av

        suffix = path.suffix.lower()
        if suffix not in CONTAINERS:
            raise InputError(f"{path}: unsupported video suffix {suffix!r} "
                             f"(use {', '.join(sorted(CONTAINERS))}, or a folder)")
        self.path, self.fps = path, fps
        self.description = f"{path} (H.264, {fps:g} fps)"
        self.padded = False
        self.size: tuple[int, int] | None = None
        check_output(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = temporary_path(path)
            self.container = av.open(str(self.tmp), "w", format=CONTAINERS[suffix])
        except Exception as exc:
            raise InputError(f"{path}: cannot write the video: {exc}") from exc
        self.stream = None

    def write(self, index: int, image: np.ndarray) -> None:
        import av

        height, width = image.shape[:2]
        if self.size is None:
            self.size = (height, width)
        elif (height, width) != self.size:  # encoders rescale silently: refuse instead
            raise ImageError(f"frame {index} is {height}x{width}, the video {self.path} is "
                             f"{self.size[0]}x{self.size[1]}: frames are never rescaled; write a "
                             "folder of PNGs (-o DIR) instead")
        if height % 2 or width % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            self.padded = True
        if self.stream is None:
            rate = Fraction(self.fps).limit_denominator(1001)
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height = image.shape[1], image.shape[0]
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"crf": "18"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        self.container.close()
        if self.stream is None:  # no frame: no video
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.container.close()
        self.tmp.unlink(missing_ok=True)


def open_sink(output: str | os.PathLike | None, fps: float | None) -> FrameSink:
    """A :class:`VideoSink` for a video suffix, a :class:`FolderSink` otherwise, a :class:`NullSink`
    for None. ``fps`` is the source's rate (:data:`DEFAULT_FPS` when it has none).

    Raises:
        InputError: see the sinks.
    """
    if output is None:
        return NullSink()
    path = Path(output)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(path, fps or DEFAULT_FPS)
    return FolderSink(path)
