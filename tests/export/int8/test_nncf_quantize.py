"""The ``openvino`` QDQ profile: NNCF's nncf.quantize on the tiny model with a tiny calibration set,
checked with OpenVINO (real NNCF and OpenVINO, no mocks)."""

import json

import numpy as np
import onnx
import pytest

from conftest import invoke_cli as invoke, write_rgb

pytest.importorskip("nncf", reason="NNCF is not installed: pip install 'sapnet-export[openvino]'")
pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'sapnet-export[openvino]'")

from sapnet_export.export.int8.nncf_quantize import NNCF_METHOD, quantize_nncf  # noqa: E402
from sapnet_export.export.int8.quantize import int8_conv_nodes, profile_runner  # noqa: E402
from sapnet_export.model.onnx_meta import load_onnx, metadata  # noqa: E402


def test_quantize_nncf_makes_an_int8_qdq_graph_and_honours_the_ignored_scope(tiny_onnx, tmp_path):
    frames = np.random.default_rng(0).random((3, 3, 24, 32), dtype=np.float32)
    full = quantize_nncf(tiny_onnx, tmp_path / "q.onnx", frames=frames)
    convs = [n.name for n in full.graph.node if n.op_type == "Conv"]
    assert int8_conv_nodes(full) == set(convs)  # every Conv reads int8 activations and weights
    kept = [c for c in convs if c.startswith("/model/conv/")]
    partial = quantize_nncf(tiny_onnx, tmp_path / "p.onnx", frames=frames, exclude=kept)
    assert int8_conv_nodes(partial) == set(convs) - set(kept)
    runner = profile_runner("openvino", tmp_path / "q.onnx")
    assert (runner.info.backend, runner.info.precision) == ("openvino", "int8")


def test_openvino_runs_the_nncf_graph_as_onnxruntime_does(tiny_onnx, tmp_path):
    """With NNCF's 'performance' preset (int8 symmetric activations) OpenVINO 2026.4 on an AVX-512
    VNNI CPU without AMX gave 11.5 dB against fp32 where ONNX Runtime gave 52.5 dB on the same graph;
    the profile's 'mixed' preset (u8 activations) must keep the two together."""
    from sapnet_export.measure.fidelity import fidelity
    from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner

    frames = np.random.default_rng(0).random((4, 3, 24, 32), dtype=np.float32)
    quantize_nncf(tiny_onnx, tmp_path / "q.onnx", frames=frames)
    x = np.random.default_rng(5).random((1, 3, 24, 32), dtype=np.float32)
    fp32 = np.clip(OnnxRuntimeRunner(tiny_onnx).run(x), 0, 1)
    by_ort = fidelity(fp32, np.clip(OnnxRuntimeRunner(tmp_path / "q.onnx").run(x), 0, 1)).psnr_db
    by_ov = fidelity(fp32, np.clip(profile_runner("openvino", tmp_path / "q.onnx").run(x), 0, 1)).psnr_db
    assert by_ort > 40 and abs(by_ov - by_ort) < 3, (by_ort, by_ov)


def test_onnx_command_openvino_profile(tiny_checkpoint, tiny_calibration, tmp_path):
    held = write_rgb(tmp_path / "held.png", 24, 32, seed=9)
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--images", held, "--qdq-profile", "openvino",
                          "--min-psnr", "5")
    assert code == 0, output
    assert "fidelity: OpenVINO (CPU) int8" in output and f"int8 (openvino profile, {NNCF_METHOD})" in output
    meta = metadata(load_onnx(tmp_path / "q.onnx"))
    assert (meta["qdq_profile"], meta["precision"]) == ("openvino", "int8")
    report = json.loads((tmp_path / "q.onnx.json").read_text())
    assert report["held_out"]["summary"]["images"] == 1 and report["int8"]["chosen"]["int8_mac_share"] == 1.0
    assert {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node} >= {"QuantizeLinear", "Conv"}


def test_openvino_profile_budget_keeps_groups_in_float(tiny_checkpoint, tiny_calibration, tmp_path):
    held = write_rgb(tmp_path / "held.png", 24, 32, seed=9)
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--images", held, "--qdq-profile", "openvino",
                          "--min-psnr", "200")
    # 200 dB is beyond any int8 mix: the search keeps groups in float, then the gate refuses the file
    assert code == 1 and "even with" in output and "kept in float" in output, output
    assert not (tmp_path / "q.onnx").exists()
