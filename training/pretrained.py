"""ImageNet-pretrained networks of the losses, through torchvision's and lpips' own loaders.

VGG-16 (perceptual contrastive loss), ResNet-101 (backbone of the segmentation loss) and AlexNet
(the LPIPS network) get their ImageNet weights from torchvision's ``Weights.get_state_dict``, which
uses the torch hub checkpoint cache (``<torch.hub.get_dir()>/checkpoints``; ``$TORCH_HOME`` moves it)
and downloads into it where there is internet. LPIPS' calibrated linear heads ship inside the lpips
wheel.

Offline, a missing file is an error that names it, the cache folder and the two ways out (copy the
file into the cache, or ``--no-pretrained``). ``--no-pretrained`` builds the same networks with a
seeded random initialisation; the training run records it in the checkpoint, so a random-feature loss
is never mistaken for the paper's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sapnet_export.errors import InputError

#: The ImageNet weights each network uses (torchvision's names); the official SAPNet code uses the
#: same originals (``models.vgg16(pretrained=True)``, model_zoo ``resnet101``, lpips' AlexNet).
IMAGENET_WEIGHTS = {
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "alexnet": "AlexNet_Weights.IMAGENET1K_V1",
}


class PretrainedUnavailable(InputError):
    """ImageNet weights are neither in the torch hub cache nor downloadable (exit code 2)."""


def _weights_enum(name: str):  # noqa: ANN202 - a torchvision WeightsEnum member
    from torchvision.models import get_weight

    return get_weight(IMAGENET_WEIGHTS[name])


def cache_dir() -> Path:
    """The folder torchvision downloads ImageNet weights into (``<torch.hub.get_dir()>/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of ``name`` (``vgg16``, ``resnet101`` or ``alexnet``) from the cache or a download.

    Raises:
        PretrainedUnavailable: not cached and the download failed (no internet, proxy, bad hash); the
            message names the file, the cache folder, the address and the reason.
    """
    weights = _weights_enum(name)
    file_name = weights.url.rsplit("/", 1)[-1]
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, OSError, RuntimeError (hash) ...
        raise PretrainedUnavailable(
            f"ImageNet weights of {name} ({file_name}) are not in the torch hub cache {cache_dir()} "
            f"and could not be downloaded from {weights.url}: {exc}. Without internet, copy the file "
            "into that folder (or set $TORCH_HOME), or train with --no-pretrained (random-feature "
            "losses, recorded in the checkpoint).") from exc


def imagenet_network(name: str, pretrained: bool, seed: int = 0) -> nn.Module:
    """torchvision's ``name`` with ImageNet weights, or a random initialisation seeded by ``seed``.

    Returns the whole classifier network in eval mode with ``requires_grad`` off (the losses only
    read features); float32 on the CPU.

    Raises:
        PretrainedUnavailable: see :func:`imagenet_state_dict`.
    """
    from torchvision import models

    builder = getattr(models, name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = builder(weights=None)
    if pretrained:
        network.load_state_dict(imagenet_state_dict(name))
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def lpips_network(pretrained: bool, seed: int = 0) -> nn.Module:
    """The LPIPS distance (Zhang et al., CVPR 2018; ``lpips.LPIPS(net='alex')``, version 0.1).

    With ``pretrained`` the AlexNet trunk has its ImageNet weights (fetched first through
    :func:`imagenet_state_dict`, so offline gives the clear error); without, a seeded random trunk
    (``pnet_rand=True``). The calibrated linear heads come from the lpips wheel in both cases.

    Raises:
        PretrainedUnavailable: see :func:`imagenet_state_dict`.
    """
    import lpips

    if pretrained:
        imagenet_state_dict("alexnet")  # fills the cache, or raises the clear error
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # lpips 0.1.4 still calls torchvision's deprecated ``alexnet(pretrained=...)``.
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        network = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=not pretrained,
                              verbose=False)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network
