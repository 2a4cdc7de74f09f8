import json

import pytest

from conftest import invoke_cli as invoke


def _verify(models, *targets, extra=()):
    return invoke("verify", *targets, "--data", models["data"], "--gt", models["gt"],
                  "--weights", models["checkpoint"], "--runs", "1", *extra)


def test_good_models_pass_exit_0(tiny_models, tmp_path):
    code, output = _verify(tiny_models, tiny_models["fp32"], tiny_models["int8"], "torch",
                           extra=("--json", tmp_path / "v.json", "--max-quality-drop", "50"))
    assert code == 0, output
    assert "all gates passed" in output
    payload = json.loads((tmp_path / "v.json").read_text())
    assert [t["status"] for t in payload["targets"]] == ["ok", "ok", "ok"]
    assert payload["reference"]["weights_sha256"] and payload["reference"]["stages"] == 2


def test_openvino_runs_the_onnx_targets_and_the_report_says_how(tiny_models, tmp_path):
    code, output = _verify(tiny_models, tiny_models["fp32"], tiny_models["int8"],
                           extra=("--backend", "openvino", "--json", tmp_path / "v.json",
                                  "--max-quality-drop", "50"))
    assert code == 0, output
    payload = json.loads((tmp_path / "v.json").read_text())
    assert [(t["backend"], t["precision"]) for t in payload["targets"]] == [("openvino", "fp32"),
                                                                              ("openvino", "int8")]
    assert {t["settings"]["inference_precision"] for t in payload["targets"]} == {"f32"}
    assert "openvino" in payload["targets"][0]["versions"]
    assert payload["reference"]["versions"]["torch"]
    assert set(payload["machine"]["cpu_features"]) == {"flags", "native_bf16", "openvino"}


def test_damaged_model_fails_exit_1_naming_gate_and_image(tiny_models, tmp_path):
    code, output = _verify(tiny_models, tiny_models["fp32"], tiny_models["damaged"],
                           extra=("--json", tmp_path / "v.json", "--report", tmp_path / "r"))
    assert code == 1, output
    assert "failed_gate: fidelity mean" in output and "(worst rain-" in output
    payload = json.loads((tmp_path / "v.json").read_text())
    assert payload["passed"] is False and payload["targets"][1]["gates"][0]["passed"] is False
    assert (tmp_path / "r" / "index.md").is_file()


@pytest.mark.parametrize("target, message", [
    ("missing.onnx", "missing.onnx: ONNX file not found"),
    ("model.tflite", "a target is 'torch', an ONNX file"),
])
def test_bad_targets_exit_2(tiny_models, target, message):
    code, output = _verify(tiny_models, target)
    assert code == 2 and message in output


def test_unmatched_ground_truth_is_listed(tiny_models, tmp_path):
    import shutil

    gt = tmp_path / "gt"
    shutil.copytree(tiny_models["gt"], gt)
    (gt / "norain-2.png").rename(gt / "other.png")
    code, output = invoke("verify", tiny_models["fp32"], "--data", tiny_models["data"], "--gt", gt,
                          "--weights", tiny_models["checkpoint"], "--runs", "0", "--json", tmp_path / "v.json")
    assert code == 0, output
    assert "1 inputs have no ground truth" in output and "rain-2.png" in output
    assert "1 ground-truth files match no input: other.png" in output
    payload = json.loads((tmp_path / "v.json").read_text())
    assert payload["dataset"]["unmatched_inputs"][0].endswith("rain-2.png")
    assert payload["targets"][0]["images_with_ground_truth"] == 2 and payload["targets"][0]["latency_ms"] is None


@pytest.mark.real
def test_published_checkpoint_int8_passes_and_its_damaged_copy_fails(seeded_official_cache, tmp_path):
    """The issue's check on the real model: an int8 graph (tensorrt profile, calibrated on real rain)
    passes verify on Rain100L images; the same graph with one weight scale x 100 fails with exit 1."""
    from conftest import damage_int8_scale, need_shared
    from sapnet_export.export.int8.calibration import build_calibration, load_calibration
    from sapnet_export.export.onnx_export import Int8Options, export_onnx
    from sapnet_export.model.checkpoints import load_weights

    rain100l = need_shared("data/rain100l")
    data = tmp_path / "data"
    data.mkdir()
    for n in (1, 2):
        (data / f"{n}.png").write_bytes((rain100l / "input" / f"{n}.png").read_bytes())
    build_calibration([str(need_shared("data/real-rain"))], tmp_path / "calib", size=(96, 128), count=8, seed=0)
    model, info = load_weights("official")
    int8 = export_onnx(model, info, tmp_path / "int8.onnx", precision="int8", require_held_out=False,
                       int8=Int8Options(load_calibration(tmp_path / "calib"))).path
    damage_int8_scale(int8, tmp_path / "damaged.onnx")
    common = ("--weights", "official", "--data", data, "--gt", rain100l / "target", "--runs", "0",
              "--max-quality-drop", "1.5")
    code, output = invoke("verify", int8, *common)
    assert code == 0, output
    code, output = invoke("verify", tmp_path / "damaged.onnx", *common)
    assert code == 1 and "failed_gate" in output, output
