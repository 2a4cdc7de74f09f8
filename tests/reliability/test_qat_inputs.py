"""Hostile inputs for ``sapnet-train qat`` and for the int8 export of a QAT checkpoint: each is refused
with exit 2 and a message naming what is wrong, and nothing is written."""

import numpy as np
import pytest
import torch

from conftest import assert_clean_error, invoke_cli, invoke_train_cli, leftovers, write_rgb_folder
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.model.checkpoints import load_weights, save_checkpoint
from training.qat import QatConfig, qat_finetune


train_cli = invoke_train_cli


def _qat_args(weights, calib, out, *extra):
    return ("qat", "--weights", weights, "--calib", calib, "-o", out, "--steps", 1, "--batch-size", 1,
            "--patch", 16, "--device", "cpu", *extra)


@pytest.mark.parametrize("extra, needle", [
    (("--patch", 64), "--patch 64: larger than the frames (24x32)"),
    (("--stages", 3), "--stages 3"),
])
def test_qat_bad_recipe(tiny_checkpoint, tiny_calibration, tmp_path, extra, needle):
    out = tmp_path / "qat.pth"
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, out), *extra)
    assert_clean_error(code, output, 2, needle)
    assert not out.exists() and leftovers(tmp_path) == []


def test_qat_bad_inputs_and_outputs(tiny_checkpoint, tiny_calibration, tmp_path):
    out = tmp_path / "qat.pth"
    code, output = train_cli(*_qat_args(tiny_checkpoint, tmp_path / "nowhere", out))
    assert_clean_error(code, output, 2, "nowhere", "not a calibration set")
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, out), "--range-calib",
                             tmp_path / "no-ranges")
    assert_clean_error(code, output, 2, "no-ranges", "not a calibration set")
    code, output = train_cli(*_qat_args(tmp_path / "missing.pth", tiny_calibration, out))
    assert_clean_error(code, output, 2, "missing.pth")
    (tmp_path / "folder.pth").mkdir()
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, tmp_path / "folder.pth"))
    assert_clean_error(code, output, 2, "folder.pth")
    out.write_bytes(b"keep me")
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, out))
    assert_clean_error(code, output, 2, "qat.pth", "--force")
    assert out.read_bytes() == b"keep me"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_qat_cuda_absent(tiny_checkpoint, tiny_calibration, tmp_path):
    out = tmp_path / "qat.pth"
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, out)[:-2], "--device", "cuda")
    assert_clean_error(code, output, 2, "CUDA is not available")
    assert not out.exists()


@pytest.fixture
def qat_one_stage(tiny_checkpoint, tiny_calibration, tmp_path):
    """A QAT checkpoint of the 2-stage tiny model whose ranges cover stage 1 only."""
    model, _ = load_weights(tiny_checkpoint)
    frames = load_calibration(tiny_calibration).frames
    result = qat_finetune(model, frames, QatConfig(steps=1, batch_size=1, patch=16, stages=1),
                          torch.device("cpu"))
    return save_checkpoint(result.model, tmp_path / "qat1.pth", qat=result.ranges.as_dict())


def _int8_export(weights, calib, out, images, *extra):
    return invoke_cli("onnx", "--weights", weights, "-o", out, "--precision", "int8", "--calib", calib,
                      "--images", images, *extra)


def test_qat_checkpoint_refuses_what_its_ranges_do_not_cover(qat_one_stage, tiny_calibration, tmp_path):
    images = write_rgb_folder(tmp_path / "held", 1, 24, 32, prefix="h")
    out = tmp_path / "q.onnx"
    code, output = _int8_export(qat_one_stage, tiny_calibration, out, images)
    assert_clean_error(code, output, 2, "no learned range", "stage 2", "ran 1 stages")
    code, output = _int8_export(qat_one_stage, tiny_calibration, out, images, "--qdq-profile", "cpu")
    assert_clean_error(code, output, 2, "--qdq-profile cpu", "tensorrt")
    assert not out.exists() and not (tmp_path / "q.onnx.json").exists() and leftovers(tmp_path) == []


def test_damaged_qat_record_is_named(qat_one_stage, tiny_calibration, tmp_path):
    payload = torch.load(qat_one_stage, weights_only=True)
    payload["qat"]["ranges"][0]["absmax"] = float("nan")
    damaged = tmp_path / "damaged.pth"
    torch.save(payload, damaged)
    images = write_rgb_folder(tmp_path / "held", 1, 24, 32, prefix="h")
    code, output = _int8_export(damaged, tiny_calibration, tmp_path / "q.onnx", images)
    assert_clean_error(code, output, 2, "damaged.pth", "not finite and positive")
    assert not (tmp_path / "q.onnx").exists()
    assert np.isnan(torch.load(damaged, weights_only=True)["qat"]["ranges"][0]["absmax"])


def test_qat_sets_of_different_sizes(tiny_checkpoint, tiny_calibration, tmp_path):
    from sapnet_export.export.int8.calibration import build_calibration

    other = tmp_path / "other"
    sources = write_rgb_folder(tmp_path / "src", 2, 40, 40, prefix="o")
    build_calibration([str(sources)], other, size=(32, 32), count=2, seed=0)
    out = tmp_path / "qat.pth"
    code, output = train_cli(*_qat_args(tiny_checkpoint, tiny_calibration, out), "--calib", other)
    assert_clean_error(code, output, 2, "different frame sizes", "24x32", "32x32")
    assert not out.exists()
