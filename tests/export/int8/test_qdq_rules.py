"""The TensorRT QDQ validator on hand-built graphs (one rule broken at a time) and on real quantized graphs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import parse_in_tensorrt_rtx
from sapnet_export.errors import CheckFailed
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.export.int8.qdq_rules import check_tensorrt_qdq, tensorrt_qdq_violations
from sapnet_export.export.int8.quantize import quantize_int8


def qdq_conv(act_scale=0.1, act_zp=(np.int8, 0), weight_scale=None, weight_axis=0, act_scale_shape=(),
             bias_quantized=False, scale_as_input=False, weight_dtype=np.int8):
    """x -> Q -> DQ -> Conv(weight DQ, bias) -> y: a 4-output-channel 3x3 conv in QDQ form."""
    weight_scale = np.full(4, 0.02, np.float32) if weight_scale is None else weight_scale
    inits = [
        numpy_helper.from_array(np.full(act_scale_shape, act_scale, np.float32), "x_scale"),
        numpy_helper.from_array(np.full(act_scale_shape, act_zp[1], act_zp[0]), "x_zp"),
        numpy_helper.from_array(np.ones((4, 3, 3, 3), weight_dtype), "w_q"),
        numpy_helper.from_array(weight_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(weight_scale.shape, weight_dtype), "w_zp"),
    ]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="q_x"),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w",
                              axis=weight_axis)]
    if bias_quantized:
        inits += [numpy_helper.from_array(np.zeros(4, np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 0.002, np.float32), "b_scale")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale"], ["b"], name="dq_b", axis=0))
    else:
        inits.append(numpy_helper.from_array(np.zeros(4, np.float32), "b"))
    nodes.append(helper.make_node("Conv", ["x_dq", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    if scale_as_input:
        inits = [i for i in inits if i.name != "x_scale"]
        inputs.append(helper.make_tensor_value_info("x_scale", TensorProto.FLOAT, []))
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_a_symmetric_int8_graph_passes():
    assert tensorrt_qdq_violations(qdq_conv()) == []
    check_tensorrt_qdq(qdq_conv())


@pytest.mark.parametrize("kwargs, message", [
    ({"act_zp": (np.int8, 3)}, "q_x: zero point is not 0"),
    ({"act_zp": (np.uint8, 128)}, "q_x: zero point is uint8, not int8"),
    ({"act_scale": 0.0}, "q_x: scale has non-positive"),
    ({"act_scale": -0.5}, "dq_x: scale has non-positive"),
    ({"act_scale_shape": (3,)}, "q_x: per-channel scales on something other than a Conv weight"),
    ({"weight_axis": 1}, "dq_w: per-channel axis 1, TensorRT wants axis 0"),
    ({"bias_quantized": True}, "conv: bias is quantized"),
    ({"bias_quantized": True}, "dq_b: dequantizes int32 data, not int8"),
    ({"scale_as_input": True}, "q_x: scale 'x_scale' is not a constant initializer"),
    ({"weight_dtype": np.uint8}, "dq_w: zero point is uint8, not int8"),
])
def test_each_rule_is_enforced(kwargs, message):
    model = qdq_conv(**kwargs)
    problems = tensorrt_qdq_violations(model)
    assert any(message in p for p in problems), problems
    with pytest.raises(CheckFailed, match="violations of TensorRT's QDQ rules"):
        check_tensorrt_qdq(model)


def _tiny_qdq(tiny_model, tmp_path, profile):
    onnx.save(to_onnx_proto(tiny_model, 1, 17, None), str(tmp_path / "fp32.onnx"))
    frames = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    return quantize_int8(tmp_path / "fp32.onnx", tmp_path / f"{profile}.onnx", profile=profile,
                         frames=frames, cache_path=tmp_path / f"{profile}.json")


def test_tensorrt_profile_parses_in_tensorrt_rtx_and_cpu_profile_does_not(tiny_model, tmp_path):
    _tiny_qdq(tiny_model, tmp_path, "tensorrt")
    ok, errors, network = parse_in_tensorrt_rtx(tmp_path / "tensorrt.onnx")
    assert ok, errors
    assert network.num_inputs == 1 and network.get_input(0).name == "rainy"
    _tiny_qdq(tiny_model, tmp_path, "cpu")
    ok, errors, _ = parse_in_tensorrt_rtx(tmp_path / "cpu.onnx")
    assert not ok and any("zero point" in e.lower() for e in errors)
