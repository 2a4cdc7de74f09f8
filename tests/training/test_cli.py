import json

import numpy as np
import pytest

from conftest import invoke_cli, invoke_train_cli, write_rgb
from training.photos import BUNDLED


train_cli = invoke_train_cli


@pytest.fixture
def clean_dir(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        smooth = np.kron(rng.integers(0, 200, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        from PIL import Image

        Image.fromarray(smooth).save(folder / f"{i}.png")
    return folder


def _train_args(out, clean_dir, *extra):
    return ("train", "-o", out, "--clean", clean_dir, "--epochs", 1, "--stages", 2, "--patch", 32,
            "--stride", 16, "--batch-size", 4, "--ssim", 1, "--seg", 0, "--pcl", 0, "--lpips", 0,
            "--device", "cpu", *extra)


def test_train_then_the_checkpoint_round_trips_through_sapnet_export(tmp_path, clean_dir):
    out = tmp_path / "run"
    code, output = train_cli(*_train_args(out, clean_dir, "--val-clean", clean_dir))
    assert code == 0, output
    assert "epoch 1/1" in output and "val Y-PSNR" in output
    assert {p.name for p in out.iterdir()} == {"sapnet.pth", "best.pth", "state.pt", "log.csv"}
    code, output = invoke_cli("onnx", "--weights", out / "sapnet.pth", "-o", tmp_path / "m.onnx")
    assert code == 0, output
    rainy = tmp_path / "rainy"
    rainy.mkdir()
    write_rgb(rainy / "a.png", 24, 32)
    code, output = invoke_cli("derain", rainy, "-o", tmp_path / "derained", "--backend", "onnxruntime",
                              "--model", tmp_path / "m.onnx")
    assert code == 0, output
    assert (tmp_path / "derained" / "a.png").is_file()


def test_data_errors_exit_2_and_name_the_file(tmp_path, clean_dir):
    (clean_dir / "broken.png").write_bytes(b"not an image")
    code, output = train_cli(*_train_args(tmp_path / "run", clean_dir))
    assert code == 2 and "broken.png" in output
    code, output = train_cli("train", "-o", tmp_path / "run")
    assert code == 2 and "no training data" in output
    assert not (tmp_path / "run").exists()


def test_offline_pretrained_losses_exit_2_with_the_way_out(tmp_path, clean_dir, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    args = list(_train_args(tmp_path / "run", clean_dir))
    args[args.index("--pcl") + 1] = 0.1
    code, output = train_cli(*args)
    assert code == 2 and "vgg16-397923af.pth" in output and "--no-pretrained" in output


def test_no_pretrained_is_warned_and_recorded(tmp_path, clean_dir):
    args = list(_train_args(tmp_path / "run", clean_dir, "--no-pretrained"))
    args[args.index("--lpips") + 1] = 0.1
    code, output = train_cli(*args)
    assert code == 0, output
    assert "random (seeded) features" in output
    from sapnet_export.model.checkpoints import load_weights

    _, info = load_weights(tmp_path / "run" / "sapnet.pth")
    assert info.metadata["training"]["recipe"]["pretrained"] is False


def test_render_writes_a_deterministic_paired_dataset_that_evaluate_scores(tmp_path, clean_dir,
                                                                         tiny_checkpoint):
    code, output = train_cli("render", clean_dir, "-o", tmp_path / "a", "--seed", 3)
    assert code == 0, output
    train_cli("render", clean_dir, "-o", tmp_path / "b", "--seed", 3)
    for name in ("0.png", "1.png"):
        assert (tmp_path / "a" / "input" / name).read_bytes() == (tmp_path / "b" / "input" / name).read_bytes()
    record = json.loads((tmp_path / "a" / "rain.json").read_text())
    assert record["images"][0]["seed"] == [3, 0] and record["images"][0]["params"]["layers"]
    code, output = train_cli("evaluate", "--data", tmp_path / "a", "--weights", tiny_checkpoint,
                             "--json", tmp_path / "scores.json")
    assert code == 0, output
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert [r["output"] for r in scores["rows"]] == ["rainy input", str(tiny_checkpoint)]
    assert scores["images"] == 2 and 5 < scores["rows"][0]["y_psnr_db"] < 60


def test_photos_writes_the_bundled_photographs_with_their_sources(tmp_path):
    code, output = train_cli("photos", "-o", tmp_path / "p")
    assert code == 0, output
    sources = json.loads((tmp_path / "p" / "SOURCES.json").read_text())
    assert len(sources["photos"]) == len(BUNDLED)
    splits = {p["split"] for p in sources["photos"]}
    assert splits == {"train", "val"}
    for photo in sources["photos"]:
        assert (tmp_path / "p" / photo["file"]).is_file() and photo["version"]
        assert min(photo["height"], photo["width"]) >= 100  # at least one official patch
