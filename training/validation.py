"""Validation: Y-PSNR and Y-SSIM of a model's outputs against ground truth on full-size images.

Scores use the toolkit's deraining convention (:func:`sapnet_export.measure.quality.quality`: outputs clipped
and rounded to uint8, BT.601 Y, SSIM of Wang et al.), so numbers here and in ``sapnet-export verify``
are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from sapnet_export.model.network import SAPNet
from sapnet_export.measure.quality import quality

from .data import Pair


@dataclass(frozen=True)
class Scores:
    """Means over a set of images: Y-PSNR (dB), Y-SSIM, RGB PSNR (dB), RGB SSIM, and the count."""

    y_psnr_db: float
    y_ssim: float
    rgb_psnr_db: float
    rgb_ssim: float
    images: int

    def as_dict(self) -> dict:
        """Plain-type form for CSV, JSON and checkpoint metadata."""
        return {"y_psnr_db": self.y_psnr_db, "y_ssim": self.y_ssim, "rgb_psnr_db": self.rgb_psnr_db,
                "rgb_ssim": self.rgb_ssim, "images": self.images}


def _mean(values: list) -> Scores:
    return Scores(y_psnr_db=float(np.mean([q.y_psnr_db for q in values])),
                  y_ssim=float(np.mean([q.y_ssim for q in values])),
                  rgb_psnr_db=float(np.mean([q.rgb_psnr_db for q in values])),
                  rgb_ssim=float(np.mean([q.rgb_ssim for q in values])), images=len(values))


def score_inputs(pairs: Sequence[Pair]) -> Scores:
    """Scores of the rainy inputs themselves (the no-deraining baseline).

    Raises:
        ValueError: ``pairs`` is empty.
    """
    if not pairs:
        raise ValueError("no validation images")
    return _mean([quality(p.rainy, p.clean) for p in pairs])


@torch.no_grad()
def score_model(model: SAPNet, pairs: Sequence[Pair], device: str | torch.device = "cpu",
                stages: int | None = None, on_image: Callable[[], None] | None = None) -> Scores:
    """Scores of ``model``'s outputs (``stages`` stages; all by default), one image at a time;
    ``on_image`` is called after each (progress bars).

    The model is put in eval mode and left there.

    Raises:
        ValueError: ``pairs`` is empty.
    """
    if not pairs:
        raise ValueError("no validation images")
    model.eval()
    results = []
    for pair in pairs:
        rainy = torch.from_numpy(pair.rainy).unsqueeze(0).to(device)
        output = model(rainy, stages)[0].float().cpu().numpy()
        results.append(quality(output, pair.clean))
        if on_image:
            on_image()
    return _mean(results)
