import importlib.metadata

import numpy as np
import onnx
import pytest

from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import export_onnx
from sapnet_export.runners import create_runner
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner, onnxruntime_distribution
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def tiny_onnx(tiny_checkpoint, tmp_path):
    return export_onnx(*load_weights(tiny_checkpoint), tmp_path / "t.onnx").path


def test_describes_itself(tiny_onnx):
    info = OnnxRuntimeRunner(tiny_onnx).info
    assert (info.backend, info.precision, info.device, info.stages) == ("onnxruntime", "fp32", "cpu", 2)
    dist, version = onnxruntime_distribution()
    assert info.versions == {dist: version}


def test_stage_mismatch_is_refused(tiny_onnx):
    with pytest.raises(InputError, match="exported with 2 stages, --stages 1 asked"):
        create_runner("onnxruntime", model=str(tiny_onnx), stages=1)


def test_unknown_or_missing_provider_is_refused(tiny_onnx):
    with pytest.raises(InputError, match="device 'npu'"):
        OnnxRuntimeRunner(tiny_onnx, device="npu")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA; the refusal is for builds without it")
    with pytest.raises(InputError, match="CUDAExecutionProvider is not in this ONNX Runtime build"):
        OnnxRuntimeRunner(tiny_onnx, device="cuda")


def test_foreign_model_is_refused(tmp_path):
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = lambda name: onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1])  # noqa: E731
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [value("x")], [value("y")]))
    onnx.save(model, tmp_path / "other.onnx")
    with pytest.raises(InputError, match="expected input 'rainy' .* and output 'derained'"):
        OnnxRuntimeRunner(tmp_path / "other.onnx")


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(InputError, match="ONNX file not found"):
        OnnxRuntimeRunner(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="bad.onnx: not a readable ONNX model"):
        OnnxRuntimeRunner(tmp_path / "bad.onnx")


def test_both_onnxruntime_wheels_are_refused(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.0")
    with pytest.raises(InputError, match="both onnxruntime and onnxruntime-gpu are installed"):
        onnxruntime_distribution()


def test_output_is_float32(tiny_onnx):
    out = OnnxRuntimeRunner(tiny_onnx).run(np.zeros((1, 3, 5, 5), np.float32))
    assert out.dtype == np.float32 and out.shape == (1, 3, 5, 5)


def test_shared_pooling_export_runs_whole_frames_and_tile_batches(tiny_checkpoint, tmp_path):
    from sapnet_export.runners.torch_runner import TorchRunner
    from sapnet_export.model.tiling import TileLayout

    import torch

    from sapnet_export.model.network import CRALayer

    model, info = load_weights(tiny_checkpoint)
    with torch.no_grad():  # random weights barely attend; strengthen the attention so pooling matters
        for layer in model.modules():
            if isinstance(layer, CRALayer):
                layer.conv_1_1.weight *= 100
    shared = OnnxRuntimeRunner(export_onnx(model, info, tmp_path / "s.onnx", shared_pooling=True).path)
    plain = OnnxRuntimeRunner(export_onnx(model, info, tmp_path / "p.onnx").path)
    assert shared.shared_pooling and not plain.shared_pooling
    # whole frames: each sample pools on its own, as the plain export does
    batch = np.random.default_rng(0).random((2, 3, 30, 44), dtype=np.float32)
    batch[0] *= np.linspace(0, 1, 44, dtype=np.float32)  # dark left, bright right: tiles differ
    np.testing.assert_allclose(shared.run(batch), plain.run(batch), atol=1e-5)
    # a tile batch pools over all its tiles with the given weights, as PyTorch does
    layout = TileLayout(30, 44, (20, 28), 8)
    tiles = layout.tile_batch(batch[:1])
    weights = layout.pool_weights()
    reference = TorchRunner(model, info).run_tiles(tiles, weights)
    np.testing.assert_allclose(shared.run_tiles(tiles, weights), reference, atol=1e-5)
    assert np.abs(plain.run(tiles) - reference).max() > 1e-4  # 10x the tolerance: per-tile pooling differs
    with pytest.raises(NotImplementedError, match="pools each input on its own"):
        plain.run_tiles(tiles, weights)
    with pytest.raises(InputError, match=r"pool weights must be float32 \[4, 1, 20, 28\]"):
        shared.run_tiles(tiles, weights[:, :, :10])


def test_session_options_are_applied_and_recorded(tiny_onnx):
    x = np.random.default_rng(0).random((1, 3, 16, 20), dtype=np.float32)
    default = OnnxRuntimeRunner(tiny_onnx)
    tuned = OnnxRuntimeRunner(tiny_onnx, optimization="extended",
                              session_config={"session.intra_op.allow_spinning": "0"})
    assert default.info.settings == {"graph_optimization": "all"}
    assert tuned.info.settings == {"graph_optimization": "extended", "session.intra_op.allow_spinning": "0"}
    np.testing.assert_allclose(tuned.run(x), default.run(x), atol=1e-5)
    with pytest.raises(InputError, match="graph optimization 'fastest': choose one of all, extended"):
        OnnxRuntimeRunner(tiny_onnx, optimization="fastest")
