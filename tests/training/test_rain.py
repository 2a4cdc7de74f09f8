import numpy as np
import pytest

from training.rain import RainRanges, make_rainy, motion_kernel, render_rain, sample_params


def _clean(seed=0, height=64, width=80):
    return np.random.default_rng(seed).uniform(0.0, 0.8, (3, height, width)).astype(np.float32)


def test_the_same_seed_renders_the_same_rain_and_another_seed_other_rain():
    clean = _clean()
    a, params_a = make_rainy(clean, (3, 1))
    b, params_b = make_rainy(clean, (3, 1))
    c, _ = make_rainy(clean, (3, 2))
    assert params_a == params_b
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


@pytest.mark.parametrize("seed", range(8))
def test_rendering_stays_in_range_and_only_adds_light_without_haze(seed):
    clean = _clean(seed)
    rainy, params = make_rainy(clean, seed)
    assert rainy.dtype == np.float32 and rainy.shape == clean.shape
    assert rainy.min() >= 0.0 and rainy.max() <= 1.0
    if params.transmission == 1.0:  # additive and screen blends only brighten
        assert (rainy >= clean - 1e-6).all()
    assert np.abs(rainy - clean).mean() > 1e-3  # some rain was drawn


def test_sampled_parameters_respect_the_ranges():
    ranges = RainRanges()
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = sample_params(rng, ranges)
        assert ranges.layers[0] <= len(p.layers) <= ranges.layers[1]
        assert p.blend in ("add", "screen")
        main = p.layers[0].angle_deg
        for layer in p.layers:
            assert ranges.density[0] <= layer.density <= ranges.density[1]
            assert ranges.length_px[0] <= layer.length_px <= ranges.length_px[1]
            assert abs(layer.angle_deg - main) <= ranges.angle_spread_deg
        assert p.transmission == 1.0 or ranges.transmission[0] <= p.transmission <= ranges.transmission[1]


def test_haze_lifts_dark_pixels_towards_the_atmospheric_light():
    clean = np.zeros((3, 32, 32), np.float32)
    params = sample_params(np.random.default_rng(0), RainRanges(haze_probability=1.0, density=(0.0, 0.0)))
    rainy = render_rain(clean, params, np.random.default_rng(1))
    expected = (1 - params.transmission) * params.atmospheric_light
    np.testing.assert_allclose(rainy, expected, atol=1e-6)


@pytest.mark.parametrize("length,angle", [(9, 0.0), (20, 30.0), (15.5, -45.0)])
def test_motion_kernel_is_a_normalised_line_at_the_angle(length, angle):
    kernel = motion_kernel(length, angle)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    ys, xs = np.nonzero(kernel > 1e-3)
    centre = (kernel.shape[0] - 1) / 2
    if angle == 0.0:
        assert set(xs) == {int(centre)}  # vertical
    extent = np.hypot(ys - centre, xs - centre).max() * 2
    assert extent == pytest.approx(length - 1, abs=2.0)


def test_wrong_layout_or_range_is_refused():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        make_rainy(np.zeros((16, 16, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_rainy(np.full((3, 16, 16), 2.0, np.float32), 0)
