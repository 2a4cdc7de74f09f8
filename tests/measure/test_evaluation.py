import math

import pytest
import torch

from conftest import write_rgb
from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.measure.evaluation import evaluate, prepare_held_out, result_rows, summarize
from sapnet_export.export.onnx_export import export_onnx
from sapnet_export.fileio import sha256_file
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def images(tmp_path):
    folder, gt = tmp_path / "in", tmp_path / "gt"
    folder.mkdir()
    gt.mkdir()
    for i in range(2):
        write_rgb(folder / f"{i}.png", 16, 20, seed=i)
        write_rgb(gt / f"{i}.png", 16, 20, seed=10 + i)
    return folder, gt


def items_of(folder):
    return [(p, p.relative_to(folder)) for p in sorted(folder.glob("*.png"))]


def test_reference_against_itself_and_ground_truth(tiny_checkpoint, images):
    folder, gt = images
    runner = TorchRunner(*load_weights(tiny_checkpoint))
    held_out = prepare_held_out(runner, items_of(folder), gt)
    assert [h.path.name for h in held_out] == ["0.png", "1.png"]
    results = evaluate(runner, held_out)
    summary = summarize(results)
    # keys of the one held-out summary schema (conversion-report-v3 = verify's); same conditions
    assert math.isinf(summary["fidelity"]["psnr_min_db"]) and summary["fidelity"]["max_abs_u8"] == 0
    assert summary["changed_pixels_max"] == 0 and summary["images"] == 2
    assert summary["quality"]["psnr_y"] - summary["reference_quality"]["psnr_y"] == 0
    assert summary["reference_quality"]["ssim_y"] < 1
    rows = result_rows(results)
    assert rows[0]["shape"] == [1, 3, 16, 20]
    assert rows[0]["quality"].keys() == summary["quality"].keys() == rows[0]["reference_quality"].keys()


def test_missing_ground_truth_and_calibration_images_are_refused(tiny_checkpoint, images):
    folder, gt = images
    runner = TorchRunner(*load_weights(tiny_checkpoint))
    (gt / "1.png").unlink()
    with pytest.raises(InputError, match="1.png: no ground truth"):
        prepare_held_out(runner, items_of(folder), gt)
    with pytest.raises(InputError, match="0.png: this image is in the calibration set"):
        prepare_held_out(runner, items_of(folder), exclude_sha256=frozenset({sha256_file(folder / "0.png")}))


def test_nan_output_is_an_error_naming_the_image(tiny_checkpoint, images, tmp_path):
    """A model whose weights hold NaN, exported and run for real in ONNX Runtime."""
    folder, _ = images
    model, info = load_weights(tiny_checkpoint)
    reference = TorchRunner(model, info)
    held_out = prepare_held_out(reference, items_of(folder))
    path = export_onnx(model, info, tmp_path / "ok.onnx").path
    with torch.no_grad():
        model.conv[0].bias[0] = float("nan")
    import onnx
    from sapnet_export.export.onnx_export import to_onnx_proto

    onnx.save(to_onnx_proto(model, 2, 17, None), str(tmp_path / "nan.onnx"))
    assert summarize(evaluate(OnnxRuntimeRunner(path), held_out))["images"] == 2
    with pytest.raises(CheckFailed, match=r"0.png: onnxruntime fp32 output holds \d+ NaN/Inf"):
        evaluate(OnnxRuntimeRunner(tmp_path / "nan.onnx"), held_out)


def test_summary_of_nothing_is_empty():
    summary = summarize([])  # one schema: nothing measured is None, not missing keys
    assert summary["images"] == 0 and summary["fidelity"] is None and summary["quality"] is None
