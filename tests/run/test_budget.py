import json
from pathlib import Path

import pytest

from sapnet_export.run.budget import Configuration, choose, load_configurations, read_reports
from sapnet_export.errors import InputError
from sapnet_export.machine import machine_info


def _config(name: str, stages: int, psnr: float, ms: float, backend: str = "onnxruntime") -> Configuration:
    return Configuration(name=name, backend=backend, precision="fp32", stages=stages, file=None,
                         weights_sha256="x", psnr_y=psnr, ssim_y=0.9, latency_ms={(100, 200): ms},
                         report=Path("r.json"))


def test_load_reads_every_row_of_real_reports(tiny_configs):
    configs, excluded = load_configurations([tiny_configs], machine_info())
    assert excluded == []
    assert sorted((c.name, c.stages) for c in configs) == [("onnx", 1), ("onnx", 2), ("torch", 1), ("torch", 2)]
    for config in configs:
        assert (24, 32) in config.latency_ms and config.latency_ms[(24, 32)] > 0
        assert config.file is None if config.name == "torch" else config.file.is_file()
    assert [path for path, _ in read_reports([tiny_configs])] == [tiny_configs / "k1.json", tiny_configs / "k2.json"]


def test_choose_most_quality_that_reaches_the_target():
    configs = [_config("a", 6, 32.6, 1000.0), _config("b", 3, 31.0, 500.0), _config("c", 1, 28.0, 200.0)]
    choice = choose(configs, 1.5, (100, 200))
    assert choice.met and choice.chosen.config.name == "b" and choice.chosen.estimated_from is None
    assert [c.config.name for c in choice.candidates] == ["c", "b", "a"]
    assert "chose b, 3 stages" in choice.explain() and "2.00 fps" in choice.explain()
    assert choose(configs, 1.0, (100, 200)).chosen.config.name == "a"
    slow = choose(configs, 10.0, (100, 200))
    assert not slow.met and slow.chosen.config.name == "c"
    assert slow.explain().startswith("no measured configuration reaches 10 fps")


def test_choose_estimates_other_sizes_and_tiles_by_pixel_count():
    config = _config("a", 6, 32.0, 100.0)
    choice = choose([config], 1.0, (200, 400))
    assert choice.chosen.latency_ms == pytest.approx(400.0) and choice.chosen.estimated_from == "100x200"
    tiled = choose([config], 1.0, (100, 200), pixels=30000)
    assert tiled.chosen.latency_ms == pytest.approx(150.0) and tiled.chosen.estimated_from == "100x200"


def test_quality_loss_is_against_full_model_in_pytorch():
    configs = [_config("torch", 6, 32.6, 3000.0, backend="torch"), _config("torch", 2, 30.0, 1000.0, backend="torch"),
               _config("onnx-int8-cpu", 6, 32.3, 900.0)]
    choice = choose(configs, 1.0, (100, 200))
    assert choice.reference_psnr_y == 32.6 and choice.chosen.config.name == "onnx-int8-cpu"
    assert choice.chosen.quality_loss_db == pytest.approx(0.3)
    assert "0.30 dB below torch, 6 stages (torch fp32) (32.60 dB)" in choice.explain()


def test_choose_errors():
    with pytest.raises(InputError, match="must be > 0"):
        choose([_config("a", 1, 30.0, 10.0)], 0, (100, 200))
    with pytest.raises(InputError, match="no usable measured configuration.*a, 1 stage: failed"):
        choose([], 1.0, (100, 200), excluded=[("a, 1 stage", "failed")])


def _rewrite(path: Path, target: Path, change) -> Path:  # noqa: ANN001
    payload = json.loads(path.read_text())
    change(payload)
    target.write_text(json.dumps(payload))
    return target


def test_load_refuses_other_machines_other_images_and_no_ground_truth(tiny_configs, tmp_path):
    def other_machine(p):  # noqa: ANN001, ANN202
        p["machine"]["cpu"] = "Some Other CPU"

    with pytest.raises(InputError, match="measured on Some Other CPU.*not on this machine"):
        load_configurations([_rewrite(tiny_configs / "k1.json", tmp_path / "m.json", other_machine)], machine_info())

    def fewer_images(p):  # noqa: ANN001, ANN202
        p["dataset"]["images"] = 1

    with pytest.raises(InputError, match="compare only on the same images"):
        load_configurations([tiny_configs / "k1.json", _rewrite(tiny_configs / "k2.json", tmp_path / "i.json",
                                                             fewer_images)], machine_info())

    def no_gt(p):  # noqa: ANN001, ANN202
        p["dataset"]["gt"] = None

    with pytest.raises(InputError, match="without ground truth"):
        load_configurations([_rewrite(tiny_configs / "k1.json", tmp_path / "g.json", no_gt)], machine_info())
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="x.json: not a bench report"):
        load_configurations([tmp_path / "x.json"], machine_info())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no bench report"):
        load_configurations([tmp_path / "empty"], machine_info())


def test_load_excludes_failed_rows_and_missing_files(tiny_configs, tmp_path):
    def break_rows(p):  # noqa: ANN001, ANN202
        p["targets"][0]["status"] = "failed_gate"
        p["targets"][0]["reason"] = "fidelity 20 dB < 80 dB"
        p["targets"][1]["file"] = str(tmp_path / "gone.onnx")

    configs, excluded = load_configurations([_rewrite(tiny_configs / "k1.json", tmp_path / "b.json", break_rows)],
                                            machine_info())
    assert configs == []
    assert excluded == [("torch, 1 stage", "failed_gate: fidelity 20 dB < 80 dB"),
                        ("onnx, 1 stage", f"{tmp_path / 'gone.onnx'}: model file no longer exists")]
