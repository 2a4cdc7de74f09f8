import json

from conftest import invoke_cli as invoke, write_rgb, write_rgb_folder


def test_calib_build_then_show_then_stale(tmp_path):
    src = write_rgb_folder(tmp_path / "src", 3, 20, 30)
    out = tmp_path / "calibration" / "cam"
    code, output = invoke("calib", "build", src, "-o", out, "--size", "16x24", "--count", "2",
                          "--seed", "3")
    assert code == 0, output
    assert "wrote" in output and "2 frames 2x3x16x24" in output and "fewer than 32" in output
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    code, output = invoke("calib", "show", out)
    assert code == 0 and "sources match" in output and "yes" in output
    write_rgb(src / "1.png", 20, 30, seed=50)
    code, output = invoke("calib", "show", out)
    assert code == 1 and "1.png: changed" in output and "rebuild it" in output


def test_calib_build_errors_exit_2(tmp_path):
    code, output = invoke("calib", "build", tmp_path / "none", "-o", tmp_path / "c", "--size", "8x8",
                          "--count", "1")
    assert code == 2 and "no such file, folder or matching pattern" in output
    code, output = invoke("calib", "build", tmp_path, "-o", tmp_path / "c", "--size", "8", "--count", "1")
    assert code == 2 and "expected HxW" in output
    code, output = invoke("calib", "show", tmp_path)
    assert code == 2 and "not a calibration set" in output


def test_calib_build_synthetic_rain_on_clean_frames(tmp_path):
    clean = write_rgb_folder(tmp_path / "clean", 3, 20, 30)
    out = tmp_path / "calibration" / "mixed"
    code, output = invoke("calib", "build", "--clean", clean, "--synthetic-rain", "mixed", "-o", out,
                          "--size", "16x24", "--count", "4")
    assert code == 0, output
    assert "4 with mixed synthetic rain" in output
    code, output = invoke("calib", "show", out)
    assert code == 0 and "synthetic rain" in output and "2 light, 2 heavy of 4 frames" in output
    code, output = invoke("calib", "build", clean, "--synthetic-rain", "heavy", "-o", tmp_path / "x",
                          "--size", "16x24", "--count", "2")
    assert code == 2 and "--clean" in output and not (tmp_path / "x").exists()


def test_calib_show_coverage_of_brighter_frames(tiny_checkpoint, tmp_path):
    from sapnet_export.cli import calib_cmd
    from sapnet_export.export.int8.coverage import DEFAULT_MARGIN
    from sapnet_export.export.int8.quantize import DEFAULT_CALIB_METHOD

    assert (calib_cmd.DEFAULT_MARGIN, calib_cmd.DEFAULT_CALIB_METHOD) == (DEFAULT_MARGIN, DEFAULT_CALIB_METHOD)
    import numpy as np
    from PIL import Image

    dark, bright = tmp_path / "dark", tmp_path / "bright"
    dark.mkdir()
    bright.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 40, (20, 30, 3), dtype=np.uint8)).save(dark / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(bright / f"{i}.png")
    out = tmp_path / "calibration" / "dark"
    assert invoke("calib", "build", dark, "-o", out, "--size", "16x24", "--count", "3")[0] == 0
    code, output = invoke("calib", "show", out, "--coverage", bright, "--weights", tiny_checkpoint,
                          "--calib-method", "minmax")
    assert code == 0, output
    assert "calibration coverage" in output and "stage" in output
    assert "exceed their calibration range" in output  # bright frames, dark calibration
    code, output = invoke("calib", "show", out, "--coverage", dark, "--weights", tiny_checkpoint,
                          "--calib-method", "minmax")
    assert code == 0 and "exceed their calibration range" not in output
    code, output = invoke("calib", "show", out, "--coverage", bright, "--qdq-profile", "gpu")
    assert code == 2 and "--qdq-profile gpu" in output
