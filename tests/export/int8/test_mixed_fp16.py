"""``--float-precision fp16``: the float parts of a tensorrt-profile int8 graph in float16, its QDQ
patterns intact (TensorRT's rules), measured against PyTorch, and built by TensorRT-RTX."""

import json

import onnx
import pytest

from conftest import TINY_PROFILE, invoke_cli, write_rgb
from sapnet_export.errors import InputError
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.export.int8.mixed_fp16 import float_parts_to_fp16, quantized_nodes
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from sapnet_export.export.onnx_export import Int8Options, export_onnx
from sapnet_export.model.checkpoints import load_weights


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}


def test_float_parts_in_fp16_keep_the_quantized_convs_reading_their_dequantize(tiny_models):
    quantized = onnx.load(str(tiny_models["int8"]))
    converted, fp16 = float_parts_to_fp16(quantized)
    assert not tensorrt_qdq_violations(converted)
    producer = {out: n for n in converted.graph.node for out in n.output}
    convs = [n for n in converted.graph.node if n.name in set(quantized_nodes(quantized)) and n.op_type == "Conv"]
    assert convs and all(producer[n.input[1]].op_type == "DequantizeLinear" for n in convs)  # no Cast between
    types = _types(converted)
    assert all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in convs)  # quantized Convs: float32 out
    kinds = {n.op_type for n in converted.graph.node if n.name in set(fp16)}
    assert {"Sigmoid", "Tanh", "Add", "Mul"} <= kinds  # the LSTM gates, residual sums, attention
    assert [v.type.tensor_type.elem_type for v in (*converted.graph.input, *converted.graph.output)] == \
        [onnx.TensorProto.FLOAT] * 2


def test_export_with_fp16_float_parts_is_measured_again(tiny_checkpoint, tiny_calibration, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    held = write_rgb(tmp_path / "held.png", 24, 32, seed=9)
    int8 = Int8Options(calibration=load_calibration(tiny_calibration), float_precision="fp16", keep_fp32=("conv0",))
    result = export_onnx(model, info, tmp_path / "q16.onnx", precision="int8", images=[held], int8=int8,
                         min_psnr_db=5)
    assert result.metadata["float_precision"] == "fp16" and int(result.metadata["fp16_nodes"]) > 0
    graph = onnx.load(str(result.path))
    assert not tensorrt_qdq_violations(graph)
    conv0 = [n for n in graph.graph.node if n.op_type == "Conv" and "/conv0/" in n.name]
    types = _types(graph)
    assert conv0 and all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in conv0)  # kept float: fp16
    # the held-out rows are the written graph's, not the float32 search's
    assert result.held_out[0].fidelity.psnr_db != result.budget.chosen.results[0].fidelity.psnr_db
    with pytest.raises(InputError, match="--float-precision fp16 is for the tensorrt profile"):
        export_onnx(model, info, tmp_path / "c.onnx", precision="int8", images=[held],
                    int8=Int8Options(calibration=int8.calibration, profile="cpu", float_precision="fp16"))
    with pytest.raises(InputError, match="--float-precision bf16: choose one of fp32, fp16"):
        export_onnx(model, info, tmp_path / "c.onnx", precision="int8", images=[held],
                    int8=Int8Options(calibration=int8.calibration, float_precision="bf16"))
    assert not (tmp_path / "c.onnx").exists()


def test_trt_int8_fp16_engine_builds(tiny_checkpoint, tiny_calibration, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    code, output = invoke_cli("trt", "--weights", tiny_checkpoint, "--int8", "--calib", tiny_calibration,
                              "--float-precision", "fp16", "--target", "sm89", "--shapes", TINY_PROFILE,
                              "-o", tmp_path / "e.engine")
    assert code == 0, output
    side = json.loads((tmp_path / "e.engine.json").read_text())
    layers = side["layers"]["precisions"]  # TensorRT-RTX's layer precisions: int8 convs, the rest fp16
    assert side["precision"] == "int8" and layers["CONVOLUTION int8"] > 0, layers
    assert layers["ELEMENTWISE float16"] > 0 and "ELEMENTWISE float32" not in layers, layers
    assert json.loads((tmp_path / "e.onnx.json").read_text())["metadata"]["float_precision"] == "fp16"
