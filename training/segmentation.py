"""SAPNet's unsupervised background-segmentation loss (paper section 3.3; official ``Modeling/fpn.py``,
``train.py: SegLoss`` and ``Modeling/utils.py: FocalLoss, get_NoGT_target``).

An FPN head (Lin et al., CVPR 2017) on an ImageNet ResNet-101 segments the derained image into 21
classes (Pascal VOC's count); the target is the segmentation's own per-pixel argmax, and the loss is
the focal loss (Lin et al., ICCV 2017) with gamma 2. Minimising it asks the derain network for outputs
the segmenter is confident about: a prior that the background is made of coherent regions, without
any labels.

Differences from the official code, on purpose:

- the official ``SegLoss`` builds a new FPN (new random head, ResNet-101 weights loaded again) at
  every step; here the network is built once, with a seeded head, and frozen;
- inputs are normalised with ImageNet's mean and standard deviation, as the ResNet weights expect
  (the official code feeds [0, 1] RGB unnormalised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pretrained import imagenet_network

#: Segmentation classes (official ``--num_of_SegClass``, Pascal VOC).
CLASSES = 21
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] RGB in [0, 1] -> normalised with ImageNet's mean and std (torchvision's)."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class FPNHead(nn.Module):
    """The official FPN head: lateral 1x1 convs to 256 channels, top-down upsampling and addition, two
    3x3 smoothing convs per level (256 -> 256 -> 128), the four levels upsampled to the finest and
    concatenated, and a 3x3 classifier to ``classes`` channels. Weights ~ N(0, 0.01), biases 0."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.top = nn.Conv2d(2048, 256, 1)
        self.lateral = nn.ModuleList([nn.Conv2d(c, 256, 1) for c in (1024, 512, 256)])
        self.smooth = nn.ModuleList([nn.Sequential(nn.Conv2d(256, 256, 3, padding=1),
                                                   nn.Conv2d(256, 128, 3, padding=1))
                                     for _ in range(4)])
        self.classify = nn.Conv2d(128 * 4, classes, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, mean=0.0, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, c2: torch.Tensor, c3: torch.Tensor, c4: torch.Tensor,
                c5: torch.Tensor) -> torch.Tensor:
        """ResNet stages C2..C5 (strides 4..32) -> logits [N, classes, H/4, W/4]."""
        levels = [self.top(c5)]
        for lateral, c in zip(self.lateral, (c4, c3, c2)):
            upper = F.interpolate(levels[-1], size=c.shape[-2:], mode="bilinear", align_corners=True)
            levels.append(upper + lateral(c))
        size = levels[-1].shape[-2:]
        smoothed = [F.interpolate(smooth(level), size=size, mode="bilinear", align_corners=True)
                    for smooth, level in zip(self.smooth, levels)]
        return self.classify(torch.cat(smoothed, 1))


class Segmenter(nn.Module):
    """ResNet-101 (ImageNet, or seeded random with ``pretrained=False``) + :class:`FPNHead`, frozen.

    Raises:
        PretrainedUnavailable: ImageNet weights not cached and not downloadable.
    """

    def __init__(self, pretrained: bool, classes: int = CLASSES, seed: int = 0) -> None:
        super().__init__()
        self.backbone = imagenet_network("resnet101", pretrained, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.head = FPNHead(classes)
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "Segmenter":
        """Stays in eval mode (frozen batch-norm statistics) whatever ``mode`` says."""
        return super().train(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] RGB in [0, 1] -> logits [N, classes, ceil(H/4), ceil(W/4)]."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(imagenet_normalize(image)))))
        c2 = b.layer1(x)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        c5 = b.layer4(c4)
        return self.head(c2, c3, c4, c5)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               eps: float = 1e-7) -> torch.Tensor:
    """Mean focal loss ``-(1 - p_t)^gamma log p_t`` of logits [N, C, H, W] against int64 [N, H, W]
    class indices; ``p_t`` clamped to [eps, 1 - eps] as in the official ``FocalLoss``."""
    probability = F.softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    probability = probability.clamp(eps, 1.0 - eps)
    return (-(1.0 - probability) ** gamma * probability.log()).mean()


class SegmentationLoss(nn.Module):
    """Focal loss (gamma 2) of the segmentation of ``output`` against its own argmax.

    Args:
        pretrained: ImageNet ResNet-101 (the paper) or a seeded random one.

    ``forward(output)``: output [N, 3, H, W] float32 -> scalar; differentiable in ``output``.
    """

    def __init__(self, pretrained: bool, gamma: float = 2.0, seed: int = 0) -> None:
        super().__init__()
        self.segmenter = Segmenter(pretrained, seed=seed)
        self.gamma = gamma

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        logits = self.segmenter(output)
        target = logits.detach().argmax(dim=1)
        return focal_loss(logits, target, self.gamma)
