"""Reading and writing images as the network sees them.

Decoding uses Pillow. Every image becomes float32 [3, H, W] RGB in [0, 1]:

- greyscale (``L``, ``1``, ``I;16``, ``I``, ``F``) is repeated over three channels;
- alpha (``RGBA``, ``LA``, ``PA``) is dropped; palettes and CMYK are converted to RGB;
- 8-bit data is divided by 255, 16-bit greyscale by 65535. Pillow decodes 16-bit *colour* PNG and
  TIFF to 8 bits per channel, so those arrive with 8-bit precision, correctly scaled.

Outputs are written as 8-bit RGB PNG: clipped to [0, 1], multiplied by 255 and **rounded** to the
nearest integer. (The official SAPNet ``test.py`` truncates with ``np.uint8(255 * out)``, which biases
every pixel down by half a level on average; metrics in this toolkit use rounding.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sapnet_export.errors import ImageError, InputError
from sapnet_export.fileio import atomic_output

#: File suffixes taken from folders (case-insensitive).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def discover_images(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Expand files and folders into image files, in natural order.

    Args:
        inputs: image files and folders; folders are searched recursively for :data:`IMAGE_SUFFIXES`.
            A file named explicitly is taken whatever its suffix (decoding will tell).

    Returns:
        ``(path, relative)`` pairs: ``relative`` is the path under its folder (or the bare file
        name), used to name outputs.

    Raises:
        InputError: a path does not exist, or a folder holds no image.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted((p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
            if not files:
                raise InputError(f"{path}: folder holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend((p, p.relative_to(path)) for p in files)
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            raise InputError(f"{path}: no such file or folder")
    return found


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most ``limit`` of ``items``, evenly spaced, first and last included (all when ``limit`` is
    None or not smaller than the list)."""
    if limit is None or len(items) <= limit:
        return list(items)
    step = (len(items) - 1) / max(limit - 1, 1)
    return [items[round(i * step)] for i in range(limit)]


def _to_rgb_float(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale (Pillow may widen it to 32-bit "I"): full scale is 65535.
        grey = np.clip(np.asarray(image).astype(np.float32) / 65535.0, 0.0, 1.0)
        return np.repeat(grey[None], 3, axis=0)
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[None], 3, axis=0)
    if mode in ("P", "PA") and "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into float32 [3, H, W] RGB in [0, 1] (see the module docstring).

    Raises:
        ImageError: the file is missing, is not an image Pillow can identify, or is truncated or
            corrupt; the message names the file and the reason.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_rgb_float(image)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not an image file Pillow can decode") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image: {exc}") from exc


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [3, H, W] (any range) -> uint8 [H, W, 3]: clipped to [0, 1], times 255, rounded half to even."""
    clipped = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return np.rint(clipped * 255.0).astype(np.uint8).transpose(1, 2, 0)


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write float [3, H, W] RGB as an 8-bit PNG at ``path`` (rounded, see :func:`to_uint8`), atomically.

    Raises:
        InputError: the folder cannot be created or written.
    """
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc}") from exc
    return path
