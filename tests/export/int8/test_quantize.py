import numpy as np
import onnx
import pytest

from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.export.int8.groups import attention_nodes
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from sapnet_export.export.int8.quantize import (GROUPS, analysis_calib_method, conv_macs, int8_conv_nodes,
                                                node_groups, quantize_int8, resolve_calib_method, select_nodes)


@pytest.fixture
def fp32(tiny_model):
    return to_onnx_proto(tiny_model, 2, 17, None)


@pytest.fixture
def frames():
    return np.random.default_rng(0).random((3, 3, 16, 24), dtype=np.float32)


def test_every_node_is_in_a_group(fp32):
    groups = node_groups(fp32)
    assert set(groups) == {n.name for n in fp32.graph.node}
    assert set(groups.values()) == set(GROUPS)
    convs = [n for n in fp32.graph.node if n.op_type == "Conv"]
    by_group = {g: sum(groups[n.name] == g for n in convs) for g in GROUPS}
    # two stages; each residual block has 2 3x3 convs and 2 CRA layers of 3 1x1 convs
    assert by_group == {"conv0": 2, "conv_i": 2, "conv_f": 2, "conv_g": 2, "conv_o": 2, "lstm_cell": 0,
                        "res_conv1": 16, "res_conv2": 16, "res_conv3": 16, "res_conv4": 16,
                        "res_conv5": 16, "conv": 2}
    residual_adds = [n.name for n in fp32.graph.node if n.op_type == "Add" and groups[n.name] == "res_conv3"
                     and not n.name.startswith("/model/res_conv3/")]
    assert len(residual_adds) == 2  # relu(block(x) + x) of each stage


def test_select_nodes_by_group_or_glob(fp32):
    groups = node_groups(fp32)
    assert set(select_nodes(fp32, ["conv"])) == {n for n, g in groups.items() if g == "conv"}
    globbed = select_nodes(fp32, ["/model/res_conv5/*"])
    assert globbed and all(n.startswith("/model/res_conv5/") for n in globbed)
    with pytest.raises(InputError, match="matches no node"):
        select_nodes(fp32, ["res_conv9"])


def test_conv_macs_match_the_formula(fp32):
    macs = conv_macs(fp32, 10, 12)
    assert macs["/model/conv0/conv0.0/Conv"] == 32 * 10 * 12 * 6 * 3 * 3
    assert macs["/model/res_conv1/res_conv1.1/conv_du/conv_du.0/Conv"] == 2 * 32  # on the pooled 1x1
    per_stage = 32 * 6 * 9 + 4 * 32 * 64 * 9 + 10 * 32 * 32 * 9 + 3 * 32 * 9
    pooled = 10 * (32 * 2 + 2 * 32 + 32 * 32)
    assert sum(macs.values()) == 2 * (per_stage * 10 * 12 + pooled)


def _quantize(fp32, frames, tmp_path, profile, **kwargs):
    onnx.save(fp32, str(tmp_path / "fp32.onnx"))
    return quantize_int8(tmp_path / "fp32.onnx", tmp_path / f"{profile}.onnx", profile=profile,
                         frames=frames, cache_path=tmp_path / f"{profile}.json", **kwargs)


