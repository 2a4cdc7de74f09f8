"""SAPNet's training loss (paper eq. 5; slides eq. 5)::

    L = l1 * L_ssim + l2 * L_seg + l3 * L_pcl + l4 * L_lpips,   l1 = 1, l2 = l3 = l4 = 0.1

Each weight can be set, and 0 switches its term off (its network is then not even built).

- ``L_ssim = -SSIM(output, target)``: Gaussian window 11, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 on
  [0, 1] images, mean over the map with zero padding (official ``Modeling/SSIM.py``).
- ``L_pcl``, perceptual contrastive (official ``loss_fun.py: ContrastLoss``): frozen VGG-16 features
  at relu1_2, relu2_2, relu3_3, relu4_3, weights 1/32, 1/16, 1/8, 1/4, and
  ``sum_i w_i L1(V_i(out), V_i(gt)) / (L1(V_i(out), V_i(rainy)) + 1e-7)``: pulled to the clean image,
  pushed from the rainy one. Inputs are ImageNet-normalised (the official code does not normalise).
- ``L_lpips``: LPIPS (AlexNet, v0.1) between output and target, on [-1, 1] inputs, mean over the
  batch, **with its gradient**. The official ``train.py: LpisLoss`` wraps the distance in ``float()``
  and rebuilds a tensor from it, so its LPIPS term is a constant with no gradient and never trained
  the network; that bug is not copied.
- ``L_seg``: :class:`training.segmentation.SegmentationLoss`, only on epochs after ``seg_after_epoch``
  (0-based ``epoch > 50``, the official condition).

One term is not in the paper: ``w * L1(output, target)`` (``--l1 w``, default 0, off). Trained with
``L_ssim`` alone, which is what remains offline when the ImageNet networks of the other terms cannot
be had, the network drifts in brightness: SSIM barely penalises a global offset (the toolkit's first
SSIM-only default weights darkened Rain100L by about 0.06, 15 levels, and scored below the rainy
input in Y-PSNR). A pixel L1 term pins the mean, as in the SSIM + L1 mix of Zhao et al., "Loss
functions for image restoration with neural networks" (IEEE TCI 2017).

The official ``train.py`` also scales the terms before the 0.1 (``4 * loss_C``, ``10 * LpisLoss``);
the defaults here are the paper's equation, and ``--pcl 0.4 --lpips 1.0`` reproduces the code's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .pretrained import imagenet_network, lpips_network
from .segmentation import SegmentationLoss, imagenet_normalize

#: Official epoch threshold of the segmentation term (``epoch > 50``, 0-based).
SEG_AFTER_EPOCH = 50


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian, float32 [size, size]."""
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of [N, C, H, W] images in [0, 1] (official ``_ssim``: per-channel Gaussian filtering
    with zero padding ``window // 2``; C1 = 0.01^2, C2 = 0.03^2). Returns a scalar tensor."""
    channels = a.shape[1]
    kernel = gaussian_window(window, sigma).to(a).expand(channels, 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, padding=window // 2, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean()


class PerceptualContrastiveLoss(nn.Module):
    """L_pcl (see the module docstring). ``forward(output, target, rainy)``, each [N, 3, H, W] in
    [0, 1] -> scalar.

    Raises:
        PretrainedUnavailable: ``pretrained`` and VGG-16's ImageNet weights cannot be had.
    """

    #: (end index in torchvision's ``vgg16().features``, weight): relu1_2, relu2_2, relu3_3, relu4_3.
    LAYERS = ((4, 1 / 32), (9, 1 / 16), (16, 1 / 8), (23, 1 / 4))

    def __init__(self, pretrained: bool, seed: int = 0) -> None:
        super().__init__()
        features = imagenet_network("vgg16", pretrained, seed).features
        self.slices = nn.ModuleList()
        start = 0
        for end, _ in self.LAYERS:
            self.slices.append(nn.Sequential(*[features[i] for i in range(start, end)]))
            start = end
        self.weights = [w for _, w in self.LAYERS]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """VGG-16 activations at the four layers for [N, 3, H, W] in [0, 1]."""
        out, h = [], imagenet_normalize(x)
        for block in self.slices:
            h = block(h)
            out.append(h)
        return out

    def forward(self, output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
        anchor = self.features(output)
        with torch.no_grad():
            positive, negative = self.features(target), self.features(rainy)
        loss = output.new_zeros(())
        for w, a, p, n in zip(self.weights, anchor, positive, negative):
            loss = loss + w * F.l1_loss(a, p) / (F.l1_loss(a, n) + 1e-7)
        return loss


class LPIPSLoss(nn.Module):
    """L_lpips: mean LPIPS distance, differentiable in ``output``. ``forward(output, target)`` with
    [N, 3, H, W] in [0, 1], H and W >= 32 (AlexNet's pooling) -> scalar.

    Raises:
        PretrainedUnavailable: ``pretrained`` and AlexNet's ImageNet weights cannot be had.
    """

    def __init__(self, pretrained: bool, seed: int = 0) -> None:
        super().__init__()
        self.net = lpips_network(pretrained, seed)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(output, target, normalize=True).mean()


@dataclass(frozen=True)
class LossWeights:
    """l1..l4 of eq. 5, and the pixel L1 term that is not in the paper (off by default); 0 switches a
    term off."""

    ssim: float = 1.0
    seg: float = 0.1
    pcl: float = 0.1
    lpips: float = 0.1
    l1: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Plain-type form, for logs and checkpoint metadata."""
        return asdict(self)


class SAPNetLoss(nn.Module):
    """The weighted sum of eq. 5.

    Args:
        weights: the term weights.
        pretrained: ImageNet weights for VGG-16, ResNet-101 and AlexNet (False: seeded random ones).
        seg_after_epoch: the segmentation term counts on 0-based epochs greater than this.

    ``forward(output, target, rainy, epoch)`` -> ``(total, terms)``: the scalar loss to minimise and
    the unweighted value of every active term (floats).

    Raises:
        PretrainedUnavailable: a pretrained network is needed and cannot be had.
        ValueError: a negative weight, or all weights 0.
    """

    def __init__(self, weights: LossWeights = LossWeights(), pretrained: bool = True,
                 seg_after_epoch: int = SEG_AFTER_EPOCH) -> None:
        super().__init__()
        values = weights.as_dict()
        if any(v < 0 for v in values.values()) or not any(values.values()):
            raise ValueError(f"loss weights must be >= 0 and not all 0, got {values}")
        self.weights, self.seg_after_epoch = weights, seg_after_epoch
        self.pcl = PerceptualContrastiveLoss(pretrained) if weights.pcl else None
        self.lpips = LPIPSLoss(pretrained) if weights.lpips else None
        self.seg = SegmentationLoss(pretrained) if weights.seg else None

    def active_terms(self, epoch: int) -> list[str]:
        """Names of the terms that count on 0-based ``epoch``."""
        names = [n for n, w in self.weights.as_dict().items() if w]
        return [n for n in names if n != "seg" or epoch > self.seg_after_epoch]

    def forward(self, output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor,
                epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        terms: dict[str, torch.Tensor] = {}
        active = self.active_terms(epoch)
        if "ssim" in active:
            terms["ssim"] = -ssim(output, target)
        if "pcl" in active:
            terms["pcl"] = self.pcl(output, target, rainy)
        if "lpips" in active:
            terms["lpips"] = self.lpips(output, target)
        if "seg" in active:
            terms["seg"] = self.seg(output)
        if "l1" in active:
            terms["l1"] = F.l1_loss(output, target)
        weights = self.weights.as_dict()
        total = sum(weights[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
