import shutil

import pytest

from sapnet_export.errors import InputError
from sapnet_export.engine.inspection import inspect_engine, inspect_file, inspect_onnx, qdq_summary
from sapnet_export.engine.sidecar import sidecar_path
from sapnet_export.engine.trt_api import current_gpu


def test_fp32_onnx(tiny_onnx):
    report = inspect_onnx(tiny_onnx)
    assert report["kind"] == "onnx" and report["precision"] == "fp32"
    assert report["opset"] == {"ai.onnx": 17}
    assert report["inputs"] == [{"name": "rainy", "dtype": "float32", "shape": ["N", 3, "H", "W"]}]
    assert report["op_histogram"]["Conv"] == len(report["qdq"]["conv_float"]) > 0
    assert report["qdq"]["quantize_linear"] == report["qdq"]["conv_int8"] == 0
    assert report["tensorrt_qdq"] is None
    assert report["metadata"]["stages"] == "2"


def test_int8_onnx_qdq_summary_and_verdict(tiny_engines):
    report = inspect_file(tiny_engines["int8_onnx"])
    qdq = report["qdq"]
    assert report["precision"] == "int8"
    # the tensorrt profile keeps conv0 and the output conv float by default: 2 per stage
    assert qdq["conv_int8"] == report["op_histogram"]["Conv"] - 4
    assert len(qdq["conv_float"]) == 4 and all(n.split("/")[2] in ("conv0", "conv") for n in qdq["conv_float"])
    assert qdq["quantized_weights"] > 0 and qdq["quantized_activations"] > 0
    assert report["tensorrt_qdq"] == {"ok": True, "violations": 0, "listed": []}


def test_cpu_profile_graph_gets_the_validators_violations(tiny_onnx, tiny_calibration, tmp_path):
    import onnx

    from sapnet_export.export.int8.calibration import load_calibration
    from sapnet_export.export.int8.quantize import quantize_int8, select_nodes

    kept = select_nodes(onnx.load(str(tiny_onnx)), ["conv"])  # the output conv, in both stages
    model = quantize_int8(tiny_onnx, tmp_path / "cpu.onnx", profile="cpu",
                          frames=load_calibration(tiny_calibration).frames, calib_method="minmax",
                          cache_path=tmp_path / "ranges.json", exclude=kept)
    report = inspect_onnx(tmp_path / "cpu.onnx")
    assert report["tensorrt_qdq"]["ok"] is False
    assert report["tensorrt_qdq"]["violations"] > len(report["tensorrt_qdq"]["listed"]) == 20
    assert any("zero point" in line for line in report["tensorrt_qdq"]["listed"])
    assert sorted(report["qdq"]["conv_float"]) == sorted(n for n in kept if "Conv" in n)
    assert qdq_summary(model) == report["qdq"]


def test_engine_from_its_sidecar(tiny_engines):
    report = inspect_engine(tiny_engines["int8"])
    assert report["kind"] == "engine" and report["precision"] == "int8"
    assert report["sha256_matches_sidecar"] is True
    assert report["builder"]["name"] == "TensorRT-RTX"
    assert report["target"]["compute_capabilities"] == ["sm89"]
    assert report["profile"]["max"] == [1, 3, 64, 64]
    assert report["provenance"]["sha256"]["calibration_manifest"]
    assert report["network_layers"]["precisions"]["CONVOLUTION int8"] > 0
    if current_gpu() is None:
        assert report["engine_layers"] is None
        assert "no GPU here" in report["engine_layers_source"]


def test_damaged_engine_is_reported_not_hidden(tiny_engines, tmp_path):
    engine = tmp_path / "e.engine"
    shutil.copyfile(tiny_engines["fp32"], engine)
    shutil.copyfile(sidecar_path(tiny_engines["fp32"]), sidecar_path(engine))
    with open(engine, "ab") as handle:
        handle.write(b"\0")
    assert inspect_engine(engine)["sha256_matches_sidecar"] is False


def test_unknown_suffix(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="m.bin: cannot tell what it is from its suffix"):
        inspect_file(tmp_path / "m.bin")
