"""The built-in heavy-rain held-out frames: what ``onnx --precision int8`` and ``trt --int8`` check on
when the user gives no ``--images``.

INT8 calibrated on light rain loses the most in heavy rain (calibration/README.md, docs/measurements.md,
"INT8 in heavy rain"), so the default check is heavy rain: the renderer's ``heavy`` preset
(:data:`sapnet_export.data.synthetic_rain.PRESETS`) on crops of two photographs that ship with
scikit-image (a core dependency, no download): ``coffee`` (RGB, 400x600) and ``camera`` (greyscale,
512x512, as three equal channels). Both are in the *validation* split of ``sapnet-train photos``
(``photos/val``), so a calibration set built with ``--clean photos/train`` never sees them; and they
come with ground truth (the clean crop), so the check reports the Y-PSNR change too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sapnet_export.data.images import write_png
from sapnet_export.data.synthetic_rain import PRESETS, make_rainy
from .frame_sampling import fit_frame

#: scikit-image photographs (``skimage.data.<name>``) the frames are cut from.
PHOTOS = ("coffee", "camera")
#: Seed of the crops and the rain (frame i's rain: ``default_rng((SEED, i))``).
SEED = 17
#: ``held_out.source`` of a report whose held-out images are these frames (``--images``: the user's).
BUILT_IN_SOURCE = f"built-in heavy rain ({', '.join(PHOTOS)})"


def _photo(name: str) -> np.ndarray:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return (array[..., :3].astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def write_heavy_rain_check(folder: str | os.PathLike, size: tuple[int, int] = (320, 480),
                           count: int = 4) -> tuple[list[tuple[Path, Path]], Path]:
    """Write ``count`` heavy-rain frames of ``size`` (H, W) to ``folder/input`` and their clean crops
    to ``folder/target`` (PNG, 8-bit RGB), deterministically.

    Frames take the photographs of :data:`PHOTOS` in turn, each a random crop at native scale (a
    photograph smaller than ``size`` is scaled up to cover it first), seeded by :data:`SEED`.

    Returns:
        ``(items, gt_dir)``: ``(path, relative)`` pairs as
        :func:`sapnet_export.data.images.discover_images` gives them, and the ground-truth folder.

    Raises:
        OSError: ``folder`` cannot be written.
    """
    folder = Path(folder)
    rng = np.random.default_rng(SEED)
    photos = {name: _photo(name) for name in PHOTOS}
    items = []
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        clean, _ = fit_frame(photos[name], size[0], size[1], "crop", rng)
        clean = np.ascontiguousarray(clean)
        rainy, _ = make_rainy(clean, (SEED, i), PRESETS["heavy"])
        relative = Path(f"{name}-{i}.png")
        write_png(folder / "target" / relative, clean)
        items.append((write_png(folder / "input" / relative, rainy), relative))
    return items, folder / "target"


@contextmanager
def held_out_or_heavy_rain(items: Sequence[tuple[Path, Path]], gt_dir: Path | None,
                           size: tuple[int, int] | None) -> Iterator[tuple[list, Path | None, str | None]]:
    """``(items, gt_dir, source)`` of an export's held-out check: the user's ``items`` (source
    ``--images``), or, when there are none and ``size`` (H, W) is given (an int8 export: its static
    size or the calibration frames', the engine profile's OPT shape), the built-in heavy-rain frames
    written to a temporary folder for the ``with`` block (:func:`write_heavy_rain_check`, source
    :data:`BUILT_IN_SOURCE`). Source None: no held-out images."""
    if items or size is None:
        yield list(items), gt_dir, "--images" if items else None
        return
    with tempfile.TemporaryDirectory(prefix="sapnet-heavy-rain-") as folder:
        frames, truth = write_heavy_rain_check(folder, size)
        yield frames, truth, BUILT_IN_SOURCE


def heavy_rain_warning(results: Sequence, threshold_db: float) -> str | None:
    """The warning of a check on the built-in frames (``results``: their
    :class:`~sapnet_export.measure.evaluation.ImageResult` rows) when some are below ``threshold_db``
    (dB against PyTorch fp32); None when all reach it. These frames warn rather than refuse: they stand
    in for the user's camera, which only the user's frames (``--images``) can gate."""
    below = [r for r in results if not r.fidelity.psnr_db >= threshold_db]
    if not below:
        return None
    worst = min(below, key=lambda r: r.fidelity.psnr_db)
    return (f"{len(below)} of {len(results)} built-in heavy-rain frames are below {threshold_db:.0f} dB "
            f"against PyTorch fp32 (worst {Path(worst.name).name}: {worst.fidelity.psnr_db:.1f} dB): this "
            "int8 graph may leave rain that fp32 removes; check with your camera's frames (--images), "
            "calibrate on rain like it (calib build --synthetic-rain) or keep groups in float (--min-psnr)")
