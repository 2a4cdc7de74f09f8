import math

import numpy as np
import pytest

from sapnet_export.measure.fidelity import fidelity, psnr


def test_identical_images_have_infinite_psnr():
    image = np.random.default_rng(0).random((1, 3, 4, 5), dtype=np.float32)
    result = fidelity(image, image.copy())
    assert math.isinf(result.psnr_db) and result.max_abs == 0 and result.max_abs_u8 == 0
    assert result.changed_pixels == 0


def test_known_mse_gives_exact_psnr():
    reference = np.zeros((3, 10, 10))
    output = reference + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(reference, output) == pytest.approx(20.0, abs=1e-9)


def test_fidelity_clips_before_comparing():
    reference = np.full((3, 2, 2), 1.0, dtype=np.float32)
    assert math.isinf(fidelity(reference, reference + 0.5).psnr_db)


def test_uint8_difference_and_changed_share():
    reference = np.zeros((3, 2, 2), dtype=np.float32)
    output = reference.copy()
    output[1, 0, 0] = 3 / 255  # one channel of one pixel of four
    result = fidelity(reference, output)
    assert result.max_abs_u8 == 3 and result.changed_pixels == pytest.approx(0.25)


def test_nan_output_and_shape_mismatch_are_errors():
    reference = np.zeros((3, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or Inf"):
        fidelity(reference, np.full_like(reference, np.nan))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(reference, np.zeros((3, 2, 3)))
