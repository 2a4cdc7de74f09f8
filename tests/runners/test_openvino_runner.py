"""The OpenVINO Runner against ONNX Runtime on the tiny model (real OpenVINO, no mocks)."""

import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import export_onnx
from sapnet_export.machine import cpu_features
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.model.checkpoints import load_weights
from sapnet_export.runners import create_runner
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'sapnet-export[openvino]'")
from sapnet_export.runners.openvino_runner import MAX_SHAPES, OpenVinoRunner, check_bf16  # noqa: E402

SHAPES = [(1, 3, 24, 32), (3, 3, 24, 32), (1, 3, 37, 53), (2, 3, 16, 20)]


@pytest.fixture
def tiny_fp32(tiny_checkpoint, tmp_path):
    return export_onnx(*load_weights(tiny_checkpoint), tmp_path / "t.onnx").path


def _batch(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_matches_onnxruntime_on_every_shape_without_recompiling(tiny_fp32):
    runner, reference = OpenVinoRunner(tiny_fp32), OnnxRuntimeRunner(tiny_fp32)
    for shape in SHAPES:
        x = _batch(shape)
        np.testing.assert_allclose(runner.run(x), reference.run(x), atol=2e-6, err_msg=str(shape))
    # one dynamic model per performance hint, whatever the frame sizes
    assert sorted(runner._compiled) == [("LATENCY", None), ("THROUGHPUT", None)]
    assert runner.streams >= 1


def test_describes_itself_with_pinned_f32(tiny_fp32, tmp_path):
    runner = create_runner("openvino", model=str(tiny_fp32))
    info = runner.info
    assert (info.backend, info.precision, info.device, info.stages) == ("openvino", "fp32", "CPU", 2)
    assert info.settings["inference_precision"] == "f32"
    assert info.settings["shapes"] == "dynamic N, H, W"
    assert info.versions["openvino"] == ov.__version__.split("-")[0]
    assert OpenVinoRunner(tiny_fp32, threads=1).info.threads == 1


def test_fp16_and_int8_graphs_run_close_to_onnxruntime(tiny_models, tiny_checkpoint, tmp_path):
    fp16 = export_onnx(*load_weights(tiny_checkpoint), tmp_path / "h.onnx", precision="fp16").path
    x = _batch((1, 3, 24, 32), seed=3)
    for path, min_db in ((fp16, 60.0), (tiny_models["int8"], 30.0)):
        runner = OpenVinoRunner(path)
        assert runner.info.precision == ("fp16" if path == fp16 else "int8")
        assert runner.info.settings["inference_precision"] == "f32"
        score = fidelity(np.clip(OnnxRuntimeRunner(path).run(x), 0, 1), np.clip(runner.run(x), 0, 1))
        assert score.psnr_db >= min_db, (path, score)


def test_int8_activation_pairs_are_read_as_uint8(tiny_models, tiny_fp32):
    """The tensorrt profile's int8 activations: OpenVINO 2026.4.1 ran the published checkpoint's graph
    at 26.3 dB from fp32 on a CPU without AMX; the Runner reads it with the equal uint8 pairs, says
    so, and leaves the file as it was."""
    from sapnet_export.fileio import sha256_file

    path = tiny_models["int8"]
    before = sha256_file(path)
    runner = OpenVinoRunner(path, cache_dir="")
    assert "read as the equal uint8 pairs" in runner.info.settings["int8_activations"]
    assert sha256_file(path) == before
    x = _batch((1, 3, 24, 32), seed=3)
    score = fidelity(np.clip(OnnxRuntimeRunner(path).run(x), 0, 1), np.clip(runner.run(x), 0, 1))
    assert score.psnr_db >= 45, score
    assert "int8_activations" not in OpenVinoRunner(tiny_fp32, cache_dir="").info.settings


def test_bf16_is_asked_for_and_recorded_or_refused(tiny_fp32):
    x = _batch((1, 3, 24, 32))
    f32 = OpenVinoRunner(tiny_fp32).run(x)
    if not cpu_features()["native_bf16"]:
        with pytest.raises(InputError, match="--precision bf16: .*--force-bf16"):
            OpenVinoRunner(tiny_fp32, precision="bf16")
        forced = OpenVinoRunner(tiny_fp32, precision="bf16", force_bf16=True)
        assert forced.info.settings["bf16"].startswith("forced: ")
        return
    runner = create_runner("openvino", model=str(tiny_fp32), precision="bf16")
    assert runner.info.precision == "bf16" and runner.info.settings["inference_precision"] == "bf16"
    out = runner.run(x)
    # bf16 keeps 8 bits of mantissa: visibly different from f32, still close
    assert np.abs(out - f32).max() > 1e-5
    assert fidelity(np.clip(f32, 0, 1), np.clip(out, 0, 1)).psnr_db > 30


def test_an_int8_graph_takes_bf16_for_its_float_parts(tiny_models):
    """``verify --backend openvino --precision bf16`` of an int8 file: the label stays int8, the
    hint is bf16 (what ``bench`` format ``openvino-int8-bf16`` runs)."""
    if not cpu_features()["native_bf16"]:
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX)")
    runner = create_runner("openvino", model=str(tiny_models["int8"]), precision="bf16")
    assert (runner.info.precision, runner.info.settings["inference_precision"]) == ("int8", "bf16")
    with pytest.raises(InputError, match="--precision fp16: "):
        create_runner("openvino", model=str(tiny_models["int8"]), precision="fp16")


