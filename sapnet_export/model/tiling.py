"""Overlapping tiles for frames larger than a model takes (an engine's profile, or ``--tile``).

A frame [N, 3, H, W] is cut into tiles of at most ``tile`` = (th, tw) pixels that overlap by ``overlap``
pixels; each tile is derained on its own and the outputs are blended back with feathered weights: inside
an overlap a tile's weight ramps linearly from near 0 at its edge to 1, so neighbouring tiles cross-fade
instead of leaving a seam; at the frame's border a tile keeps weight 1.

Two things make a tile's output differ from the whole frame's:

- the receptive field, which grows by about 130 pixels per stage (dilations 1, 2, 4, 8, 16 in each of
  the 5 residual blocks): a tile's border pixels lack context the frame has; the overlap hides this;
- channel attention: each of the 60 CRA layers (10 per stage) scales its channels by a function of the
  global average of its input, so every pixel of a tile is computed with the tile's statistics instead
  of the frame's. No overlap hides this; larger tiles (closer to the frame) reduce it, and
  :func:`run_tiled_shared_pooling` removes it (torch, and ONNX Runtime with a ``--shared-pooling``
  export, whose graph takes the pool weights as a second input).

``benchmarks/tiling_seams.py`` measures the fidelity against untiled inference by overlap and tile size,
``benchmarks/tiling_pooling.py`` separates the two causes; docs/measurements.md ("Tiling") has the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sapnet_export.errors import InputError

#: Default overlap of ``run --tile``, pixels: the smallest overlap past which, with tiles sharing the
#: frame's pooling, a wider one bought little fidelity for many more tiles (``benchmarks/tiling_pooling.py``;
#: the figures: docs/measurements.md, "Tiling").
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


class TileLayout:
    """Where the tiles of an H x W frame lie and how they blend.

    Args:
        height, width: the frame.
        tile: (th, tw), the largest tile; overlap: pixels shared by neighbours (:func:`axis_starts`).

    Attributes:
        windows: ``(top, left, mask)`` per tile in row-major order; ``mask`` float32 [h, w] is the tile's
            blend weight (linear ramps across its overlaps, 1 elsewhere).
        total: float64 [H, W], the sum of the masks at each frame pixel (> 0 everywhere).

    Raises:
        InputError: bad tile or overlap.
    """

    def __init__(self, height: int, width: int, tile: tuple[int, int], overlap: int) -> None:
        rows = _axis_windows(height, tile[0], overlap)
        cols = _axis_windows(width, tile[1], overlap)
        self.height, self.width = height, width
        self.windows = [(top, left, np.outer(wy, wx)) for top, _, wy in rows for left, _, wx in cols]
        self.total = np.zeros((height, width), dtype=np.float64)
        for top, left, mask in self.windows:
            self.total[top:top + mask.shape[0], left:left + mask.shape[1]] += mask

    def crop(self, batch: np.ndarray, index: int) -> np.ndarray:
        """Tile ``index`` of ``batch`` (float32 [N, 3, H, W]), contiguous."""
        top, left, mask = self.windows[index]
        return np.ascontiguousarray(batch[:, :, top:top + mask.shape[0], left:left + mask.shape[1]])

    def tile_batch(self, frame: np.ndarray) -> np.ndarray:
        """Every tile of one frame (float32 [1, 3, H, W]) as one batch, float32 [T, 3, h, w], in the
        order of :attr:`windows` (the batch :func:`run_tiled_shared_pooling` runs)."""
        return np.concatenate([self.crop(frame, i) for i in range(len(self.windows))])

    def pool_weights(self) -> np.ndarray:
        """float32 [T, 1, h, w]: each tile pixel's share of the blend, divided by the frame's pixel
        count; they sum to 1 over the frame, so a weighted sum over all tiles is the frame's average
        (the ``pool_weights`` of :meth:`sapnet_export.model.network.SAPNet.forward`)."""
        shares = [mask / self.total[top:top + mask.shape[0], left:left + mask.shape[1]]
                  for top, left, mask in self.windows]
        return (np.stack(shares)[:, None] / (self.height * self.width)).astype(np.float32)

    def blend(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Weighted blend of the tile outputs (each float32 [N, 3, h, w]) into float32 [N, 3, H, W]."""
        count = outputs[0].shape[0]
        acc = np.zeros((count, 3, self.height, self.width), dtype=np.float64)
        for (top, left, mask), out in zip(self.windows, outputs):
            acc[:, :, top:top + mask.shape[0], left:left + mask.shape[1]] += out * mask
        return (acc / self.total).astype(np.float32)


