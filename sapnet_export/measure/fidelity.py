"""Fidelity of a deployed model's output against the PyTorch fp32 reference (docs/design.md section 6).

Both images are clipped to [0, 1] first (what is saved is clipped). PSNR uses peak 1:
``PSNR = 10 log10(1 / MSE)`` in dB, ``inf`` when the two are identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    """How close an output is to the reference.

    Attributes:
        psnr_db: PSNR in dB of the clipped float output against the clipped float reference (peak 1);
            ``inf`` when identical.
        max_abs: largest absolute difference of the clipped float values (0..1).
        max_abs_u8: largest difference, in levels 0..255, after both are rounded to uint8.
        changed_pixels: share (0..1) of pixel positions where any channel's uint8 value differs.
    """

    psnr_db: float
    max_abs: float
    max_abs_u8: int
    changed_pixels: float


def psnr(reference: np.ndarray, output: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of ``output`` against ``reference`` (same shape, float), ``inf`` if equal.

    Raises:
        ValueError: the shapes differ.
    """
    reference = np.asarray(reference, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if reference.shape != output.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {output.shape}")
    mse = float(np.mean((reference - output) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def fidelity(reference: np.ndarray, output: np.ndarray) -> Fidelity:
    """Compare ``output`` with ``reference``: float arrays [..., 3, H, W] of the same shape (any range).

    Raises:
        ValueError: the shapes differ, or ``output`` holds NaN or Inf.
    """
    if not np.all(np.isfinite(output)):
        raise ValueError("output holds NaN or Inf")
    ref = np.clip(np.asarray(reference, dtype=np.float32), 0.0, 1.0)
    out = np.clip(np.asarray(output, dtype=np.float32), 0.0, 1.0)
    value = psnr(ref, out)
    ref_u8 = np.rint(ref * 255.0).astype(np.int16)
    out_u8 = np.rint(out * 255.0).astype(np.int16)
    diff_u8 = np.abs(ref_u8 - out_u8)
    channel_axis = ref.ndim - 3
    changed = float(np.mean(np.any(diff_u8 != 0, axis=channel_axis)))
    return Fidelity(psnr_db=value, max_abs=float(np.max(np.abs(ref - out))),
                    max_abs_u8=int(diff_u8.max()), changed_pixels=changed)
