import json

from conftest import invoke_cli


def test_inspect_onnx_table_and_json(tiny_onnx):
    code, output = invoke_cli("inspect", tiny_onnx)
    assert code == 0, output
    assert "precision" in output and "fp32" in output and "ai.onnx 17" in output
    code, output = invoke_cli("inspect", tiny_onnx, "--json")
    assert code == 0
    assert json.loads(output)["op_histogram"]["Conv"] > 0


def test_inspect_engine(tiny_engines):
    code, output = invoke_cli("inspect", tiny_engines["int8"])
    assert code == 0, output
    for text in ("TensorRT-RTX", "sm89", "int8", "1x3x16x16:1x3x24x32:1x3x64x64", "CONVOLUTION int8"):
        assert text in output
    code, output = invoke_cli("inspect", tiny_engines["int8"], "--json")
    assert json.loads(output)["sha256_matches_sidecar"] is True


def test_inspect_missing_file(tmp_path):
    code, output = invoke_cli("inspect", tmp_path / "none.engine")
    assert code == 2 and "none.engine: engine file not found" in output