def test_tensorrt_profile_follows_tensorrts_rules(fp32, frames, tmp_path):
    quantized = _quantize(fp32, frames, tmp_path, "tensorrt")
    assert tensorrt_qdq_violations(quantized) == []
    inits = {i.name: i for i in quantized.graph.initializer}
    zero_points = [inits[n.input[2]] for n in quantized.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and {z.data_type for z in zero_points} == {onnx.TensorProto.INT8}
    convs = [n for n in quantized.graph.node if n.op_type == "Conv"]
    assert int8_conv_nodes(quantized) == {n.name for n in convs}
    assert all(inits[n.input[2]].data_type == onnx.TensorProto.FLOAT for n in convs if len(n.input) > 2)
    assert (tmp_path / "tensorrt.json").is_file()  # calibration cache for reuse
    # Conv inputs only: no Conv output feeds a QuantizeLinear (TensorRT runs the Conv in int8 and
    # writes float; docs/design.md section 3)
    conv_outputs = {n.output[0] for n in convs}
    assert not [n.name for n in quantized.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in conv_outputs]


def _quantized_conv_outputs(model: onnx.ModelProto) -> int:
    conv_outputs = {n.output[0] for n in model.graph.node if n.op_type == "Conv"}
    return sum(n.op_type == "QuantizeLinear" and n.input[0] in conv_outputs for n in model.graph.node)


def test_cpu_profile_is_u8s8_and_breaks_tensorrt_rules(fp32, frames, tmp_path):
    quantized = _quantize(fp32, frames, tmp_path, "cpu")
    inits = {i.name: i for i in quantized.graph.initializer}
    types = {inits[n.input[2]].data_type for n in quantized.graph.node
             if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    assert types == {onnx.TensorProto.UINT8}
    assert any("not int8" in v for v in tensorrt_qdq_violations(quantized))
    # ONNX Runtime fuses Conv into QLinearConv only with a quantized output: the cpu profile keeps them
    assert _quantized_conv_outputs(quantized) > 0


def test_excluded_nodes_stay_float_and_the_cache_is_reused(fp32, frames, tmp_path):
    full = _quantize(fp32, frames, tmp_path, "tensorrt")
    keep = select_nodes(fp32, ["conv0", "conv"])
    partial = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "p.onnx", profile="tensorrt", frames=None,
                            cache_path=tmp_path / "tensorrt.json", exclude=keep)
    int8 = int8_conv_nodes(partial)
    assert int8 and not int8 & set(keep) and int8 == int8_conv_nodes(full) - set(keep)


def test_bad_options(fp32, frames, tmp_path):
    with pytest.raises(InputError, match="--qdq-profile fp8"):
        _quantize(fp32, frames, tmp_path, "fp8")
    with pytest.raises(InputError, match="--calib-method mse"):
        _quantize(fp32, frames, tmp_path, "tensorrt", calib_method="mse")
    with pytest.raises(InputError, match="needs calibration frames"):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / "q.onnx", profile="tensorrt", frames=None,
                      cache_path=tmp_path / "none.json")


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods(fp32, frames, tmp_path, method):
    quantized = _quantize(fp32, frames, tmp_path, "tensorrt", calib_method=method)
    assert tensorrt_qdq_violations(quantized) == [] and int8_conv_nodes(quantized)


def test_attention_nodes_are_each_cra_layers_vector_path(fp32):
    names = set(attention_nodes(fp32))
    nodes = {n.name: n for n in fp32.graph.node}
    kinds = sorted({nodes[n].op_type for n in names})
    assert kinds == ["Add", "Conv", "GlobalAveragePool", "Relu", "Sigmoid"]
    pools = [n for n in fp32.graph.node if n.op_type == "GlobalAveragePool"]
    assert len(pools) == 20  # 2 stages x 5 residual blocks x 2 CRA layers
    assert sum(nodes[n].op_type == "Conv" for n in names) == 3 * len(pools)  # conv_du (2) and conv_1_1
    # the path stops before the Mul that scales the features; the feature convs are not in it
    assert not any(nodes[n].op_type == "Mul" for n in names)
    assert all("/conv_du/" in n or "/conv_1_1" in n for n in names if nodes[n].op_type == "Conv")
    assert set(select_nodes(fp32, ["cra"])) == names
    macs = conv_macs(fp32, 32, 48)
    share = sum(macs[n] for n in names if n in macs) / sum(macs.values())
    assert 0 < share < 1e-4


@pytest.mark.parametrize("method, profile, synthetic, expected", [
    ("auto", "tensorrt", 6, ("minmax", "auto: tensorrt profile, 6 synthetic-rain calibration frames")),
    ("auto", "tensorrt", 0, ("percentile", "auto: no synthetic-rain calibration frames")),
    ("auto", "cpu", 6, ("percentile", "auto: cpu profile")),
    ("auto", "openvino", 0, ("minmax", "auto: openvino profile")),
    ("auto", "openvino", 6, ("minmax", "auto: openvino profile")),
    ("entropy", "tensorrt", 6, ("entropy", "--calib-method")),
    ("mean-minmax", "openvino", 6, ("mean-minmax", "--calib-method")),
])
def test_resolve_calib_method(method, profile, synthetic, expected):
    assert resolve_calib_method(method, profile, synthetic) == expected


def test_analysis_method_is_one_the_profile_takes():
    assert (analysis_calib_method("tensorrt"), analysis_calib_method("cpu"),
            analysis_calib_method("openvino")) == ("percentile", "percentile", "minmax")
