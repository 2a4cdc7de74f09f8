"""The ``openvino`` QDQ profile: NNCF's nncf.quantize on the tiny model with a tiny calibration set,
checked with OpenVINO (real NNCF and OpenVINO, no mocks)."""

import json

import numpy as np
import onnx
import pytest

from conftest import invoke_cli as invoke, write_rgb

pytest.importorskip("nncf", reason="NNCF is not installed: pip install 'sapnet-export[openvino]'")
pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'sapnet-export[openvino]'")

from sapnet_export.errors import InputError  # noqa: E402
from sapnet_export.export.int8.nncf_quantize import nncf_method, quantize_nncf  # noqa: E402
from sapnet_export.export.int8.quantize import int8_conv_nodes, profile_runner  # noqa: E402
from sapnet_export.model.onnx_meta import load_onnx, metadata  # noqa: E402


def test_quantize_nncf_makes_an_int8_qdq_graph_and_honours_the_ignored_scope(tiny_onnx, tmp_path):
    frames = np.random.default_rng(0).random((3, 3, 24, 32), dtype=np.float32)
    full = quantize_nncf(tiny_onnx, tmp_path / "q.onnx", frames=frames)
    convs = [n.name for n in full.graph.node if n.op_type == "Conv"]
    assert int8_conv_nodes(full) == set(convs)  # every Conv reads int8 activations and weights
    types = {init.name: init.data_type for init in full.graph.initializer}
    activation_zero_points = {types[n.input[2]] for n in full.graph.node if n.op_type == "QuantizeLinear"}
    assert activation_zero_points == {onnx.TensorProto.UINT8}  # activations_to_uint8 ran
    kept = [c for c in convs if c.startswith("/model/conv/")]
    partial = quantize_nncf(tiny_onnx, tmp_path / "p.onnx", frames=frames, exclude=kept)
    assert int8_conv_nodes(partial) == set(convs) - set(kept)
    runner = profile_runner("openvino", tmp_path / "q.onnx")
    assert (runner.info.backend, runner.info.precision) == ("openvino", "int8")


def _input_scale(model: onnx.ModelProto) -> float:
    """The scale of the QuantizeLinear on the graph input ``rainy``."""
    from onnx import numpy_helper

    scales = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    (node,) = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "rainy"]
    return float(scales[node.input[1]])


def test_calib_method_chooses_nncf_range_estimator(tiny_onnx, tmp_path):
    """minmax covers every frame's range; mean-minmax (NNCF's default) the mean of the frames' ranges,
    so one bright frame among dark ones is clipped (what made the profile fail in heavy rain)."""
    frames = np.random.default_rng(1).random((4, 3, 24, 32), dtype=np.float32) * 0.25
    frames[0] *= 4.0  # one frame reaches ~1.0, three stop at 0.25
    top = {m: _input_scale(quantize_nncf(tiny_onnx, tmp_path / f"{m}.onnx", frames=frames, calib_method=m)) * 255
           for m in ("minmax", "mean-minmax")}
    brightest = float(frames.max())
    assert top["minmax"] >= brightest  # the bright frame fits (NNCF widens a little for the zero point)
    assert top["mean-minmax"] < 0.7 * brightest  # the bright frame is clipped
    with pytest.raises(InputError, match="--calib-method percentile: the openvino profile"):
        quantize_nncf(tiny_onnx, tmp_path / "p.onnx", frames=frames, calib_method="percentile")


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
    assert "fidelity: OpenVINO (CPU) int8" in output and f"int8 (openvino profile, calibration {nncf_method('minmax')} <auto: openvino profile>)" in output
    meta = metadata(load_onnx(tmp_path / "q.onnx"))
    assert "median s/image (OpenVINO CPU)" in output  # the Runner that checked it, timed it
    assert (meta["qdq_profile"], meta["precision"]) == ("openvino", "int8")
    assert (meta["calib_method"], meta["calib_method_from"]) == ("nncf minmax (fast bias correction)",
                                                                 "auto: openvino profile")
    report = json.loads((tmp_path / "q.onnx.json").read_text())
    assert (meta["keep_fp32"], meta["keep_fp32_from"]) == ("conv0,conv,lstm_cell", "profile default")
    assert set(meta["float_groups"].split(",")) == {"conv0", "conv", "lstm_cell"}
    assert report["held_out"]["summary"]["images"] == 1 and 0 < report["int8"]["chosen"]["int8_mac_share"] < 1
    assert {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node} >= {"QuantizeLinear", "Conv"}


