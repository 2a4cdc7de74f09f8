import csv

import numpy as np
import pytest
import torch

from sapnet_export.errors import InputError
from sapnet_export.model.network import SAPNet
from sapnet_export.model.checkpoints import load_weights
from training.data import PatchDataset, Pair
from training.losses import LossWeights, ssim
from training.loop import TrainConfig, train

SSIM_ONLY = LossWeights(ssim=1.0, seg=0.0, pcl=0.0, lpips=0.0)


def _images(count=3, size=48, seed=0):
    """Smooth clean photographs (gradients and blobs: something a 2-stage net can restore)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(count):
        a, b, c = rng.uniform(0.1, 0.6, 3)
        image = np.stack([a + 0.3 * xx, b + 0.3 * yy, c + 0.2 * np.sin(6 * xx * yy + i)])
        out.append((f"{i}.png", np.clip(image, 0, 1).astype(np.float32)))
    return out


def _config(**overrides) -> TrainConfig:
    values = dict(epochs=2, batch_size=4, stages=2, weights=SSIM_ONLY, pretrained=False,
                  milestones=(1,), steps_per_epoch=6, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def _dataset(seed=0) -> PatchDataset:
    return PatchDataset(clean=_images(size=64), patch=32, stride=8, seed=seed)


def test_a_few_steps_on_tiny_patches_lower_the_loss(tmp_path):
    config = _config(epochs=3, steps_per_epoch=8)
    held = _dataset(seed=99)  # other rain on the same kind of patches
    held.set_epoch(0)
    rainy = torch.stack([held[i][0] for i in range(0, len(held), 5)])
    clean = torch.stack([held[i][1] for i in range(0, len(held), 5)])
    torch.manual_seed(config.seed)
    initial = SAPNet(stages=2).eval()
    result = train(config, _dataset(), tmp_path / "run", device="cpu")
    trained, _ = load_weights(tmp_path / "run" / "sapnet.pth")
    with torch.no_grad():
        before = -ssim(initial(rainy), clean).item()
        after = -ssim(trained(rainy), clean).item()
    assert result.steps == 24
    assert after < before - 0.02, (before, after)


def test_checkpoint_and_log_record_the_run(tmp_path):
    pairs = [Pair(name, image, image) for name, image in _images(1, 40)]
    train(_config(), _dataset(), tmp_path / "run", validation=pairs,
          data_description={"clean": ["tiny"]}, device="cpu")
    model, info = load_weights(tmp_path / "run" / "sapnet.pth")
    meta = info.metadata["training"]
    assert info.layout == "sapnet-export" and model.stages == 2
    assert meta["recipe"]["lr"] == 1e-3 and meta["recipe"]["weights"]["lpips"] == 0.0
    assert meta["recipe"]["pretrained"] is False
    assert meta["steps"] == 12 and meta["epochs_done"] == 2 and meta["device"] == "cpu"
    assert meta["data"] == {"clean": ["tiny"]} and len(meta["validation"]) == 2
    assert set(meta["validation"][0]) >= {"epoch", "y_psnr_db", "y_ssim"}
    assert (tmp_path / "run" / "best.pth").is_file()
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3, 2e-4])  # MultiStepLR at epoch 1
    assert float(rows[0]["loss_ssim"]) < 0


def test_resume_continues_to_the_same_weights_as_one_uninterrupted_run(tmp_path):
    train(_config(epochs=2), _dataset(), tmp_path / "straight", device="cpu")
    train(_config(epochs=1), _dataset(), tmp_path / "resumed", device="cpu")
    train(_config(epochs=2), _dataset(), tmp_path / "resumed", device="cpu", resume=True)
    a = torch.load(tmp_path / "straight" / "sapnet.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "sapnet.pth", weights_only=True)["state_dict"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_an_existing_run_is_never_overwritten_silently(tmp_path):
    train(_config(epochs=1), _dataset(), tmp_path / "run", device="cpu")
    with pytest.raises(InputError, match="--resume continues it"):
        train(_config(epochs=1), _dataset(), tmp_path / "run", device="cpu")
    with pytest.raises(InputError, match="another recipe"):
        train(_config(epochs=2, lr=1e-4), _dataset(), tmp_path / "run", device="cpu", resume=True)
    with pytest.raises(InputError, match="no training state"):
        train(_config(), _dataset(), tmp_path / "other", device="cpu", resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_fallback(tmp_path):
    with pytest.raises(InputError, match="CUDA is not available"):
        train(_config(), _dataset(), tmp_path / "run", device="cuda")
    assert not (tmp_path / "run").exists()
