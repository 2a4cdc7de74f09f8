"""The one frame-size guard (``--max-megapixels``): every command that reads a frame or is given a
size checks it here *before* inference, and refuses with the size, the memory estimate and the
option to raise (docs/reliability.md).

Memory grows linearly with the frame: SAPNet keeps 32 float32 channels (128 bytes per pixel) per
feature map at full resolution, about eight alive at once. :data:`BYTES_PER_MEGAPIXEL` holds the
measured slope of one 6-stage fp32 inference, batch 1, per backend: the rise of the peak RSS between
0.25 and 0.5 MP (``benchmarks/memory_per_megapixel.py``: ONNX Runtime CPU +261 and +522 MiB, 1.10 GB
per MP; PyTorch 0.79 GB per MP). Backends without a measurement of their own use the largest
measured figure (:data:`UNMEASURED_BYTES_PER_MEGAPIXEL`), and the message says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from sapnet_export.errors import ImageError

#: Peak bytes per megapixel of frame, measured per backend (module docstring).
BYTES_PER_MEGAPIXEL = {"onnxruntime": 1_100_000_000, "torch": 790_000_000}
#: The figure for a backend not in :data:`BYTES_PER_MEGAPIXEL` (the largest measured one).
UNMEASURED_BYTES_PER_MEGAPIXEL = max(BYTES_PER_MEGAPIXEL.values())
#: Default ``--max-megapixels``: a 4K UHD frame (8.3 MP) fits, at about 9 GB.
DEFAULT_MAX_MEGAPIXELS = 8.5


def bytes_per_megapixel(backends: Iterable[str]) -> tuple[int, str]:
    """The largest per-megapixel figure among ``backends`` and a phrase saying where it comes from."""
    figures = [(BYTES_PER_MEGAPIXEL.get(b, UNMEASURED_BYTES_PER_MEGAPIXEL), b) for b in backends] or \
        [(UNMEASURED_BYTES_PER_MEGAPIXEL, "onnxruntime")]
    value, backend = max(figures)
    origin = ("measured" if backend in BYTES_PER_MEGAPIXEL
              else "not measured for it: the ONNX Runtime figure")
    return value, f"{value / 1e9:.2f} GB per MP with {backend}, {origin}"


def check_frame(height: int, width: int, *, max_megapixels: float, backends: Iterable[str],
                source: str) -> None:
    """Refuse a ``height`` x ``width`` frame above ``max_megapixels``.

    Args:
        height, width: the frame size in pixels.
        max_megapixels: the ``--max-megapixels`` limit (> 0).
        backends: the backends that will run it (the largest estimate counts).
        source: what to name in the message (a file, a frame, ``--sizes 4000x6000``).

    Raises:
        ImageError: the frame is larger; the message gives the size, megapixels, estimated memory
            and the option to raise.
    """
    megapixels = height * width / 1e6
    if megapixels > max_megapixels:
        per, origin = bytes_per_megapixel(list(backends))
        raise ImageError(
            f"{source}: {height}x{width} is {megapixels:.1f} MP, above --max-megapixels "
            f"{max_megapixels:g}: one inference needs about {megapixels * per / 1e9:.1f} GB ({origin}, "
            "benchmarks/memory_per_megapixel.py); raise --max-megapixels if the memory is there, or "
            "tile it ('run --tile')")


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) from the image header (no decoding), or None when Pillow cannot read it (the
    decoder then names the problem where the image is read)."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, DecompressionBombError...
        return None


def check_images(paths: Sequence[str | os.PathLike], *, max_megapixels: float,
                 backends: Iterable[str]) -> None:
    """:func:`check_frame` on each image's header size, before any of them is decoded.

    Raises:
        ImageError: the first image above the limit.
    """
    backends = list(backends)
    for path in paths:
        size = image_size(path)
        if size is not None:
            check_frame(*size, max_megapixels=max_megapixels, backends=backends, source=str(Path(path)))


def check_sizes(sizes: Sequence[tuple[int, int]] | None, *, max_megapixels: float,
                backends: Iterable[str], option: str = "--sizes") -> None:
    """:func:`check_frame` on each size given as an option (``--sizes HxW``), before any work."""
    backends = list(backends)
    for height, width in sizes or ():
        check_frame(height, width, max_megapixels=max_megapixels, backends=backends,
                    source=f"{option} {height}x{width}")
