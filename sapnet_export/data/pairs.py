"""Pairing rainy inputs with their ground truth, in the layouts deraining datasets use.

Rules, in order, for an input at ``relative`` (its path under the data folder):
1. the same relative path under the ground-truth folder (``input/a/1.png`` with ``target/a/1.png``);
2. the same file name anywhere directly in the ground-truth folder;
3. the same stem with another image suffix (``1.jpg`` with ``1.png``);
4. dataset naming: ``rain-N`` with ``norain-N`` and ``rain_N`` with ``norain_N`` (Rain100L/H as
   released with JORDER), ``N_rain`` with ``N_clean`` or ``N_norain``, and Rain1400's ``N_M`` (the M-th
   rain rendering of background N) with ``N``.
Inputs with no match, and ground-truth files no input claimed, are both listed so nothing is silently
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from .images import IMAGE_SUFFIXES, natural_key

#: (pattern on an input stem, replacement giving the ground-truth stem).
_STEM_RULES = (
    (re.compile(r"^rain([-_].*)$", re.IGNORECASE), r"norain\1"),
    (re.compile(r"^(.*[-_])rain$", re.IGNORECASE), r"\1clean"),
    (re.compile(r"^(.*[-_])rain$", re.IGNORECASE), r"\1norain"),
    (re.compile(r"^(\d+)_\d+$"), r"\1"),
)


@dataclass(frozen=True)
class Pairing:
    """Inputs with their ground truth.

    Attributes:
        pairs: ``(input path, relative, ground-truth path)`` for every matched input, input order.
        unmatched_inputs: input paths with no ground truth.
        unmatched_ground_truth: ground-truth files no input was paired with.
    """

    pairs: list[tuple[Path, Path, Path]]
    unmatched_inputs: list[Path]
    unmatched_ground_truth: list[Path]


def _candidates(relative: Path) -> list[Path]:
    """Ground-truth paths (relative to its folder) an input may pair with, best first."""
    stems = [relative.stem] + [rule.sub(repl, relative.stem) for rule, repl in _STEM_RULES
                               if rule.match(relative.stem)]
    candidates = [relative, Path(relative.name)]
    for stem in stems:
        for parent in (relative.parent, Path(".")):
            candidates.append(parent / f"{stem}{relative.suffix}")
            candidates.extend(parent / f"{stem}{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
    seen, ordered = set(), []
    for candidate in candidates:
        if candidate not in seen:
            seen.add(candidate)
            ordered.append(candidate)
    return ordered


def match_ground_truth(path: Path, relative: Path, gt_dir: Path) -> Path | None:
    """The ground-truth file for one input (see the module rules), or None."""
    for candidate in _candidates(relative):
        if (gt_dir / candidate).is_file():
            return gt_dir / candidate
    return None


def pair_ground_truth(items: list[tuple[Path, Path]], gt_dir: Path) -> Pairing:
    """Pair inputs (``(path, relative)`` from :func:`~sapnet_export.data.images.discover_images`) with files
    in ``gt_dir``.

    Raises:
        InputError: ``gt_dir`` is not a folder.
    """
    if not gt_dir.is_dir():
        raise InputError(f"--gt {gt_dir}: not a folder")
    pairs, unmatched = [], []
    claimed = set()
    for path, relative in items:
        gt = match_ground_truth(path, relative, gt_dir)
        if gt is None:
            unmatched.append(path)
        else:
            pairs.append((path, relative, gt))
            claimed.add(gt.resolve())
    every_gt = [p for p in gt_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    left = sorted((p for p in every_gt if p.resolve() not in claimed), key=natural_key)
    return Pairing(pairs=pairs, unmatched_inputs=unmatched, unmatched_ground_truth=left)
