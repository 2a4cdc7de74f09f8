"""Frame sources of ``sapnet-export run``: image folders, video files, cameras, network streams (the sinks
are in ``sapnet_export/data/sinks.py``).

Decoding and encoding use PyAV (FFmpeg's libraries, bundled in its wheels, so no system FFmpeg):
one library for files, V4L2 cameras (``/dev/videoN``) and network streams (RTSP, HTTP, UDP...),
packet-level control so that one corrupt packet costs one frame rather than the stream, and H.264
encoding with libx264. Frames are uint8 [H, W, 3] RGB in this module.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sapnet_export.errors import ImageError, InputError
from .frame_guard import check_frame, image_size
from .images import IMAGE_SUFFIXES, discover_images, read_image, to_uint8



@dataclass(frozen=True)
class Frame:
    """One decoded frame, or a frame that failed to decode.

    Attributes:
        index: 0-based position in the source.
        image: uint8 [H, W, 3] RGB, or None when decoding failed.
        error: why decoding failed (None when it did not).
    """

    index: int
    image: np.ndarray | None
    error: str | None = None


class FrameSource(abc.ABC):
    """Frames in decoding order. ``live`` sources (cameras, network streams) cannot wait for the
    model: frames are dropped when it falls behind; files and folders are never dropped from."""

    description: str
    fps: float | None
    live: bool = False

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield frames until the source ends."""

    def close(self) -> None:
        """Release the source (idempotent)."""

    @property
    def size(self) -> tuple[int, int] | None:
        """Frame size (H, W) as the source declares it before decoding (None when it does not)."""
        return None


class ImageFolderSource(FrameSource):
    """Image files (a folder, recursively, in natural order, or one file); an unreadable file is a
    failed frame, named in its error."""

    def __init__(self, items: list[tuple[Path, Path]], description: str) -> None:
        self.items, self.description, self.fps = items, description, None

    @functools.cached_property
    def size(self) -> tuple[int, int] | None:
        """(H, W) of the first image (its header, read once); None when it cannot be read."""
        try:
            with Image.open(self.items[0][0]) as image:
                return image.height, image.width
        except (OSError, IndexError):
            return None

    def check_frames(self, *, max_megapixels: float, backends: list[str], one_size: bool) -> None:
        """Before any work: every image's header against the size guard
        (:func:`~sapnet_export.data.frame_guard.check_frame`) and, when ``one_size`` (a video output),
        the same size as the first image.

        Raises:
            ImageError: an image above ``max_megapixels``, or the first image whose size differs
                (a video has one frame size, and frames are never rescaled).
        """
        first = None
        for index, (path, _) in enumerate(self.items):
            size = image_size(path)
            if size is None:
                continue
            check_frame(*size, max_megapixels=max_megapixels, backends=backends, source=str(path))
            first = first or (index, path, size)
            if one_size and size != first[2]:
                raise ImageError(
                    f"{path}: frame {index} is {size[0]}x{size[1]}, frame {first[0]} ({first[1].name}) is "
                    f"{first[2][0]}x{first[2][1]}: a video has one frame size and frames are never "
                    "rescaled or padded; write a folder of PNGs (-o DIR, each frame at its own size) "
                    "or derain the sizes separately")

    def __iter__(self) -> Iterator[Frame]:
        for index, (path, _) in enumerate(self.items):
            try:
                yield Frame(index, to_uint8(read_image(path)))
            except ImageError as exc:
                yield Frame(index, None, str(exc))


class AVSource(FrameSource):
    """A video file, camera or network stream opened with PyAV; a packet that fails to decode is a
    failed frame, and decoding goes on with the next packet.

    Raises:
        InputError: the source cannot be opened or has no video stream (the message names it).
    """

    def __init__(self, spec: str, *, live: bool, format: str | None = None) -> None:
        import av

        self.description, self.live = spec, live
        try:
            self.container = av.open(spec, format=format, timeout=10.0 if live else None)
        except Exception as exc:  # av.error.FileNotFoundError, InvalidDataError, OSError...
            raise InputError(f"{spec}: cannot open as a video source: {exc}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"{spec}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else None

    def __iter__(self) -> Iterator[Frame]:
        import av

        index = 0
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                yield Frame(index, None, f"{self.description}: frame {index}: {exc}")
                index += 1
                continue
            for frame in frames:
                yield Frame(index, frame.to_ndarray(format="rgb24"))
                index += 1

    @property
    def declared_frames(self) -> int | None:
        """Frames the container declares (its frame count, else duration x frame rate); None when it
        says neither. A file that ends before this is truncated."""
        if self.live:
            return None
        if self.stream.frames:
            return int(self.stream.frames)
        duration = (float(self.stream.duration * self.stream.time_base) if self.stream.duration
                    and self.stream.time_base else (self.container.duration or 0) / 1e6)
        return round(duration * self.fps) if duration and self.fps else None

    @property
    def size(self) -> tuple[int, int] | None:
        """(H, W) from the stream's codec parameters (None when the container does not say)."""
        context = self.stream.codec_context
        return (context.height, context.width) if context.height and context.width else None

    def close(self) -> None:
        self.container.close()


def open_source(spec: str | os.PathLike) -> FrameSource:
    """Open ``spec``: an image folder or file, a video file, ``/dev/videoN`` (V4L2) or a URL
    (``rtsp://``, ``http://``, ``udp://``...).

    Raises:
        InputError: missing path, an empty folder, or a source PyAV cannot open.
    """
    text = str(spec)
    if "://" in text:
        return AVSource(text, live=True)
    if text.startswith("/dev/video"):
        return AVSource(text, live=True, format="v4l2")
    path = Path(text)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(discover_images([path]), text)
    if not path.exists():
        raise InputError(f"{path}: no such file, folder or device")
    return AVSource(text, live=False)


def check_source(src: FrameSource, *, backends: list[str], max_megapixels: float,
                 tile: tuple[int, int] | None = None, video_output: bool = False) -> None:
    """Before any frame runs (``run``): the size guard on the source's declared size, or on each
    image's header for a folder, and one frame size when the output is a video
    (:meth:`ImageFolderSource.check_frames`). A tiled run is guarded on the tile, the largest input
    the model sees.

    Raises:
        ImageError: a frame (or the tile) above ``max_megapixels``, or mixed sizes into a video.
    """
    limit = float("inf") if tile else max_megapixels
    if tile:
        check_frame(*tile, max_megapixels=max_megapixels, backends=backends, source=f"--tile {tile[0]}x{tile[1]}")
    if isinstance(src, ImageFolderSource):
        src.check_frames(max_megapixels=limit, backends=backends, one_size=video_output)
    elif src.size is not None:
        check_frame(*src.size, max_megapixels=limit, backends=backends, source=src.description)
