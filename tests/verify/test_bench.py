import json

import pytest

from sapnet_export.verify.bench import (FORMATS, check_held_out, default_formats, log_line, make_targets,
                                 parse_formats)
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.errors import InputError
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights


def test_formats():
    assert default_formats(gpu=False) == ["torch", "onnx", "onnx-fp16", "onnx-int8-cpu", "onnx-int8-tensorrt",
                                          "openvino", "openvino-bf16", "openvino-int8", "openvino-int8-bf16"]
    assert default_formats(gpu=True) == list(FORMATS)
    assert parse_formats("torch, onnx", gpu=False) == ["torch", "onnx"]
    with pytest.raises(InputError, match="--formats tflite: choose from torch, onnx"):
        parse_formats("onnx,tflite", gpu=False)


def test_make_targets_reports_what_it_could_not_make(tiny_models, tmp_path):
    model, info = load_weights(tiny_models["checkpoint"])
    reference = TorchRunner(model, info, device="cpu")
    targets = make_targets(model, info, reference, ["torch", "onnx-fp16", "onnx-int8-cpu", "tensorrt-fp16"],
                           tmp_path, calibration=None, stages=None, gpu=False)
    by_name = {t.name: t for t in targets}
    assert by_name["torch"].runner is reference and by_name["torch"].is_reference
    assert by_name["onnx-fp16"].status == "ok" and by_name["onnx-fp16"].precision == "fp16"
    assert (tmp_path / "onnx-fp16.onnx").is_file()
    assert by_name["onnx-int8-cpu"].status == "failed" and "--calib" in by_name["onnx-int8-cpu"].reason
    assert "runs only on a GPU" in by_name["tensorrt-fp16"].reason


def test_int8_formats_share_nothing_but_the_calibration(tiny_models, tmp_path):
    model, info = load_weights(tiny_models["checkpoint"])
    reference = TorchRunner(model, info, device="cpu")
    calibration = load_calibration(tiny_models["calibration"])
    targets = make_targets(model, info, reference, ["onnx-int8-cpu", "onnx-int8-tensorrt"], tmp_path,
                           calibration=calibration, stages=None)
    assert [t.status for t in targets] == ["ok", "ok"]
    assert [t.file.name for t in targets] == ["onnx-int8-cpu.onnx", "onnx-int8-tensorrt.onnx"]


def test_calibration_sources_are_refused_as_benchmark_data(tiny_models):
    calibration = load_calibration(tiny_models["calibration"])
    source = tiny_models["calibration"].parent / "calib_src" / "c0.png"
    with pytest.raises(InputError, match="c0.png: this image is in the calibration set"):
        check_held_out([(source, None)], calibration)
    check_held_out([(tiny_models["data"] / "rain-1.png", None)], calibration)


def test_log_line_is_one_strict_json_line():
    payload = {"toolkit": "t", "machine": {"cpu": "c", "threads": 2, "gpu": None},
               "dataset": {"data": "d", "images": 1},
               "targets": [{"name": "torch", "status": "ok", "fidelity": {"psnr_mean_db": float("inf")},
                            "quality": None, "latency_ms": {"p50": 1.0}}]}
    line = log_line(payload)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["formats"]["torch"] == {"status": "ok", "fidelity_db": "inf", "psnr_y": None, "p50_ms": 1.0}
