import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from conftest import need_shared
from sapnet_export.data.images import read_image
from sapnet_export.measure.quality import quality, y_channel


def test_y_channel_is_bt601_rounded():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    expected = [16, 235, round(16 + 65.481), round(16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255)]
    assert y_channel(rgb)[0].tolist() == expected


def test_identical_images_score_inf_and_one():
    image = np.random.default_rng(0).random((3, 20, 24), dtype=np.float32)
    q = quality(image, image)
    assert math.isinf(q.y_psnr_db) and math.isinf(q.rgb_psnr_db)
    assert q.y_ssim == pytest.approx(1.0) and q.rgb_ssim == pytest.approx(1.0)


def test_psnr_and_ssim_follow_the_convention():
    rng = np.random.default_rng(1)
    gt = rng.random((3, 32, 40), dtype=np.float32)
    out = np.clip(gt + rng.normal(0, 0.05, gt.shape).astype(np.float32), -0.2, 1.2)
    q = quality(out, gt)
    out_u8 = np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    gt_u8 = np.rint(gt * 255).astype(np.uint8).transpose(1, 2, 0)
    y_out, y_gt = y_channel(out_u8), y_channel(gt_u8)
    assert q.y_psnr_db == pytest.approx(20 * math.log10(255 / math.sqrt(np.mean((y_out - y_gt) ** 2))))
    assert q.y_ssim == pytest.approx(structural_similarity(
        y_out, y_gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255))
    rgb_mse = np.mean((out_u8.astype(float) - gt_u8) ** 2)
    assert q.rgb_psnr_db == pytest.approx(10 * math.log10(255 ** 2 / rgb_mse))


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ"):
        quality(np.zeros((3, 16, 16), np.float32), np.zeros((3, 16, 17), np.float32))
    bad = np.zeros((3, 16, 16), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quality(bad, np.zeros_like(bad))


@pytest.mark.real
def test_rain100l_rainy_inputs_match_the_literature():
    """Rain100L's rainy inputs against their targets: 26.90 dB / 0.838 Y (MPRNet's table, 'Input')."""
    root = need_shared("data/rain100l")
    scores = [quality(read_image(root / "input" / f"{i}.png"), read_image(root / "target" / f"{i}.png"))
              for i in range(1, 101)]
    assert np.mean([s.y_psnr_db for s in scores]) == pytest.approx(26.90, abs=0.005)
    assert np.mean([s.y_ssim for s in scores]) == pytest.approx(0.838, abs=0.0005)


def _wang_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as Wang et al. define it (IEEE TIP 2004): Gaussian window 11x11, sigma 1.5, K1 0.01,
    K2 0.03, L 255, population statistics, mean over the region the window fits (written here
    independently of scikit-image)."""
    from scipy.ndimage import correlate

    x = np.arange(11) - 5
    g = np.exp(-(x ** 2) / (2 * 1.5 ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    a, b = a.astype(np.float64), b.astype(np.float64)

    def filt(image):
        return correlate(image, window, mode="reflect")[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def test_y_ssim_equals_wangs_definition():
    rng = np.random.default_rng(3)
    gt = rng.random((3, 40, 52), dtype=np.float32)
    out = np.clip(gt + rng.normal(0, 0.08, gt.shape).astype(np.float32), 0, 1)
    y_out = y_channel(np.rint(out * 255).astype(np.uint8).transpose(1, 2, 0))
    y_gt = y_channel(np.rint(gt * 255).astype(np.uint8).transpose(1, 2, 0))
    assert quality(out, gt).y_ssim == pytest.approx(_wang_ssim(y_out, y_gt), abs=1e-9)


def test_known_mse_gives_exact_y_psnr():
    """A uniform Y offset of 3 levels: MSE 9, PSNR 20 log10(255 / 3) exactly."""
    gt = np.full((3, 16, 16), 100 / 255, np.float32)
    out = np.full((3, 16, 16), 103 / 255, np.float32)  # equal RGB: Y moves by 3 * 219/255 -> rounds
    y_delta = y_channel(np.full((1, 1, 3), 103, np.uint8)) - y_channel(np.full((1, 1, 3), 100, np.uint8))
    assert quality(out, gt).y_psnr_db == pytest.approx(20 * math.log10(255 / abs(float(y_delta[0, 0]))))
    assert quality(out, gt).rgb_psnr_db == pytest.approx(20 * math.log10(255 / 3))
