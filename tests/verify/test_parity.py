import math

import pytest

from sapnet_export.errors import InputError
from sapnet_export.data.images import discover_images
from sapnet_export.data.pairs import pair_ground_truth
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.verify.parity import (DEFAULT_MIN_PSNR_DB, Target, open_target, run_verification,
                                  summarize_target, verify_targets, worst_images)
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def setup(tiny_models):
    model, info = load_weights(tiny_models["checkpoint"])
    reference = TorchRunner(model, info, device="cpu")
    pairing = pair_ground_truth(discover_images([tiny_models["data"]]), tiny_models["gt"])
    items = [(path, gt) for path, _, gt in pairing.pairs]
    return tiny_models, reference, info, items


def _run(setup, *specs, **options):
    models, reference, info, items = setup
    targets = [open_target(str(models[s]) if s in models else s, weights=str(models["checkpoint"]),
                           stages=None) for s in specs]
    options.setdefault("runs", 0)
    return run_verification(reference, info.sha256, targets, items, data=models["data"],
                            gt=models["gt"], **options)


def test_good_targets_pass_and_the_schema_holds(setup):
    result = _run(setup, "fp32", "int8", "torch", runs=2, max_quality_drop_db=50.0)
    payload = result.payload
    assert result.passed and payload["passed"]
    assert set(payload) >= {"toolkit", "machine", "reference", "dataset", "targets"}
    assert set(payload["machine"]) == {"cpu", "threads", "gpu", "cpu_features"}
    assert payload["dataset"]["images"] == 3 and payload["dataset"]["gt"]
    fp32, int8, torch_target = payload["targets"]
    for entry in payload["targets"]:
        assert set(entry) >= {"name", "backend", "precision", "file", "size_mb", "status", "reason",
                              "fidelity", "quality", "reference_quality", "latency_ms", "per_image"}
        assert set(entry["fidelity"]) == {"psnr_mean_db", "psnr_min_db", "max_abs_u8", "changed_pixels"}
        assert set(entry["quality"]) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
        assert entry["latency_ms"]["runs"] == 2 and entry["latency_ms"]["size"] == "24x32"
        assert len(entry["per_image"]) == 3 and entry["per_image"][0]["ground_truth"].endswith("norain-1.png")
    assert fp32["fidelity"]["psnr_mean_db"] >= DEFAULT_MIN_PSNR_DB["fp32"]
    assert int8["precision"] == "int8" and int8["fidelity"]["psnr_mean_db"] >= 35
    assert math.isinf(torch_target["fidelity"]["psnr_mean_db"])
    assert torch_target["quality"] == torch_target["reference_quality"]
    assert payload["reference"]["latency_ms"]["runs"] == 2
    assert [g["gate"] for g in fp32["gates"]] == ["fidelity", "quality_drop"]


def test_damaged_int8_fails_the_fidelity_gate_naming_the_worst_image(setup):
    result = _run(setup, "fp32", "damaged")
    fp32, damaged = result.targets
    assert fp32.status == "ok" and not result.passed
    assert damaged.status == "failed_gate"
    assert "fidelity mean" in damaged.reason and "< 35.0 dB (worst rain-" in damaged.reason
    gate = damaged.gates[0]
    assert gate["passed"] is False and gate["worst_value_db"] <= gate["value_db"]


def test_gate_thresholds_are_options(setup):
    result = _run(setup, "fp32", min_psnr_db=1000.0)
    assert result.targets[0].status == "failed_gate"
    result = _run(setup, "int8", max_quality_drop_db=-100.0)  # demand a 100 dB gain: the drop gate fails
    assert "Y-PSNR drop" in result.targets[0].reason


def test_a_target_that_breaks_is_failed_not_a_crash(setup):
    models, reference, _, items = setup

    class Broken(TorchRunner):
        def _run(self, batch):
            raise RuntimeError("kernel exploded")

    model, info = load_weights(models["checkpoint"])
    target = Target(name="broken", runner=Broken(model, info))
    verify_targets(reference, [target], items)
    assert target.status == "failed" and "rain-1.png: kernel exploded" in target.reason
    assert summarize_target(target)["fidelity"] is None


def test_worst_images_are_ranked_by_fidelity(setup):
    result = _run(setup, "int8")
    target = result.targets[0]
    ranked = worst_images(target, 2)
    values = {r["name"]: r["fidelity_psnr_db"] for r in target.rows}
    assert values[ranked[0]] == min(values.values()) and len(ranked) == 2


def test_unknown_target_kind(setup):
    with pytest.raises(InputError, match="a target is 'torch', an ONNX file"):
        open_target("model.tflite", weights="official", stages=None)
