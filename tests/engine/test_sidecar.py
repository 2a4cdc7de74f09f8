import json
import shutil

import pytest

from sapnet_export.errors import InputError
from sapnet_export.engine.sidecar import (Profile, check_in_profile, check_runtime, load_sidecar, parse_profile,
                                   runtime_mismatches, sidecar_path)


def test_parse_profile():
    profile = parse_profile("1x3x64x64:1x3x480x640:2x3x1080x1920")
    assert profile == Profile((1, 3, 64, 64), (1, 3, 480, 640), (2, 3, 1080, 1920))
    assert str(profile) == "1x3x64x64:1x3x480x640:2x3x1080x1920"
    assert parse_profile("16x16:24x32:64x64").opt == (1, 3, 24, 32)
    assert Profile.from_json(profile.to_json()) == profile


@pytest.mark.parametrize("text, message", [
    ("1x3x64x64:1x3x480x640", "expected MIN:OPT:MAX"),
    ("1x3x64x64:1x3x480:1x3x1080x1920", "expected NxCxHxW"),
    ("1x1x64x64:1x1x480x640:1x1x1080x1920", "3 channels"),
    ("1x3x64x64:1x3x0x640:1x3x1080x1920", "positive integers"),
    ("1x3x500x64:1x3x480x640:1x3x1080x1920", "min <= opt <= max"),
])
def test_bad_profiles(text, message):
    with pytest.raises(InputError, match=message):
        parse_profile(text)


def test_shape_outside_the_profile_is_refused_with_the_profile():
    profile = parse_profile("1x3x16x16:1x3x24x32:1x3x64x64")
    check_in_profile((1, 3, 16, 64), profile, "e.engine")
    for shape in ((1, 3, 8, 32), (1, 3, 65, 32), (2, 3, 32, 32)):
        with pytest.raises(InputError, match=r"e.engine: input .* outside the engine's optimization "
                           r"profile \(min 1x3x16x16, max 1x3x64x64\)"):
            check_in_profile(shape, profile, "e.engine")


SIDECAR = {"builder": {"kind": "tensorrt-rtx", "name": "TensorRT-RTX", "version": "1.7.1.116"},
           "target": {"compute_capabilities": ["sm86", "sm89"]}, "files": {"onnx": "m.onnx"}}


def test_runtime_mismatches():
    assert runtime_mismatches(SIDECAR, "tensorrt-rtx", "1.7.1.116", None) == []
    assert runtime_mismatches(SIDECAR, "tensorrt-rtx", "1.7.1.116", "sm89") == []
    assert runtime_mismatches(SIDECAR, "tensorrt-rtx", "1.8.0.1", None) == [
        "built by TensorRT-RTX 1.7.1.116, this runtime is TensorRT-RTX 1.8.0.1"]
    assert runtime_mismatches(SIDECAR, "tensorrt", "10.13.0", "sm89") == [
        "built by TensorRT-RTX, this runtime is tensorrt"]
    assert runtime_mismatches(SIDECAR, "tensorrt-rtx", "1.7.1.116", "sm120") == [
        "compiled for sm86, sm89, this GPU is sm120"]


def test_check_runtime_says_how_to_rebuild():
    with pytest.raises(InputError, match=r"e.engine: cannot load: compiled for sm86, sm89, this GPU is "
                       r"sm120. Rebuild it on this machine: sapnet-export trt --onnx m.onnx "
                       r"--target sm120 -o e.engine --force"):
        check_runtime("e.engine", SIDECAR, "tensorrt-rtx", "1.7.1.116", "sm120")


def test_load_sidecar_checks_presence_format_and_sha256(tiny_engines, tmp_path):
    engine = tmp_path / "copy.engine"
    shutil.copyfile(tiny_engines["fp16"], engine)
    with pytest.raises(InputError, match="copy.engine: no sidecar copy.engine.json"):
        load_sidecar(engine)
    shutil.copyfile(sidecar_path(tiny_engines["fp16"]), sidecar_path(engine))
    assert load_sidecar(engine)["precision"] == "fp16"
    with open(engine, "r+b") as handle:  # damage one byte
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(InputError, match="differs from its sidecar's"):
        load_sidecar(engine)
    assert load_sidecar(engine, verify_sha256=False)["precision"] == "fp16"
    sidecar_path(engine).write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a sapnet-export engine sidecar"):
        load_sidecar(engine)
    with pytest.raises(InputError, match="engine file not found"):
        load_sidecar(tmp_path / "none.engine")
