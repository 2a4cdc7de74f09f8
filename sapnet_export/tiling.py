"""Overlapping tiles for frames larger than a model takes (an engine's profile, or ``--tile``).

A frame [N, 3, H, W] is cut into tiles of at most ``tile`` = (th, tw) pixels that overlap by ``overlap``
pixels; each tile is derained on its own and the outputs are blended back with feathered weights: inside
an overlap a tile's weight ramps linearly from near 0 at its edge to 1, so neighbouring tiles cross-fade
instead of leaving a seam; at the frame's border a tile keeps weight 1. SAPNet's receptive field grows by
about 130 pixels per stage (dilations 1, 2, 4, 8, 16 in each of its 5 residual blocks), so a tile's
border pixels lack context the full frame has; the overlap hides that error, and how much it leaves is
measured by ``benchmarks/tiling_seams.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import InputError

#: Default overlap of ``run --tile``, pixels: PROVISIONAL, replaced by the measured choice.
DEFAULT_OVERLAP = 64


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared
    pixels between neighbours; the last tile ends exactly at ``length``.

    Raises:
        InputError: ``tile`` < 1, ``overlap`` < 0 or ``overlap`` >= ``tile``.
    """
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise InputError(f"tiling: need tile >= 1 and 0 <= overlap < tile (tile {tile}, overlap {overlap})")
    if length <= tile:
        return [0]
    step = tile - overlap
    count = -(-(length - overlap) // step)  # ceil((length - overlap) / step)
    last = length - tile
    # spread the tiles evenly so every overlap is at least `overlap`
    return [round(i * last / (count - 1)) for i in range(count)]


def _ramp(size: int, overlap_before: int, overlap_after: int) -> np.ndarray:
    """1-D blending weights of one tile: linear ramps over its overlaps with its neighbours."""
    weights = np.ones(size, dtype=np.float32)
    if overlap_before > 0:
        weights[:overlap_before] = (np.arange(overlap_before, dtype=np.float32) + 1) / (overlap_before + 1)
    if overlap_after > 0:
        weights[size - overlap_after:] = np.minimum(
            weights[size - overlap_after:],
            (np.arange(overlap_after, 0, -1, dtype=np.float32)) / (overlap_after + 1))
    return weights


def _axis_windows(length: int, tile: int, overlap: int) -> list[tuple[int, int, np.ndarray]]:
    starts = axis_starts(length, tile, overlap)
    size = min(tile, length)
    windows = []
    for i, start in enumerate(starts):
        before = starts[i - 1] + size - start if i > 0 else 0
        after = start + size - starts[i + 1] if i + 1 < len(starts) else 0
        windows.append((start, size, _ramp(size, before, after)))
    return windows


def run_tiled(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, tile: tuple[int, int],
              overlap: int) -> np.ndarray:
    """Derain ``batch`` (float32 [N, 3, H, W]) tile by tile and blend the results.

    Args:
        run: the model, float32 [N, 3, h, w] -> float32 [N, 3, h, w] (e.g. ``Runner.run``).
        tile: (th, tw), the largest input ``run`` is given; a frame no larger is run whole.
        overlap: pixels shared by neighbouring tiles (in both directions).

    Returns:
        float32 [N, 3, H, W], the weighted blend of the tile outputs.

    Raises:
        InputError: bad tile or overlap (:func:`axis_starts`).
    """
    _, _, height, width = batch.shape
    if height <= tile[0] and width <= tile[1]:
        return run(batch)
    rows = _axis_windows(height, tile[0], overlap)
    cols = _axis_windows(width, tile[1], overlap)
    total = np.zeros(batch.shape, dtype=np.float64)
    weight = np.zeros((height, width), dtype=np.float64)
    for top, th, wy in rows:
        for left, tw, wx in cols:
            out = run(np.ascontiguousarray(batch[:, :, top:top + th, left:left + tw]))
            mask = np.outer(wy, wx)
            total[:, :, top:top + th, left:left + tw] += out * mask
            weight[top:top + th, left:left + tw] += mask
    return (total / weight).astype(np.float32)


def tile_count(height: int, width: int, tile: tuple[int, int], overlap: int) -> int:
    """How many tiles :func:`run_tiled` runs for an H x W frame."""
    if height <= tile[0] and width <= tile[1]:
        return 1
    return len(axis_starts(height, tile[0], overlap)) * len(axis_starts(width, tile[1], overlap))