def test_openvino_profile_budget_keeps_groups_in_float(tiny_checkpoint, tiny_calibration, tmp_path):
    held = write_rgb(tmp_path / "held.png", 24, 32, seed=9)
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--images", held, "--qdq-profile", "openvino",
                          "--min-psnr", "200")
    # 200 dB is beyond any int8 mix: the search keeps groups in float, then the gate refuses the file
    assert code == 1 and "even with" in output and "kept in float" in output, output
    assert not (tmp_path / "q.onnx").exists()


def _signed_concat_conv_graph() -> onnx.ModelProto:
    """Two inputs, each through an int8 QuantizeLinear/DequantizeLinear pair (zero point -52), a
    Concat, and a 3x3 Conv with int8 per-channel weights: the pattern OpenVINO 2026.4.1 ran wrongly on
    a CPU without AMX (the stage-3 LSTM gates of NNCF's graph)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = rng.integers(-127, 128, (8, 8, 3, 3), dtype=np.int8)
    inits = [numpy_helper.from_array(np.array(0.0076, np.float32), "s"),
             numpy_helper.from_array(np.array(-52, np.int8), "zp"),
             numpy_helper.from_array(weights, "w_q"),
             numpy_helper.from_array(np.full(8, 0.004, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(8, np.int8), "w_zp")]
    nodes = []
    for name in ("a", "b"):
        nodes += [helper.make_node("QuantizeLinear", [name, "s", "zp"], [f"{name}_q"], name=f"{name}/Q"),
                  helper.make_node("DequantizeLinear", [f"{name}_q", "s", "zp"], [f"{name}_dq"], name=f"{name}/DQ")]
    nodes += [helper.make_node("Concat", ["a_dq", "b_dq"], ["cat"], axis=1, name="Concat"),
              helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], axis=0, name="w/DQ"),
              helper.make_node("Conv", ["cat", "w"], ["y"], pads=[1, 1, 1, 1], name="Conv")]
    shape = [1, 4, 16, 16]
    graph = helper.make_graph(nodes, "signed_concat_conv",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_activations_to_uint8_is_exact_and_makes_openvino_agree_with_onnxruntime(tmp_path):
    import onnxruntime as ort
    import openvino as ov

    from sapnet_export.export.int8.nncf_quantize import activations_to_uint8

    model = _signed_concat_conv_graph()
    onnx.save(model, str(tmp_path / "int8.onnx"))
    assert activations_to_uint8(model) == 4  # the two activation pairs, not the weights' DequantizeLinear
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp_path / "uint8.onnx"))
    zero_points = {init.name: init.data_type for init in model.graph.initializer}
    assert zero_points["zp_uint8"] == onnx.TensorProto.UINT8 and "zp" not in zero_points
    assert zero_points["w_zp"] == onnx.TensorProto.INT8 and zero_points["w_q"] == onnx.TensorProto.INT8

    rng = np.random.default_rng(4)
    feeds = {"a": rng.uniform(-0.6, 1.5, (1, 4, 16, 16)).astype(np.float32),
             "b": rng.uniform(-0.6, 1.5, (1, 4, 16, 16)).astype(np.float32)}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    by_ort = [ort.InferenceSession(str(tmp_path / name), options, providers=["CPUExecutionProvider"])
              .run(None, feeds)[0] for name in ("int8.onnx", "uint8.onnx")]
    np.testing.assert_array_equal(by_ort[0], by_ort[1])  # the same quantized values
    compiled = ov.Core().compile_model(str(tmp_path / "uint8.onnx"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    by_ov = compiled(feeds)[0]
    np.testing.assert_allclose(by_ov, by_ort[1], rtol=0, atol=1e-3 * float(np.abs(by_ort[1]).max()))

