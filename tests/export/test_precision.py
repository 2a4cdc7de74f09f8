import numpy as np
import onnx
import pytest
import torch

from conftest import parse_in_tensorrt_rtx
from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import export_onnx, to_onnx_proto
from sapnet_export.model.onnx_meta import graph_precision, load_onnx, metadata
from sapnet_export.export.precision import to_fp16
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.model.checkpoints import load_weights

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def test_fp16_graph_has_half_compute_and_float_io(tiny_model):
    converted, kept, clamped = to_fp16(to_onnx_proto(tiny_model, 2, 17, None))
    assert kept == [] and clamped >= 0
    assert {init.data_type for init in converted.graph.initializer} == {FLOAT16}
    assert converted.graph.input[0].type.tensor_type.elem_type == FLOAT
    assert converted.graph.output[0].type.tensor_type.elem_type == FLOAT
    zeros = [n for n in converted.graph.node if n.op_type == "ConstantOfShape"]
    assert zeros and all(n.attribute[0].t.data_type == FLOAT16 for n in zeros)
    assert graph_precision(converted) == "fp16"


def test_fp16_refuses_a_graph_that_is_not_fp32(tiny_model):
    converted, _, _ = to_fp16(to_onnx_proto(tiny_model, 1, 17, None))
    with pytest.raises(InputError, match="needs an fp32 graph"):
        to_fp16(converted)


def test_fp16_export_is_verified_and_labelled(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "h.onnx", precision="fp16")
    meta = metadata(load_onnx(result.path))
    assert meta["precision"] == "fp16" and meta["fp32_nodes"] == "none"
    assert all(60 <= r.fidelity.psnr_db < 200 for r in result.probes)
    runner = OnnxRuntimeRunner(result.path)
    assert runner.info.precision == "fp16"
    x = np.random.default_rng(3).random((1, 3, 21, 34), dtype=np.float32)
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    out = runner.run(x)
    assert out.dtype == np.float32 and np.max(np.abs(out - reference)) < 5e-3


def test_unknown_precision(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="--precision int4"):
        export_onnx(*load_weights(tiny_checkpoint), tmp_path / "x.onnx", precision="int4")


def test_fp16_graph_parses_in_tensorrt_rtx_with_half_layers(tiny_model, tmp_path):
    converted, _, _ = to_fp16(to_onnx_proto(tiny_model, 2, 17, None))
    onnx.save(converted, str(tmp_path / "h.onnx"))
    ok, errors, network = parse_in_tensorrt_rtx(tmp_path / "h.onnx")
    assert ok, errors
    trt = pytest.importorskip("tensorrt_rtx")
    assert network.get_input(0).dtype == trt.DataType.FLOAT  # float32 graph I/O
    convs = [network.get_layer(i) for i in range(network.num_layers)
             if network.get_layer(i).type == trt.LayerType.CONVOLUTION]
    assert convs and all(layer.get_output(0).dtype == trt.DataType.HALF for layer in convs)