def run_tiled(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, tile: tuple[int, int],
              overlap: int) -> np.ndarray:
    """Derain ``batch`` (float32 [N, 3, H, W]) tile by tile and blend the results.

    Each tile is a separate input, so the network's channel attention pools over the tile alone (see
    the module docstring; :func:`run_tiled_shared_pooling` does not have that error).

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
    layout = TileLayout(height, width, tile, overlap)
    return layout.blend([run(layout.crop(batch, i)) for i in range(len(layout.windows))])


def run_tiled_shared_pooling(run: Callable[[np.ndarray, np.ndarray], np.ndarray], frame: np.ndarray,
                             tile: tuple[int, int], overlap: int) -> np.ndarray:
    """Derain one frame (float32 [1, 3, H, W]) as one batch of its tiles whose channel attention pools
    over the whole frame, then blend.

    Args:
        run: the model taking (tiles float32 [T, 3, h, w], pool weights float32 [T, 1, h, w]) and
            returning float32 [T, 3, h, w] (e.g. ``SAPNet.forward`` with ``pool_weights``).

    Returns:
        float32 [1, 3, H, W]. Memory is that of all tiles at once (about the frame's plus the overlaps).

    Raises:
        InputError: a batch of more than one frame, or bad tile or overlap.
    """
    if frame.shape[0] != 1:
        raise InputError(f"tiling with shared pooling takes one frame at a time, got a batch of {frame.shape[0]}")
    layout = TileLayout(frame.shape[2], frame.shape[3], tile, overlap)
    out = run(layout.tile_batch(frame), layout.pool_weights())
    return layout.blend([out[i:i + 1] for i in range(len(layout.windows))])


def plan_tile(height: int, width: int, tile: tuple[int, int] | None,
              limit: tuple[int, int] | None) -> tuple[int, int] | None:
    """The tile size for an H x W frame, or None to run it whole.

    Args:
        tile: the asked tile (``--tile``), or None.
        limit: the largest frame the Runner takes (``Runner.max_frame``, e.g. an engine's profile
            maximum), or None.

    Returns:
        The per-axis smaller of ``tile`` and ``limit``; None when neither is given or the frame fits.
    """
    bounds = [b for b in (tile, limit) if b is not None]
    if not bounds:
        return None
    plan = (min(b[0] for b in bounds), min(b[1] for b in bounds))
    return None if height <= plan[0] and width <= plan[1] else plan


def tile_count(height: int, width: int, tile: tuple[int, int], overlap: int) -> int:
    """How many tiles :func:`run_tiled` runs for an H x W frame."""
    if height <= tile[0] and width <= tile[1]:
        return 1
    return len(axis_starts(height, tile[0], overlap)) * len(axis_starts(width, tile[1], overlap))


@dataclass(frozen=True)
class TilePlan:
    """How frames of one size are run: whole, or as tiles (:func:`plan_tiles`).

    Attributes:
        height, width: the frame (pixels).
        tile: the tile size (th, tw), or None to run the frame whole.
        overlap: pixels shared by neighbouring tiles.
        count: tiles per frame (1 when whole).
    """

    height: int
    width: int
    tile: tuple[int, int] | None
    overlap: int
    count: int

    @property
    def pixels(self) -> int:
        """Pixels the model runs per frame: the frame's, or the tiles' total area (every tile of an
        axis has the same size: :func:`axis_starts` spreads them over the frame)."""
        if self.tile is None:
            return self.height * self.width
        return self.count * min(self.tile[0], self.height) * min(self.tile[1], self.width)


def plan_tiles(height: int, width: int, tile: tuple[int, int] | None, limit: tuple[int, int] | None,
               overlap: int) -> TilePlan:
    """The :class:`TilePlan` of an H x W frame: the tile of :func:`plan_tile` (``--tile`` and the
    Runner's ``max_frame``) and the tile count of :func:`tile_count`. Computed once per frame size and
    passed on (``run`` says how it tiles, ``--target-fps`` counts the pixels, the pipeline runs it).

    Raises:
        InputError: bad tile or overlap.
    """
    chosen = plan_tile(height, width, tile, limit)
    count = 1 if chosen is None else tile_count(height, width, chosen, overlap)
    return TilePlan(height=height, width=width, tile=chosen, overlap=overlap, count=count)
