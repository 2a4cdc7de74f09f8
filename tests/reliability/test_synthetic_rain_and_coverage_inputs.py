"""Hostile inputs for calib build --clean/--synthetic-rain, calib show --coverage, --float-precision and the heavy-rain set
script: each is refused with exit 2 and a message naming what is wrong, and nothing is written."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, invoke_cli as invoke, write_rgb, write_rgb_folder


@pytest.fixture
def clean(tmp_path):
    folder = write_rgb_folder(tmp_path / "clean", 2, 20, 30)
    return folder


@pytest.mark.parametrize("args, message", [
    (["--synthetic-rain", "drizzle"], "--synthetic-rain drizzle: choose one of"),
    (["--synthetic-rain", ""], "--synthetic-rain : choose one of"),
    (["--synthetic-rain", "HEAVY"], "--synthetic-rain HEAVY: choose one of"),
    ([], "give both, or neither"),  # --clean without --synthetic-rain
])
def test_bad_synthetic_rain_choices(clean, tmp_path, args, message):
    out = tmp_path / "set"
    code, output = invoke("calib", "build", "--clean", clean, *args, "-o", out, "--size", "16x24",
                          "--count", "2")
    assert code == 2 and message in output, output
    assert not out.exists() and "Traceback" not in output


def test_synthetic_rain_without_clean_frames(clean, tmp_path):
    code, output = invoke("calib", "build", clean, "--synthetic-rain", "heavy", "-o", tmp_path / "s",
                          "--size", "16x24", "--count", "2")
    assert code == 2 and "--clean" in output and not (tmp_path / "s").exists()


def test_missing_and_corrupt_clean_sources_are_named(clean, tmp_path):
    code, output = invoke("calib", "build", "--clean", tmp_path / "nowhere", "--synthetic-rain", "heavy",
                          "-o", tmp_path / "s", "--size", "16x24", "--count", "2")
    assert code == 2 and "nowhere" in output and "no such file" in output
    (clean / "broken.png").write_bytes(b"not a png")
    code, output = invoke("calib", "build", "--clean", clean, "--synthetic-rain", "mixed",
                          "-o", tmp_path / "s", "--size", "16x24", "--count", "2")
    assert code == 2 and "broken.png" in output and not (tmp_path / "s").exists()


@pytest.fixture
def calib_set(clean, tmp_path):
    out = tmp_path / "calibration" / "c"
    assert invoke("calib", "build", clean, "-o", out, "--size", "16x24", "--count", "2")[0] == 0
    return out


@pytest.mark.parametrize("args, message", [
    (["--margin", "-0.5"], "--margin"),
    (["--margin", "nan"], "--margin"),
    (["--limit", "0"], "--limit"),
    (["--qdq-profile", "gpu"], "--qdq-profile gpu"),
    (["--calib-method", "median"], "--calib-method median"),
])
def test_bad_coverage_options(calib_set, clean, args, message):
    code, output = invoke("calib", "show", calib_set, "--coverage", clean, *args)
    assert code == 2 and message in output, output
    assert "Traceback" not in output


def test_coverage_frames_that_do_not_exist_or_hold_no_image(calib_set, tmp_path):
    code, output = invoke("calib", "show", calib_set, "--coverage", tmp_path / "gone")
    assert code == 2 and "gone" in output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    code, output = invoke("calib", "show", calib_set, "--coverage", empty)
    assert code == 2 and "empty" in output and "Traceback" not in output


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count 0"),
    (["--clean", "NOWHERE"], "no such folder"),
    (["--preset", "drizzle"], "invalid choice"),
])
def test_heavy_rain_set_script_refuses_bad_arguments(tmp_path, args, message):
    args = [str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "heavy_rain_set.py"), "-o",
                             str(tmp_path / "out"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr + result.stdout
    assert not (tmp_path / "out").exists() and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["onnx", "--precision", "int8", "--float-precision", "bf16"], "--float-precision bf16: choose one of fp32, fp16"),
    (["onnx", "--precision", "int8", "--qdq-profile", "cpu", "--float-precision", "fp16"],
     "--float-precision fp16 is for the tensorrt profile"),
    (["trt", "--int8", "--float-precision", "fp16bad", "--target", "sm89"], "--float-precision fp16bad"),
])
def test_float_precision_refused_before_any_work(args, expected, tiny_checkpoint, tiny_calibration, tmp_path):
    out = tmp_path / ("q.onnx" if args[0] == "onnx" else "q.engine")
    code, output = invoke(*args, "--weights", tiny_checkpoint, "--calib", tiny_calibration, "-o", out)
    assert code == 2 and expected in output, output
    assert not list(tmp_path.glob("q.*"))


def test_float_precision_needs_int8_from_weights(tiny_checkpoint, tiny_models, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "--float-precision", "fp16", "-o", tmp_path / "a.onnx")
    assert code == 2 and "--float-precision is for --precision int8" in output, output
    code, output = invoke("trt", "--onnx", tiny_models["int8"], "--float-precision", "fp16", "--target", "sm89",
                              "-o", tmp_path / "a.engine")
    assert code == 2 and "--float-precision convert weights" in output, output
    assert not list(tmp_path.glob("a.*"))
