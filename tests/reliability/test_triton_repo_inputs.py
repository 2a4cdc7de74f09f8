"""Hostile inputs of ``triton-repo``: exit 2 naming the problem, nothing written (issue 19)."""

import pytest

from conftest import invoke_cli


@pytest.mark.parametrize("args, expected", [
    (["--kind", "tpu"], "--kind"),
    (["--trt-accelerator", "fp16"], "--kind gpu"),
    (["--kind", "gpu", "--openvino-accelerator"], "--kind cpu"),
    (["--kind", "gpu", "--trt-accelerator", "int4"], "--trt-accelerator"),
    (["--warmup", "0x10"], "--warmup"), (["--warmup", "10x10,20x20"], "--warmup"),
    (["--max-batch", "0"], "--max-batch"), (["--instances", "nan"], "--instances"),
    (["--batch-delay-us", "-5"], "--batch-delay-us"),
])
def test_bad_options(args, expected, tiny_models, tmp_path):
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", tmp_path / "repo", *args)
    assert code == 2 and expected in output and "Traceback" not in output, output
    assert not (tmp_path / "repo" / "sapnet").exists()


def test_bad_model_files(tiny_models, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    cases = [(["--onnx", tmp_path / "missing.onnx"], "missing.onnx"),
             (["--onnx", tmp_path / "junk.onnx"], "junk.onnx"),
             ([], "--onnx"),
             (["--onnx", tiny_models["fp32"], "--engine", tmp_path / "x.engine"], "not both"),
             (["--engine", tmp_path / "x.engine", "--kind", "gpu"], "x.engine")]
    for args, expected in cases:
        code, output = invoke_cli("triton-repo", "-o", tmp_path / "repo", *args)
        assert code == 2 and expected in output and "Traceback" not in output, (args, output)
    assert not (tmp_path / "repo" / "sapnet").exists()


def test_output_is_a_file(tiny_models, tmp_path):
    (tmp_path / "repo").write_text("a file")
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", tmp_path / "repo")
    assert code == 2 and "repo" in output, output
