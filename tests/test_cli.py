import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import need_shared, write_rgb
from sapnet_export.cli import app
from sapnet_export.onnx_meta import load_onnx, metadata

cli = CliRunner()


def invoke(*args):
    result = cli.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def tiny_onnx(tiny_checkpoint, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "t.onnx")
    assert code == 0, output
    return tmp_path / "t.onnx"


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
    assert "fp16" in output and "kept in float32: none" in output
    write_rgb(tmp_path / "a.png", 10, 10)
    code, output = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "out", "--backend",
                          "onnxruntime", "--model", tmp_path / "h.onnx")
    assert code == 0 and "fp16" in output and (tmp_path / "out" / "a.png").exists()


def test_onnx_command_fidelity_failure_exits_1_and_writes_nothing(tiny_checkpoint, tmp_path):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "f.onnx",
                          "--min-psnr", "1000")
    assert code == 1 and "the file was not written" in output
    assert not (tmp_path / "f.onnx").exists()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_derain_command(backend, tiny_checkpoint, tiny_onnx, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        write_rgb(folder / f"{index}.jpg", 12, 16, seed=index)
    extra = ["--model", tiny_onnx] if backend == "onnxruntime" else ["--weights", tiny_checkpoint]
    code, output = invoke("derain", folder, "-o", tmp_path / "out", "--backend", backend, *extra)
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]
    assert backend in output and "fp32" in output and "median" in output


def test_derain_corrupt_file_exits_1_and_names_it(tiny_checkpoint, tmp_path):
    write_rgb(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    code, output = invoke("derain", tmp_path / "good.png", tmp_path / "bad.png", "-o",
                          tmp_path / "out", "--weights", tiny_checkpoint)
    assert code == 1
    assert "bad.png" in output and "1 of 2 images failed" in output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_derain_missing_input_exits_2(tiny_checkpoint, tmp_path):
    code, output = invoke("derain", tmp_path / "nope", "-o", tmp_path / "out", "--weights",
                          tiny_checkpoint)
    assert code == 2 and "nope: no such file or folder" in output


def test_wrong_checkpoint_exits_2(tmp_path):
    (tmp_path / "w.pth").write_text("junk")
    code, output = invoke("onnx", "--weights", tmp_path / "w.pth", "-o", tmp_path / "m.onnx")
    assert code == 2 and "not a readable PyTorch checkpoint" in output


def test_official_unreachable_without_cache_exits_2_from_the_console_script(tmp_path):
    """The installed `sapnet-export` script, offline, with an empty cache (see conftest)."""
    script = Path(sys.executable).parent / "sapnet-export"
    result = subprocess.run([str(script), "onnx", "-o", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == 2
    assert "cannot download the published SAPNet checkpoint" in result.stderr
    assert "SAPNET_WEIGHTS" in result.stderr and not (tmp_path / "m.onnx").exists()


def test_usage_error_exits_2():
    code, _ = invoke("derain")
    assert code == 2


@pytest.mark.real
def test_main_job_on_real_images(seeded_official_cache, tmp_path):
    """The README quickstart: official weights (from the seeded cache) -> ONNX -> derain real rain."""
    folder = need_shared("data/real-rain")
    model = tmp_path / "sapnet.onnx"
    code, output = invoke("onnx", "--weights", "official", "-o", model)
    assert code == 0, output
    images = sorted(folder.glob("*.png"))[:2]
    code, output = invoke("derain", *images, "-o", tmp_path / "out", "--backend", "onnxruntime",
                          "--model", model)
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images)
