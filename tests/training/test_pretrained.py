import pytest
import torch

from training.pretrained import PretrainedUnavailable, imagenet_network, lpips_network


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache and every download sent to a closed loopback port: the state of a
    machine without internet, for real (no mock of the loader)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.mark.parametrize("name,file_name", [("vgg16", "vgg16-397923af.pth"),
                                            ("resnet101", "resnet101-63fe2227.pth")])
def test_offline_imagenet_weights_fail_clearly(offline, name, file_name):
    with pytest.raises(PretrainedUnavailable) as error:
        imagenet_network(name, pretrained=True)
    message = str(error.value)
    assert file_name in message and str(offline) in message and "--no-pretrained" in message
    assert error.value.exit_code == 2
    assert not any(offline.glob("*.pth"))  # nothing half-downloaded left in the cache


def test_offline_lpips_fails_clearly(offline):
    with pytest.raises(PretrainedUnavailable, match=r"alexnet-owt-7be5be79\.pth"):
        lpips_network(pretrained=True)


def test_no_pretrained_networks_are_seeded_and_frozen():
    a, b = imagenet_network("vgg16", False, seed=3), imagenet_network("vgg16", False, seed=3)
    c = imagenet_network("vgg16", False, seed=4)
    first = next(iter(a.parameters()))
    assert torch.equal(first, next(iter(b.parameters())))
    assert not torch.equal(first, next(iter(c.parameters())))
    assert not any(p.requires_grad for p in a.parameters()) and not a.training


def test_a_cached_file_is_used_without_any_download(offline):
    # Put VGG-16's ImageNet file in the cache by hand (as the error message says) and load offline.
    from torchvision.models import vgg16

    offline.mkdir(parents=True)
    state = vgg16(weights=None).state_dict()
    path = offline / "vgg16-397923af.pth"
    torch.save(state, path)
    loaded = imagenet_network("vgg16", pretrained=True)  # the closed proxy would fail a download
    assert torch.equal(loaded.features[0].weight, state["features.0.weight"])