def test_bf16_refusal_and_force_follow_the_capabilities():
    with pytest.raises(InputError, match="have no BF16.*neither AVX512-BF16 nor AMX-BF16.*--force-bf16"):
        check_bf16(["FP32", "INT8"], native=False, device="CPU", force=False)
    assert check_bf16(["FP32", "BF16"], native=True, device="CPU", force=False) is None
    note = check_bf16(["FP32", "BF16"], native=False, device="CPU", force=True)
    assert note == "forced: the CPU has neither AVX512-BF16 nor AMX-BF16"
    assert check_bf16(["FP32", "BF16"], native=False, device="GPU", force=False) is None


def test_precisions_the_graph_does_not_have_are_refused(tiny_fp32, tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="--precision int8: this fp32 graph runs as fp32 or, on OpenVINO, bf16"):
        OpenVinoRunner(tiny_fp32, precision="int8")
    fp16 = export_onnx(*load_weights(tiny_checkpoint), tmp_path / "h.onnx", precision="fp16").path
    with pytest.raises(InputError, match="bf16 is for fp32 and int8 graphs; this one is fp16"):
        OpenVinoRunner(fp16, precision="bf16")
    with pytest.raises(InputError, match="--precision bf16: the onnxruntime backend runs .* in fp32"):
        create_runner("onnxruntime", model=str(tiny_fp32), precision="bf16")


def test_absent_and_unknown_devices_are_refused_never_a_fallback(tiny_fp32):
    available = ov.Core().available_devices
    for device in ("npu", "gpu"):
        if any(d.startswith(device.upper()) for d in available):
            continue
        with pytest.raises(InputError, match=f"OpenVINO sees no {device.upper()} here .*never falls back"):
            OpenVinoRunner(tiny_fp32, device=device)
    with pytest.raises(InputError, match="device 'cuda': choose one of cpu, gpu, npu, auto"):
        create_runner("openvino", model=str(tiny_fp32), device="cuda")


def test_static_shapes_keep_a_bounded_cache(tiny_fp32):
    runner, reference = OpenVinoRunner(tiny_fp32, static_shapes=True), OnnxRuntimeRunner(tiny_fp32)
    assert runner.info.settings["shapes"].startswith("static")
    for width in range(16, 16 + MAX_SHAPES + 2):
        x = _batch((1, 3, 16, width))
        np.testing.assert_allclose(runner.run(x), reference.run(x), atol=2e-6)
    assert len(runner._compiled) == MAX_SHAPES
    assert ("LATENCY", (1, 3, 16, 16 + MAX_SHAPES + 1)) in runner._compiled


def test_compiled_models_are_cached_on_disk(tiny_fp32, tmp_path):
    cache = tmp_path / "cache"
    runner = OpenVinoRunner(tiny_fp32, cache_dir=cache)
    assert runner.info.settings["cache_dir"] == str(cache)
    assert any(cache.iterdir())
    assert OpenVinoRunner(tiny_fp32, cache_dir="").info.settings["cache_dir"] == "none"


def test_shared_pooling_graph_runs_frames_and_tiles_like_onnxruntime(tiny_checkpoint, tmp_path):
    from sapnet_export.model.tiling import TileLayout

    path = export_onnx(*load_weights(tiny_checkpoint), tmp_path / "s.onnx", shared_pooling=True).path
    runner, reference = OpenVinoRunner(path), OnnxRuntimeRunner(path)
    assert runner.shared_pooling
    batch = _batch((2, 3, 30, 44))
    np.testing.assert_allclose(runner.run(batch), reference.run(batch), atol=2e-6)
    layout = TileLayout(30, 44, (20, 28), 8)
    tiles, weights = layout.tile_batch(batch[:1]), layout.pool_weights()
    np.testing.assert_allclose(runner.run_tiles(tiles, weights), reference.run_tiles(tiles, weights), atol=2e-6)


def test_missing_file_and_model_option(tmp_path):
    with pytest.raises(InputError, match="ONNX file not found"):
        OpenVinoRunner(tmp_path / "none.onnx")
    with pytest.raises(InputError, match="the openvino backend needs --model"):
        create_runner("openvino")
