"""Hostile inputs, command by command (issue 16; docs/reliability.md): for each class of bad input the
exit code, a message naming the file and the problem, no traceback, and nothing at the destination.

Everything is generated here from small files (a 2-stage random-weight SAPNet, 24x32 images).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from conftest import assert_clean_error, invoke_cli, leftovers, write_rgb
from sapnet_export.model.checkpoints import save_checkpoint
from sapnet_export.model.network import SAPNet


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict[str, Path]:
    """Small files for every case: checkpoints (good, NaN, empty, unsafe pickle), ONNX files (toolkit
    2- and 1-stage exports, a foreign graph using the toolkit's I/O names, a tampered export, an empty
    and a garbage file) and image folders (good, mixed sizes, corrupt)."""
    root = tmp_path_factory.mktemp("kit")
    torch.manual_seed(0)
    model = SAPNet(stages=2).eval()
    files = {"root": root, "ckpt": save_checkpoint(model, root / "tiny.pth")}
    with torch.no_grad():
        model.conv0[0].weight[0, 0, 0, 0] = float("nan")
    files["nan_ckpt"] = save_checkpoint(model, root / "nan.pth")
    (root / "empty.pth").write_bytes(b"")
    files["empty_ckpt"] = root / "empty.pth"
    import datetime
    torch.save({"when": datetime.date(2026, 1, 1)}, root / "unsafe.pth")
    files["unsafe_ckpt"] = root / "unsafe.pth"
    for stages, name in ((2, "fp32.onnx"), (1, "one_stage.onnx")):
        code, output = invoke_cli("onnx", "--weights", files["ckpt"], "-o", root / name, "--stages", stages)
        assert code == 0, output
        files[name] = root / name
    node = helper.make_node("Identity", ["rainy"], ["derained"])
    shape = ["N", 3, "H", "W"]
    graph = helper.make_graph([node], "foreign", [helper.make_tensor_value_info("rainy", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("derained", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              root / "foreign.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=99),
              root / "unloadable.onnx")
    files["unloadable"] = root / "unloadable.onnx"
    files["foreign"] = root / "foreign.onnx"
    tampered = onnx.load(str(files["fp32.onnx"]))
    for prop in tampered.metadata_props:
        if prop.key == "stages":
            prop.value = "3"
    onnx.save(tampered, root / "tampered.onnx")
    files["tampered"] = root / "tampered.onnx"
    (root / "empty.onnx").write_bytes(b"")
    (root / "garbage.onnx").write_bytes(os.urandom(256))
    for folder in ("images", "mixed", "corrupt", "paired", "clean"):
        (root / folder).mkdir()
    for n in range(2):
        write_rgb(root / "images" / f"rain-{n + 1}.png", 24, 32, seed=n)
        write_rgb(root / "paired" / f"rain-{n + 1}.png", 24, 32, seed=n)
        write_rgb(root / "paired" / f"norain-{n + 1}.png", 24, 32, seed=10 + n)
        write_rgb(root / "clean" / f"photo-{n + 1}.png", 40, 48, seed=20 + n)
    write_rgb(root / "mixed" / "a.png", 24, 32)
    write_rgb(root / "mixed" / "b.png", 32, 24, seed=1)
    write_rgb(root / "corrupt" / "good.png", 24, 32)
    (root / "corrupt" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    files["calib"] = _calibration(root)
    return files


def _calibration(root: Path) -> Path:
    from sapnet_export.export.int8.calibration import build_calibration

    (root / "calib_src").mkdir()
    for seed in range(2):
        write_rgb(root / "calib_src" / f"c{seed}.png", 24, 32, seed=100 + seed)
    build_calibration([str(root / "calib_src")], root / "calib", size=(24, 32), count=2, seed=0)
    return root / "calib"


def _nothing_written(folder: Path, *names: str) -> None:
    assert not leftovers(folder), leftovers(folder)
    for name in names:
        assert not (folder / name).exists(), f"{name} was written"


# --- 1. one size guard, before inference --------------------------------------------------------

@pytest.mark.parametrize("command", ["verify", "onnx", "run", "sensitivity", "evaluate", "bench"])
def test_size_guard_refuses_before_inference(kit, tmp_path, command):
    tiny = ["--max-megapixels", "0.0005"]  # the 24x32 images are 0.00077 MP
    images = kit["root"] / "images"
    args = {
        "verify": ["verify", kit["fp32.onnx"], "--data", images, "--weights", kit["ckpt"], "--json",
                   tmp_path / "r.json", *tiny],
        "onnx": ["onnx", "--weights", kit["ckpt"], "-o", tmp_path / "m.onnx", "--images", images, *tiny],
        "run": ["run", images, "--weights", kit["ckpt"], "-o", tmp_path / "out.mp4", *tiny],
        "sensitivity": ["sensitivity", "--calib", kit["calib"], "--data", images, "--weights", kit["ckpt"],
                        "-o", tmp_path / "s.json", *tiny],
        "bench": ["bench", "--data", images, "--weights", kit["ckpt"], "--formats", "torch", "--workdir",
                  tmp_path / "w", "--log", tmp_path / "b.log", *tiny],
    }
    if command == "evaluate":
        from typer.testing import CliRunner
        from training.cli import app

        result = CliRunner().invoke(app, ["evaluate", "--data", str(kit["root"] / "paired"), "--weights", str(kit["ckpt"]),
                                          "--json", str(tmp_path / "e.json"), *tiny])
        code, output = result.exit_code, result.output
    else:
        code, output = invoke_cli(*args[command])
    assert_clean_error(code, output, 2, "rain-1.png", "above --max-megapixels 0.0005", "GB")
    assert "Y-PSNR" not in output and "reference:" not in output  # refused before any inference
    _nothing_written(tmp_path, "r.json", "m.onnx", "m.onnx.json", "out.mp4", "s.json", "e.json", "b.log")


def test_size_guard_on_given_sizes(kit, tmp_path):
    code, output = invoke_cli("verify", kit["fp32.onnx"], "--data", kit["root"] / "images", "--weights",
                              kit["ckpt"], "--sizes", "4000x6000")
    assert_clean_error(code, output, 2, "--sizes 4000x6000", "24.0 MP", "--max-megapixels 8.5")


def test_derain_size_guard_fails_the_file_not_the_run(kit, tmp_path):
    code, output = invoke_cli("derain", kit["root"] / "images", "-o", tmp_path / "out", "--weights",
                              kit["ckpt"], "--max-megapixels", "0.0005")
    assert_clean_error(code, output, 1, "above --max-megapixels", "2 of 2 images failed")


# --- 2. one model-identity check -------------------------------------------------------------------

@pytest.mark.parametrize("which", ["foreign", "tampered"])
@pytest.mark.parametrize("command", ["derain", "run", "verify", "trt"])
def test_foreign_model_refused(kit, tmp_path, which, command):
    model = kit[which]
    args = {"derain": ["derain", kit["root"] / "images", "-o", tmp_path / "out", "-b", "onnxruntime", "-m", model],
            "run": ["run", kit["root"] / "images", "-o", tmp_path / "out", "-b", "onnxruntime", "-m", model],
            "verify": ["verify", model, "--data", kit["root"] / "images", "--weights", kit["ckpt"]],
            "trt": ["trt", "--onnx", model, "-o", tmp_path / "e.engine", "--target", "sm89"]}[command]
    code, output = invoke_cli(*args)
    assert_clean_error(code, output, 2, str(model), "not a SAPNet model exported by sapnet-export",
                       "sapnet-export onnx", "--allow-foreign-model")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    _nothing_written(tmp_path, "e.engine", "e.engine.json")


def test_foreign_model_allowed_says_so(kit, tmp_path):
    code, output = invoke_cli("derain", kit["root"] / "images", "-o", tmp_path / "out", "-b", "onnxruntime",
                              "-m", kit["foreign"], "--allow-foreign-model")
    assert code == 0, output
    assert output.count("FOREIGN MODEL") >= 2  # the warning and the summary row
    code, output = invoke_cli("verify", kit["foreign"], "--data", kit["root"] / "images", "--weights",
                              kit["ckpt"], "--allow-foreign-model", "--json", tmp_path / "v.json", "--runs", "0",
                              "--stages", "2")
    import json
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["targets"][-1]["foreign_model"].startswith("it has no sapnet-export metadata")
    assert "FOREIGN MODEL" in output and code == 1  # identity passes through, fidelity fails honestly


def test_model_onnx_runtime_cannot_load_is_exit_2(kit, tmp_path):
    code, output = invoke_cli("derain", kit["root"] / "images", "-o", tmp_path / "out", "-b", "onnxruntime",
                              "-m", kit["unloadable"], "--allow-foreign-model")
    assert_clean_error(code, output, 2, "unloadable.onnx", "ONNX Runtime", "cannot load it")


def test_inspect_shows_identity(kit):
    code, output = invoke_cli("inspect", kit["foreign"])
    assert code == 0 and "no sapnet-export metadata" in output


# --- 3/4. one output-path check, before any work ---------------------------------------------------

def _writers(kit, out: Path) -> dict[str, list]:
    images, ckpt = kit["root"] / "images", kit["ckpt"]
    return {
        "onnx": ["onnx", "--weights", ckpt, "-o", out / "m.onnx", "--force"],
        "trt": ["trt", "--weights", ckpt, "-o", out / "e.engine", "--target", "sm89", "--force"],
        "calib build": ["calib", "build", images, "-o", out / "set", "--size", "16x16", "--count", "2"],
        "verify --json": ["verify", kit["fp32.onnx"], "--data", images, "--weights", ckpt, "--json", out / "r.json"],
        "verify --report": ["verify", kit["fp32.onnx"], "--data", images, "--weights", ckpt, "--report", out / "rep"],
        "sensitivity -o": ["sensitivity", "--calib", kit["calib"], "--data", images, "--weights", ckpt,
                           "-o", out / "s.json"],
        "bench --workdir": ["bench", "--data", images, "--weights", ckpt, "--formats", "torch",
                            "--workdir", out / "w", "--log", kit["root"] / "bench_ok.log"],
        "bench --log": ["bench", "--data", images, "--weights", ckpt, "--formats", "torch",
                        "--workdir", kit["root"] / "bench_ok", "--log", out / "b.log"],
        "run video": ["run", images, "--weights", ckpt, "-o", out / "v.mp4"],
        "run folder": ["run", images, "--weights", ckpt, "-o", out / "frames"],
        "derain": ["derain", images, "--weights", ckpt, "-o", out / "d"],
    }


def _train_writers(kit, out: Path) -> dict[str, list]:
    return {"train -o": ["train", "-o", out / "run", "--clean", kit["root"] / "images", "--epochs", "1"],
            "evaluate --json": ["evaluate", "--data", kit["root"] / "paired", "--weights", kit["ckpt"],
                                "--json", out / "e.json"]}


def _invoke_any(args: list) -> tuple[int, str]:
    if args[0] in ("train", "evaluate"):
        from typer.testing import CliRunner
        from training.cli import app

        result = CliRunner().invoke(app, [str(a) for a in args])
        return result.exit_code, result.output
    return invoke_cli(*args)


ALL_WRITERS = ["onnx", "trt", "calib build", "verify --json", "verify --report", "sensitivity -o",
               "bench --workdir", "bench --log", "run video", "run folder", "derain", "train -o",
               "evaluate --json"]


@pytest.mark.parametrize("name", ALL_WRITERS)
def test_unwritable_output_is_exit_2_before_work(kit, unwritable_dir, name):
    out = unwritable_dir / "sub"
    args = {**_writers(kit, out), **_train_writers(kit, out)}[name]
    code, output = _invoke_any(args)
    assert_clean_error(code, output, 2, "cannot be written", "not writable", str(unwritable_dir))
    assert "fidelity" not in output and "reference:" not in output  # refused before any work


@pytest.mark.parametrize("name", ALL_WRITERS)
def test_output_under_a_file_is_exit_2(kit, tmp_path, name):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile"
    args = {**_writers(kit, out), **_train_writers(kit, out)}[name]
    code, output = _invoke_any(args)
    assert_clean_error(code, output, 2, "afile is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x" and not leftovers(tmp_path)


@pytest.mark.parametrize("command", ["onnx", "trt"])
def test_output_that_is_a_directory_leaves_no_companion(kit, tmp_path, command):
    target = tmp_path / ("DIR.onnx" if command == "onnx" else "DIR.engine")
    target.mkdir()
    extra = ["--target", "sm89"] if command == "trt" else []
    code, output = invoke_cli(command, "--weights", kit["ckpt"], "-o", target, "--force", *extra)
    assert_clean_error(code, output, 2, str(target), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no DIR.onnx.json, no .tmp
    assert not any(target.iterdir())


def test_run_into_a_folder_of_frames_needs_force(kit, tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "frame_000000.png").write_bytes(b"old")
    code, output = invoke_cli("run", kit["root"] / "images", "--weights", kit["ckpt"], "-o", tmp_path / "frames")
    assert_clean_error(code, output, 2, "frames", "already exists; pass --force")
    assert (tmp_path / "frames" / "frame_000000.png").read_bytes() == b"old"


# --- 5/6/13. run: exit codes, one frame size, truncated sources ------------------------------------

def test_run_exit_codes_follow_derain(kit, tmp_path):
    code, output = invoke_cli("run", kit["root"] / "corrupt", "--weights", kit["ckpt"], "-o", tmp_path / "f")
    assert_clean_error(code, output, 1, "bad.png", "1 of 2 frames failed")
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.png").write_bytes(b"not a png")
    code, output = invoke_cli("run", tmp_path / "only_bad", "--weights", kit["ckpt"], "-o", tmp_path / "v.mp4")
    assert_clean_error(code, output, 2, "no frame could be read")
    _nothing_written(tmp_path, "v.mp4")


def test_run_mixed_sizes_to_video_refused_never_distorted(kit, tmp_path):
    code, output = invoke_cli("run", kit["root"] / "mixed", "--weights", kit["ckpt"], "-o", tmp_path / "v.mp4")
    assert_clean_error(code, output, 2, "b.png", "frame 1 is 32x24", "frame 0 (a.png) is 24x32",
                       "never rescaled")
    _nothing_written(tmp_path, "v.mp4")
    code, output = invoke_cli("run", kit["root"] / "mixed", "--weights", kit["ckpt"], "-o", tmp_path / "pngs")
    assert code == 0, output
    from PIL import Image
    sizes = [Image.open(p).size for p in sorted((tmp_path / "pngs").iterdir())]
    assert sizes == [(32, 24), (24, 32)]  # each frame at its own size


def test_run_truncated_video_says_it_ended_early(kit, tmp_path):
    from conftest import block_frames, write_frames_video

    full = write_frames_video(tmp_path / "full.mkv", block_frames(24, 32, 48))
    data = full.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[:int(len(data) * 0.6)])
    code, output = invoke_cli("run", tmp_path / "cut.mkv", "--weights", kit["ckpt"])
    assert_clean_error(code, output, 1, "cut.mkv", "ended early", "declares 24")
    code, output = invoke_cli("run", full, "--weights", kit["ckpt"])
    assert code == 0 and "ended early" not in output, output


# --- 7 and small ones: one checkpoint loader -------------------------------------------------------

@pytest.mark.parametrize("command", ["onnx", "derain", "verify", "bench", "sensitivity", "evaluate"])
def test_nan_checkpoint_refused_at_load(kit, tmp_path, command):
    bad = kit["nan_ckpt"]
    images = kit["root"] / "images"
    args = {"onnx": ["onnx", "--weights", bad, "-o", tmp_path / "m.onnx", "--precision", "int8", "--calib",
                     kit["calib"], "--images", images],
            "derain": ["derain", images, "--weights", bad, "-o", tmp_path / "d"],
            "verify": ["verify", kit["fp32.onnx"], "--data", images, "--weights", bad],
            "bench": ["bench", "--data", images, "--weights", bad, "--workdir", tmp_path / "w", "--log",
                      tmp_path / "b.log"],
            "sensitivity": ["sensitivity", "--calib", kit["calib"], "--data", images, "--weights", bad],
            "evaluate": ["evaluate", "--data", kit["root"] / "paired", "--weights", bad]}[command]
    code, output = _invoke_any(args)
    assert_clean_error(code, output, 2, str(bad), "tensor conv0.0.weight", "NaN/Inf")
    assert ".tmp" not in output
    _nothing_written(tmp_path, "m.onnx", "m.onnx.json")


@pytest.mark.parametrize("which, needle", [("empty_ckpt", "not a readable PyTorch checkpoint: empty file (0 bytes)"),
                                           ("unsafe_ckpt", "not a readable PyTorch checkpoint"),
                                           ("root", "is a directory")])
def test_bad_checkpoint_files(kit, tmp_path, which, needle):
    code, output = invoke_cli("onnx", "--weights", kit[which], "-o", tmp_path / "m.onnx")
    assert_clean_error(code, output, 2, str(kit[which]), needle)
    assert "weights_only=False" not in output and "will likely succeed" not in output


def test_missing_tensorrt_hint_names_the_extra():
    from sapnet_export.engine.trt_api import INSTALL

    assert "[tensorrt]" in INSTALL["tensorrt"] and "[rtx]" in INSTALL["tensorrt-rtx"]


# --- 8/9. verify stages, inspect of empty files ----------------------------------------------------

def test_verify_stage_mismatch_names_both(kit):
    code, output = invoke_cli("verify", kit["one_stage.onnx"], "--data", kit["root"] / "images", "--weights",
                              kit["ckpt"])
    assert_clean_error(code, output, 2, "one_stage.onnx", "runs 1 stages", "reference runs 2", "--stages 1")


def test_verify_other_weights_names_both(kit, tmp_path):
    """An ONNX compared with a reference of other weights: refused before any inference (exit 2)."""
    torch.manual_seed(1)
    other = save_checkpoint(SAPNet(stages=2).eval(), tmp_path / "other.pth")
    code, output = invoke_cli("verify", kit["fp32.onnx"], "--data", kit["root"] / "images", "--weights", other,
                              "--json", tmp_path / "v.json")
    assert_clean_error(code, output, 2, "fp32.onnx", "exported from", "tiny.pth", "other.pth",
                       "--weights")
    assert not (tmp_path / "v.json").exists()


@pytest.mark.parametrize("name, needle", [("empty.onnx", "empty file (0 bytes)"),
                                          ("garbage.onnx", "not")])
def test_inspect_empty_or_unparsable_is_an_error(kit, name, needle):
    code, output = invoke_cli("inspect", kit["root"] / name)
    assert_clean_error(code, output, 2, name, needle)


def test_inspect_empty_engine_is_an_error(tmp_path):
    (tmp_path / "e.engine").write_bytes(b"")
    code, output = invoke_cli("inspect", tmp_path / "e.engine")
    assert_clean_error(code, output, 2, "e.engine", "empty file")


# --- 10. sapnet-train -------------------------------------------------------------------------------

TRAIN_FAST = ["--epochs", "1", "--batch-size", "1", "--patch", "32", "--stride", "32", "--stages", "1",
              "--steps-per-epoch", "2", "--no-pretrained", "--seg", "0", "--pcl", "0", "--lpips", "0",
              "--device", "cpu"]


def test_train_diverging_loss_stops_with_step_and_leaves_no_empty_folder(kit, tmp_path):
    code, output = _invoke_any(["train", "-o", tmp_path / "run", "--clean", kit["root"] / "clean",
                                *TRAIN_FAST, "--lr", "1e12"])
    assert_clean_error(code, output, 1, "training diverged at epoch 1, step", "loss",
                       "no checkpoint was written")
    assert not (tmp_path / "run").exists()


def test_train_resume_with_truncated_state(kit, tmp_path):
    code, output = _invoke_any(["train", "-o", tmp_path / "run", "--clean", kit["root"] / "clean", *TRAIN_FAST])
    assert code == 0, output
    state = tmp_path / "run" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    code, output = _invoke_any(["train", "-o", tmp_path / "run", "--clean", kit["root"] / "clean", *TRAIN_FAST,
                                "--resume"])
    assert_clean_error(code, output, 2, str(state), "cannot be read", "--force")


def test_evaluate_stages_out_of_range(kit):
    code, output = _invoke_any(["evaluate", "--data", kit["root"] / "paired", "--weights", kit["ckpt"],
                                "--stages", "99"])
    assert_clean_error(code, output, 2, "--stages")
    code, output = _invoke_any(["evaluate", "--data", kit["root"] / "paired", "--weights", kit["ckpt"],
                                "--stages", "5"])
    assert_clean_error(code, output, 2, "--stages 5", str(kit["ckpt"]), "1..2")


# --- 12. calibration crops ----------------------------------------------------------------------

def test_calib_crop_never_upscales_silently(tmp_path):
    write_rgb(tmp_path / "dot.png", 1, 1)
    code, output = invoke_cli("calib", "build", tmp_path / "dot.png", "-o", tmp_path / "set", "--size", "32x32",
                              "--count", "1")
    assert_clean_error(code, output, 2, "dot.png", "1x1 is smaller than --size 32x32", "--fit resize")
    _nothing_written(tmp_path, "set")
    write_rgb(tmp_path / "small.png", 16, 16)
    code, output = invoke_cli("calib", "build", tmp_path / "small.png", "-o", tmp_path / "set", "--size", "24x24",
                              "--count", "1")
    assert code == 0 and "small.png" in output and "scaled it up 1.50 times" in output, output
