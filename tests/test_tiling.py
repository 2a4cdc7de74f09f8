import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.metrics import psnr
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.tiling import axis_starts, run_tiled, tile_count
from sapnet_export.weights import load_weights


@pytest.mark.parametrize("length, tile, overlap", [(100, 40, 8), (97, 32, 16), (64, 64, 8), (30, 64, 8),
                                                    (481, 128, 32)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    for a, b in zip(starts, starts[1:]):
        assert a + size - b >= overlap - 1  # rounding may take one pixel


def test_bad_tiling():
    with pytest.raises(InputError, match="0 <= overlap < tile"):
        axis_starts(100, 16, 16)


def test_pointwise_model_is_reconstructed_exactly():
    batch = np.random.default_rng(0).random((2, 3, 70, 93), dtype=np.float32)
    out = run_tiled(lambda x: x * 2 + 1, batch, (32, 40), 8)
    np.testing.assert_allclose(out, batch * 2 + 1, rtol=1e-6)
    assert tile_count(70, 93, (32, 40), 8) == len(axis_starts(70, 32, 8)) * len(axis_starts(93, 40, 8))
    assert tile_count(30, 30, (32, 40), 8) == 1


def test_more_overlap_means_less_seam_error(tiny_checkpoint):
    model, info = load_weights(tiny_checkpoint)
    runner = TorchRunner(model, info, device="cpu")
    batch = np.random.default_rng(1).random((1, 3, 72, 96), dtype=np.float32)
    whole = runner.run(batch)
    errors = [psnr(whole, run_tiled(runner.run, batch, (36, 48), overlap)) for overlap in (0, 8, 24)]
    assert errors[0] < errors[1] < errors[2]
