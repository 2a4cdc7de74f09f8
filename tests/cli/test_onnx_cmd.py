import json
import os
import sys

from conftest import invoke_cli as invoke, write_rgb
from sapnet_export.model.onnx_meta import load_onnx, metadata


def test_onnx_command_writes_and_reports(tiny_onnx):
    meta = metadata(load_onnx(tiny_onnx))
    assert meta["command"].startswith(os.path.basename(sys.argv[0]))
    assert meta["stages"] == "2"


def test_onnx_command_refuses_to_overwrite_without_force(tiny_onnx, tiny_checkpoint):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tiny_onnx)
    assert code == 2 and "already exists; pass --force" in output
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tiny_onnx, "--force",
                          "--stages", "1", "--static", "16x16")
    assert code == 0, output
    assert metadata(load_onnx(tiny_onnx))["shape"] == "static 1x3x16x16"


def test_onnx_command_fp16_then_derain(tiny_checkpoint, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "h.onnx",
                          "--precision", "fp16")
    assert code == 0, output
    assert "fp16" in output and "kept in float32: 0;" in output
    write_rgb(tmp_path / "a.png", 10, 10)
    code, output = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "out", "--backend",
                          "onnxruntime", "--model", tmp_path / "h.onnx")
    assert code == 0 and "fp16" in output and (tmp_path / "out" / "a.png").exists()


def test_onnx_command_fidelity_failure_exits_1_and_writes_nothing(tiny_checkpoint, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "f.onnx",
                          "--min-psnr", "1000")
    assert code == 1 and "the file was not written" in output
    assert not (tmp_path / "f.onnx").exists()


def test_wrong_checkpoint_exits_2(tmp_path):
    (tmp_path / "w.pth").write_text("junk")
    code, output = invoke("onnx", "--weights", tmp_path / "w.pth", "-o", tmp_path / "m.onnx")
    assert code == 2 and "not a readable PyTorch checkpoint" in output


def test_onnx_command_int8(tiny_checkpoint, tiny_calibration, tmp_path):
    held = write_rgb(tmp_path / "held.png", 16, 24, seed=9)
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--images", held, "--qdq-profile", "cpu",
                          "--min-psnr", "5", "--stages", "1")
    assert code == 0, output
    assert "int8 (cpu profile, calibration percentile <auto: cpu profile>)" in output and "held-out images vs PyTorch fp32 (1)" in output
    assert (tmp_path / "q.onnx.json").is_file()
    assert metadata(load_onnx(tmp_path / "q.onnx"))["qdq_profile"] == "cpu"
    assert "calibration coverage on 1 held-out images" in output
    coverage = json.loads((tmp_path / "q.onnx.json").read_text())["int8"]["coverage"]
    assert coverage["tensors"] > 0 and coverage["margin"] == 0.25 and coverage["frames"] == 1
    assert set(coverage["max_excess_by_stage"]) == {"1"}
    assert "calibration_coverage" in metadata(load_onnx(tmp_path / "q.onnx"))


def test_onnx_command_int8_usage_errors(tiny_checkpoint, tiny_calibration, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--images", tmp_path / "calib_src")
    assert code == 2 and "needs a calibration set" in output
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--images", tmp_path / "calib_src",
                          "--qdq-profile", "gpu")
    assert code == 2 and "--qdq-profile gpu" in output
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx",
                          "--keep-fp32", "conv")
    assert code == 2 and "--keep-fp32 is for --precision int8" in output
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "q.onnx", "--precision",
                          "int8", "--calib", tiny_calibration, "--keep-fp32", "none", "--keep-fp32", "conv")
    assert code == 2 and "--keep-fp32 none quantizes every group" in output
    assert not (tmp_path / "q.onnx").exists()
