"""Deraining quality against ground truth, with the field's conventions (docs/design.md section 6).

Source: MPRNet/Restormer ``evaluate_PSNR_SSIM.m`` (the convention of deraining papers since MPRNet):
outputs clipped and rounded to uint8; Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255) from uint8
RGB (ITU-R BT.601, MATLAB ``rgb2ycbcr``); PSNR = 20 log10(255 / RMSE); SSIM of Wang et al. (Gaussian
window 11, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, valid region), i.e. scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``. No border crop. RGB PSNR and channel-mean SSIM are given too: the SAPNet paper's
tables are RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sapnet_export.data.images import to_uint8


@dataclass(frozen=True)
class Quality:
    """Quality of one output against its ground truth.

    Attributes:
        y_psnr_db, y_ssim: on the Y channel (dB; SSIM in [-1, 1]).
        rgb_psnr_db, rgb_ssim: over RGB (PSNR of all channels; SSIM averaged over channels).
    """

    y_psnr_db: float
    y_ssim: float
    rgb_psnr_db: float
    rgb_ssim: float


def y_channel(rgb_u8: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float64 [H, W] BT.601 luma in 16..235, rounded like MATLAB's ``rgb2ycbcr``."""
    rgb = rgb_u8.astype(np.float64)
    return np.round(16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0)


def _psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None = None) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255,
                                       channel_axis=channel_axis))


def quality(output: np.ndarray, ground_truth: np.ndarray) -> Quality:
    """Score ``output`` against ``ground_truth``: both float [3, H, W] RGB (any range; clipped to [0, 1]
    and rounded to uint8 first, as saved).

    Raises:
        ValueError: the shapes differ, an image is smaller than the 11x11 SSIM window, or an image
            holds NaN or Inf.
    """
    if output.shape != ground_truth.shape:
        raise ValueError(f"output {list(output.shape)} and ground truth {list(ground_truth.shape)} differ")
    if not (np.all(np.isfinite(output)) and np.all(np.isfinite(ground_truth))):
        raise ValueError("image holds NaN or Inf")
    out_u8, gt_u8 = to_uint8(output), to_uint8(ground_truth)
    y_out, y_gt = y_channel(out_u8), y_channel(gt_u8)
    return Quality(y_psnr_db=_psnr_255(y_out, y_gt), y_ssim=_ssim(y_out, y_gt),
                   rgb_psnr_db=_psnr_255(out_u8, gt_u8),
                   rgb_ssim=_ssim(out_u8.astype(np.float64), gt_u8.astype(np.float64), channel_axis=2))
