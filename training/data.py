"""Training and validation data: paired folders and synthetic rain on clean photographs.

Patches follow the official recipe (``DerainDataset.py``, ``Im2Patch``): every 100x100 window at
stride 80 of every image, in a fixed order; the loader shuffles them. Each patch is flipped at random
(horizontally and/or vertically) with a generator seeded by ``(seed, epoch, index)``, so an epoch's
data is the same on every run and every machine.

Two sources, usable together:

- **paired folders**: a rainy folder and its ground-truth folder, paired by the toolkit's rules
  (:mod:`sapnet_export.data.pairs`): equal names (``input/`` + ``target/``), ``rain-N`` / ``norain-N``
  (Rain100L/H), ``N_M`` / ``N`` (Rain1400) and the others listed there;
- **clean photographs**: rain is rendered on each patch on the fly by :mod:`training.rain`, seeded by
  ``(seed, epoch, index)``; the patch is flipped before the rain is drawn, so streaks keep the
  renderer's direction statistics.

Tensors are float32 [3, P, P] RGB in [0, 1]; a batch is ``(rainy, clean)``, each [N, 3, P, P].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sapnet_export.errors import InputError
from sapnet_export.data.images import IMAGE_SUFFIXES, discover_images, natural_key, read_image
from sapnet_export.data.pairs import pair_ground_truth

from .rain import RainRanges, make_rainy

#: Official patch size and stride (SAPNet ``train.py``: ``prepare_data_RainTrainH(patch_size=100,
#: stride=80)``).
PATCH = 100
STRIDE = 80


class DataError(InputError):
    """Training data cannot be used: unreadable image, unmatched pair, sizes that differ, an image
    smaller than a patch. The message names the file."""


@dataclass(frozen=True)
class Pair:
    """One full-size training or validation image pair.

    Attributes:
        name: the rainy file's path relative to its folder (``clean`` sources: the clean file's).
        rainy, clean: float32 [3, H, W] RGB in [0, 1], same shape.
    """

    name: str
    rainy: np.ndarray
    clean: np.ndarray


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except InputError as exc:  # ImageError names the file already
        raise DataError(str(exc)) from exc


def _read_matched(matched: Sequence[tuple[Path, Path, Path]]) -> list[Pair]:
    pairs = []
    for path, relative, gt in matched:
        rainy, clean = _read(path), _read(gt)
        if rainy.shape != clean.shape:
            raise DataError(f"{path}: size {rainy.shape[1]}x{rainy.shape[2]} differs from its ground "
                            f"truth {gt} ({clean.shape[1]}x{clean.shape[2]})")
        pairs.append(Pair(str(relative), rainy, clean))
    return pairs


def load_pairs(rainy_dir: str | Path, gt_dir: str | Path) -> list[Pair]:
    """Read every rainy image of ``rainy_dir`` with its ground truth from ``gt_dir``.

    Raises:
        DataError: a folder is missing or empty, a rainy image has no ground truth (the files are
            named), an image is unreadable, or a pair's sizes differ.
    """
    rainy_dir, gt_dir = Path(rainy_dir), Path(gt_dir)
    try:
        pairing = pair_ground_truth(discover_images([rainy_dir]), gt_dir)
    except InputError as exc:
        raise DataError(str(exc)) from exc
    if pairing.unmatched_inputs:
        shown = ", ".join(str(p) for p in pairing.unmatched_inputs[:5])
        raise DataError(f"{len(pairing.unmatched_inputs)} rainy image(s) have no ground truth in "
                        f"{gt_dir}: {shown}")
    return _read_matched(pairing.pairs)


#: Sub-folder names of the rainy and clean halves of a paired dataset, tried in this order.
PAIRED_LAYOUTS = (("input", "target"), ("rainy", "gt"), ("rain", "norain"), ("data", "gt"))
_RAINY_FILE = re.compile(r"^rain[-_]", re.IGNORECASE)


def load_paired_folder(folder: str | Path) -> list[Pair]:
    """Read a paired dataset in one of the common layouts.

    - ``folder/input`` + ``folder/target`` (also ``rainy``/``gt``, ``rain``/``norain``,
      ``data``/``gt``), paired by :mod:`sapnet_export.data.pairs`' rules;
    - Rain100L/H and RainTrainL/H as released: ``rain-N.png`` next to ``norain-N.png`` in one folder.

    Raises:
        DataError: not a folder, no known layout (the message lists them), or a data error of
            :func:`load_pairs`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    for rainy_name, gt_name in PAIRED_LAYOUTS:
        if (folder / rainy_name).is_dir() and (folder / gt_name).is_dir():
            return load_pairs(folder / rainy_name, folder / gt_name)
    rainy = sorted((p for p in folder.iterdir() if p.is_file() and _RAINY_FILE.match(p.name)
                    and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if rainy:
        matched = []
        for path in rainy:
            gt = path.with_name("no" + path.name[:4].lower() + path.name[4:])
            if not gt.is_file():
                raise DataError(f"{path}: no ground truth {gt.name} beside it")
            matched.append((path, Path(path.name), gt))
        return _read_matched(matched)
    layouts = ", ".join(f"{r}/ + {g}/" for r, g in PAIRED_LAYOUTS)
    raise DataError(f"{folder}: not a paired dataset: expected sub-folders {layouts}, or "
                    "rain-N / norain-N files side by side")


def load_clean(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Read every image of ``folder`` (recursively) as ``(relative name, float32 [3, H, W])``.

    Raises:
        DataError: missing or empty folder, or an unreadable image (named).
    """
    try:
        items = discover_images([folder])
    except InputError as exc:
        raise DataError(str(exc)) from exc
    return [(str(relative), _read(path)) for path, relative in items]


def synthetic_pairs(clean: Sequence[tuple[str, np.ndarray]], seed: int,
                    ranges: RainRanges = RainRanges()) -> list[Pair]:
    """Full-size validation pairs: rain rendered once on each clean image, seeded by ``(seed, i)``."""
    return [Pair(name, make_rainy(image, (seed, i), ranges)[0], image)
            for i, (name, image) in enumerate(clean)]


def patch_grid(name: str, height: int, width: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of every ``patch`` window at ``stride`` (official ``Im2Patch`` order).

    Raises:
        DataError: the image is smaller than one patch.
    """
    if height < patch or width < patch:
        raise DataError(f"{name}: {height}x{width} is smaller than one {patch}x{patch} patch")
    return [(y, x) for y in range(0, height - patch + 1, stride)
            for x in range(0, width - patch + 1, stride)]


class PatchDataset(Dataset):
    """Patches of paired images and/or clean photographs with synthetic rain.

    Args:
        pairs: full-size pairs (:func:`load_pairs`).
        clean: full-size clean photographs (:func:`load_clean`); rain is rendered per patch.
        patch, stride: window size and step, pixels (official: 100, 80).
        seed: base seed of flips and rain.
        flips: random horizontal and vertical flips.
        ranges: the synthetic rain's parameter ranges.

    Items are ``(rainy, clean)``, float32 tensors [3, patch, patch] in [0, 1]. Call
    :meth:`set_epoch` before each epoch so flips and rain change between epochs.

    Raises:
        DataError: no data, or an image smaller than a patch.
    """

    def __init__(self, pairs: Sequence[Pair] = (), clean: Sequence[tuple[str, np.ndarray]] = (),
                 patch: int = PATCH, stride: int = STRIDE, seed: int = 0, flips: bool = True,
                 ranges: RainRanges = RainRanges()) -> None:
        if not pairs and not clean:
            raise DataError("no training data: give paired folders and/or clean photographs")
        self.sources: list[tuple[np.ndarray | None, np.ndarray]] = (
            [(p.rainy, p.clean) for p in pairs] + [(None, image) for _, image in clean])
        names = [p.name for p in pairs] + [name for name, _ in clean]
        self.index: list[tuple[int, int, int]] = []
        for source, ((_, image), name) in enumerate(zip(self.sources, names)):
            self.index.extend((source, y, x) for y, x in
                              patch_grid(name, image.shape[1], image.shape[2], patch, stride))
        self.patch, self.seed, self.flips, self.ranges = patch, seed, flips, ranges
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s flips and rain (0-based)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        source, y, x = self.index[item]
        rainy, clean = self.sources[source]
        window = (slice(None), slice(y, y + self.patch), slice(x, x + self.patch))
        rng = np.random.default_rng((self.seed, self.epoch, item))
        clean_patch = clean[window]
        rainy_patch = None if rainy is None else rainy[window]
        if self.flips:
            for axis in (2, 1):  # horizontal, then vertical
                if rng.random() < 0.5:
                    clean_patch = np.flip(clean_patch, axis)
                    rainy_patch = None if rainy_patch is None else np.flip(rainy_patch, axis)
        if rainy_patch is None:
            rainy_patch, _ = make_rainy(np.ascontiguousarray(clean_patch),
                                        tuple(int(v) for v in rng.integers(0, 2**31, 2)), self.ranges)
        return (torch.from_numpy(np.ascontiguousarray(rainy_patch, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(clean_patch, dtype=np.float32)))
