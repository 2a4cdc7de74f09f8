import json

import pytest

from conftest import TINY_PROFILE, invoke_cli as invoke, need_shared, write_rgb
from sapnet_export.fileio import sha256_file
from sapnet_export.engine.trt_api import current_gpu

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")


def test_trt_from_weights_fp16(tiny_checkpoint, tmp_path):
    engine = tmp_path / "e.engine"
    code, output = invoke("trt", "--weights", tiny_checkpoint, "--fp16", "--target", "sm89",
                          "--shapes", TINY_PROFILE, "-o", engine)
    assert code == 0, output
    assert "wrote" in output and "with TensorRT-RTX" in output and "for sm89" in output
    for name in ("e.engine", "e.engine.json", "e.onnx", "e.onnx.json"):
        assert (tmp_path / name).is_file(), name
    side = json.loads((tmp_path / "e.engine.json").read_text())
    assert side["precision"] == "fp16" and side["files"]["onnx"] == str(tmp_path / "e.onnx")
    assert side["sha256"]["checkpoint"] == sha256_file(tiny_checkpoint)
    code, output = invoke("trt", "--weights", tiny_checkpoint, "--fp16", "--target", "sm89", "-o", engine)
    assert code == 2 and "e.engine: already exists; pass --force" in output


def test_trt_from_onnx_and_flags_must_agree(tiny_onnx, tmp_path):
    code, output = invoke("trt", "--onnx", tiny_onnx, "--fp16", "--target", "sm89", "-o", tmp_path / "x.engine")
    assert code == 2 and "the graph is fp32, --fp16 asked" in output
    code, output = invoke("trt", "--onnx", tiny_onnx, "--target", "sm80", "--shapes", TINY_PROFILE,
                          "--opt-level", "1", "--workspace", "256", "-o", tmp_path / "x.engine")
    assert code == 0, output
    settings = json.loads((tmp_path / "x.engine.json").read_text())["settings"]
    assert (settings["optimization_level"], settings["workspace_mib"]) == (1, 256)


@pytest.mark.parametrize("args, message", [
    (["--fp16", "--int8"], "--fp16 and --int8: choose one"),
    (["--int8"], "--int8 needs a calibration set"),
    (["--calib", "c"], "--calib is for --int8"),
    (["--onnx", "m.onnx"], "--weights and --onnx: give one"),
    (["--target", "sm90"], "compiles for sm75, sm80, sm86, sm89, sm120, sm121"),
    (["--shapes", "1x3x64x64"], "expected MIN:OPT:MAX"),
    (["--builder", "tflite"], "builder 'tflite': choose one of tensorrt, tensorrt-rtx"),
])
def test_trt_usage_errors_exit_2(tiny_checkpoint, tmp_path, args, message):
    code, output = invoke("trt", "--weights", tiny_checkpoint, *args, "-o", tmp_path / "u.engine")
    assert code == 2 and message in output, output
    assert not (tmp_path / "u.engine").exists()


@pytest.mark.skipif(current_gpu() is not None, reason="this machine has a GPU")
def test_trt_without_target_or_gpu(tiny_onnx, tmp_path):
    code, output = invoke("trt", "--onnx", tiny_onnx, "-o", tmp_path / "x.engine")
    assert code == 2 and "no GPU here, so name the GPU the engine is for: --target" in output


def test_trt_int8_from_weights_with_and_without_held_out_images(tiny_checkpoint, tiny_calibration, tmp_path):
    code, output = invoke("trt", "--weights", tiny_checkpoint, "--int8", "--calib", tiny_calibration,
                          "--target", "sm89", "--shapes", "16x16:24x32:64x64", "-o", tmp_path / "a.engine")
    assert code == 0, output
    assert "on 4 held-out images (built-in heavy rain (coffee, camera))" in output
    assert "Y-PSNR vs ground truth" in output and "calibration coverage on 4 held-out" in output
    assert json.loads((tmp_path / "a.onnx.json").read_text())["fidelity_measured"] is True
    held = write_rgb(tmp_path / "held.png", 24, 32, seed=9)
    code, output = invoke("trt", "--weights", tiny_checkpoint, "--int8", "--calib", tiny_calibration,
                          "--images", held, "--target", "sm89", "--shapes", "16x16:32x32:64x64",
                          "-o", tmp_path / "b.engine")
    assert code == 0, output
    assert "int8 ONNX vs PyTorch fp32 on 1 held-out images" in output
    assert "calibration frames are 24x32 but the profile's OPT shape is 32x32" in output
    side = json.loads((tmp_path / "b.engine.json").read_text())
    assert side["sha256"]["calibration_manifest"] == sha256_file(tiny_calibration / "manifest.json")


@pytest.mark.real
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_published_checkpoint_engines(precision, seeded_official_cache, tmp_path):
    """The issue's command, on the published checkpoint: 'trt --weights official --int8 --calib DIR
    --target sm89' (and --fp16) on a machine without a GPU."""
    from sapnet_export.export.int8.calibration import build_calibration

    extra = []
    if precision == "int8":
        build_calibration([str(need_shared("data/real-rain"))], tmp_path / "calib", size=(96, 128),
                          count=8, seed=0)
        extra = ["--calib", tmp_path / "calib"]
    code, output = invoke("trt", "--weights", "official", f"--{precision}", *extra, "--target", "sm89",
                          "-o", tmp_path / f"sapnet_{precision}.engine")
    assert code == 0, output
    side = json.loads((tmp_path / f"sapnet_{precision}.engine.json").read_text())
    expected = "int8" if precision == "int8" else "float16"
    precisions = side["layers"]["precisions"]
    # 46 Conv x 6 stages; int8 keeps conv0 and the output conv (2 x 6) float by default (tensorrt profile)
    assert precisions[f"CONVOLUTION {expected}"] == (264 if precision == "int8" else 276), precisions
    assert sum(n for key, n in precisions.items() if key.startswith("CONVOLUTION")) == 276, precisions
    assert side["stages"] == 6 and side["target"]["compute_capabilities"] == ["sm89"]
