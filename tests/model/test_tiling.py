import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.measure.fidelity import psnr
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.tiling import axis_starts, run_tiled, tile_count
from sapnet_export.model.checkpoints import load_weights


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


def test_plan_tile_takes_the_smaller_of_tile_and_runner_limit():
    from sapnet_export.model.tiling import plan_tile

    assert plan_tile(100, 200, None, None) is None
    assert plan_tile(100, 200, (128, 256), None) is None  # the frame fits: run whole
    assert plan_tile(100, 200, (64, 64), None) == (64, 64)
    assert plan_tile(100, 200, None, (80, 300)) == (80, 300)  # only the profile: taller than it
    assert plan_tile(100, 200, (64, 512), (80, 150)) == (64, 150)


def test_pool_weights_are_a_partition_of_the_frame():
    from sapnet_export.model.tiling import TileLayout

    layout = TileLayout(70, 93, (32, 40), 8)
    weights = layout.pool_weights()
    assert weights.shape == (len(layout.windows), 1, 32, 40) and weights.dtype == np.float32
    assert weights.sum() == pytest.approx(1.0, rel=1e-5)
    # a constant image pools to its value, whatever the tiles
    assert float((weights * 0.7).sum()) == pytest.approx(0.7, rel=1e-5)


@pytest.mark.real
def test_shared_pooling_tiles_match_the_whole_frame_better(official_checkpoint, tmp_path):
    """Per-tile pooling is the error overlap cannot hide; tiles that share the frame's pooling lose it,
    in PyTorch and in ONNX Runtime with a shared-pooling export (published weights on a Rain100L crop;
    docs/commands.md 'Tiling' has the full-size measurement)."""
    from conftest import need_shared
    from sapnet_export.data.images import read_image
    from sapnet_export.model.tiling import run_tiled_shared_pooling

    model, info = load_weights(str(official_checkpoint))
    runner = TorchRunner(model, info, device="cpu")
    batch = np.ascontiguousarray(read_image(need_shared("data/rain100l/input/100.png"))[None, :, :160, :224])
    whole = runner.run(batch)
    alone = psnr(whole, run_tiled(runner.run, batch, (96, 96), 32))
    shared = psnr(whole, run_tiled_shared_pooling(runner.run_tiles, batch, (96, 96), 32))
    assert alone < 50 < shared and shared > alone + 10, (shared, alone)
    from sapnet_export.export.onnx_export import export_onnx
    from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner

    ort = OnnxRuntimeRunner(export_onnx(model, info, tmp_path / "s.onnx", shared_pooling=True).path)
    ort_shared = psnr(ort.run(batch), run_tiled_shared_pooling(ort.run_tiles, batch, (96, 96), 32))
    assert ort_shared > 50 and abs(ort_shared - shared) < 1, (ort_shared, shared)
    with pytest.raises(InputError, match="one frame at a time"):
        run_tiled_shared_pooling(runner.run_tiles, np.concatenate([batch, batch]), (96, 96), 32)
