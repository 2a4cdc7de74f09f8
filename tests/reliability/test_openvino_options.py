"""Hostile inputs for the options of the OpenVINO backend (issue 18): each is refused with exit 2 and a
message naming what is wrong, no traceback, nothing written."""

import pytest

from conftest import invoke_cli, write_rgb

pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'sapnet-export[openvino]'")


@pytest.fixture
def image(tmp_path):
    return write_rgb(tmp_path / "x.png", 12, 16)


@pytest.mark.parametrize("args, message", [
    (["--precision", "bf17"], "--precision bf17: this fp32 graph runs as fp32 or, on OpenVINO, bf16"),
    (["--precision", ""], "--precision : this fp32 graph runs as fp32"),
    (["--precision", "int8"], "--precision int8: this fp32 graph"),
    (["--device", "tpu"], "device 'tpu': choose one of cpu, gpu, npu, auto"),
    (["--device", "CPU; rm -rf /"], "device 'CPU; rm -rf /': choose one of"),
    (["--device", ""], "device '': choose one of"),
    (["--force-bf16"], "--force-bf16 is for --precision bf16"),
])
def test_derain_openvino_option_errors_exit_2(args, message, tiny_onnx, image, tmp_path):
    code, output = invoke_cli("derain", image, "-o", tmp_path / "out", "--backend", "openvino",
                              "--model", tiny_onnx, *args)
    assert code == 2, output
    assert message in output and "Traceback" not in output
    assert not (tmp_path / "out" / "x.png").exists()


def test_bf16_on_another_backend_is_refused(tiny_onnx, tiny_checkpoint, image, tmp_path):
    code, output = invoke_cli("derain", image, "-o", tmp_path / "out", "--backend", "onnxruntime",
                              "--model", tiny_onnx, "--precision", "bf16")
    assert code == 2 and "bf16 is an OpenVINO precision (--backend openvino)" in output
    code, output = invoke_cli("derain", image, "-o", tmp_path / "out", "--weights", tiny_checkpoint,
                              "--precision", "bf16")
    assert code == 2 and "the torch backend runs" in output


def test_garbage_model_and_cache_folder(tiny_onnx, image, tmp_path, monkeypatch):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    code, output = invoke_cli("derain", image, "-o", tmp_path / "out", "--backend", "openvino",
                              "--model", tmp_path / "bad.onnx")
    assert code == 2 and "bad.onnx: not a readable ONNX model" in output
    (tmp_path / "cache-is-a-file").write_text("x")
    monkeypatch.setenv("SAPNET_OPENVINO_CACHE", str(tmp_path / "cache-is-a-file" / "sub"))
    code, output = invoke_cli("derain", image, "-o", tmp_path / "out", "--backend", "openvino",
                              "--model", tiny_onnx)
    assert code == 2 and "cannot be OpenVINO's model cache folder" in output and "Traceback" not in output


@pytest.mark.parametrize("backend, message", [
    ("tensorrt", "--backend tensorrt: ONNX targets run with onnxruntime or openvino"),
    ("", "--backend : ONNX targets run with"),
])
def test_verify_backend_errors(backend, message, tiny_models):
    code, output = invoke_cli("verify", tiny_models["fp32"], "--data", tiny_models["data"],
                              "--weights", tiny_models["checkpoint"], "--runs", "0", "--backend", backend)
    assert code == 2 and message in output


def test_bench_unknown_openvino_format_and_profile(tiny_models, tmp_path):
    code, output = invoke_cli("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                              "--formats", "openvino-int4", "--workdir", tmp_path / "w", "--log", tmp_path / "l")
    assert code == 2 and "--formats openvino-int4: choose from" in output
    code, output = invoke_cli("onnx", "--weights", tiny_models["checkpoint"], "-o", tmp_path / "q.onnx",
                              "--precision", "int8", "--calib", tiny_models["calibration"],
                              "--images", tiny_models["data"], "--qdq-profile", "OpenVINO")
    assert code == 2 and "--qdq-profile OpenVINO: choose one of tensorrt, cpu, openvino" in output
    assert not (tmp_path / "q.onnx").exists()
