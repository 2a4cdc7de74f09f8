"""Reading frames from video files (for calibration sets), with imageio's PyAV plugin.

Frames come out as float32 [3, H, W] RGB in [0, 1], the same layout as
:func:`sapnet_export.data.images.read_image`, so a frame from a camera recording and a still image are
preprocessed alike. Frame ``k`` is the k-th frame PyAV decodes (0-based), counted by decoding, so
indices do not depend on container timestamps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sapnet_export.errors import ImageError

#: File suffixes treated as video (case-insensitive).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


def is_video(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _frames(path: Path) -> Iterable[np.ndarray]:
    import imageio.v3 as iio

    return iio.imiter(path, plugin="pyav", format="rgb24")


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames PyAV decodes from the video at ``path`` (decodes the whole stream).

    Raises:
        ImageError: the file is missing, not a video PyAV can open, or holds no frame.
    """
    path = Path(path)
    try:
        count = sum(1 for _ in _frames(path))
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except Exception as exc:  # av.error.InvalidDataError, OSError, ValueError...
        raise ImageError(f"{path}: not a video PyAV can decode: {exc}") from exc
    if count == 0:
        raise ImageError(f"{path}: video holds no frame")
    return count


def read_frames(path: str | os.PathLike, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Decode the frames numbered ``indices`` (0-based) of the video at ``path``.

    Returns:
        ``{index: float32 [3, H, W] RGB in [0, 1]}`` for every requested index.

    Raises:
        ImageError: the video cannot be decoded, or an index is past its last frame.
    """
    path = Path(path)
    wanted = set(int(i) for i in indices)
    found: dict[int, np.ndarray] = {}
    try:
        for index, frame in enumerate(_frames(path)):
            if index in wanted:
                found[index] = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32) / 255.0
                if len(found) == len(wanted):
                    break
    except Exception as exc:
        raise ImageError(f"{path}: cannot decode video: {exc}") from exc
    missing = sorted(wanted - found.keys())
    if missing:
        raise ImageError(f"{path}: video has no frame {missing[0]} (it has fewer frames)")
    return found
