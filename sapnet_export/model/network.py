"""The SAPNet derain network (progressive dilated units, PReNet-style recurrence).

Source: Zheng, Lu, Wu, Gupta, "SAPNet: Segmentation-Aware Progressive Network for Perceptual
Contrastive Deraining", WACV 2022, and the official code, ``Modeling/network.py`` on branch ``main`` of
github.com/ShenZheng2000/SAPNet-for-image-deraining (class ``SAPNet`` with ``use_dilation=True``,
``use_DSC=False``, ``use_split=False``). Module and parameter names follow the official code so that its
checkpoints load with ``strict=True``; ``docs/design.md`` section 2 describes the same network.

Only the deployable derain network is here. The segmentation and perceptual networks used by the
training losses live in ``training/``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: Dilation of the five residual blocks of the published checkpoint (official ``use_dilation=True``).
OFFICIAL_DILATIONS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Recurrent stages of the published checkpoint (official ``recurrent_iter=6``).
OFFICIAL_STAGES = 6
#: Feature channels of the recurrent state and of every residual block.
FEATURES = 32


class CRALayer(nn.Module):
    """Channel residual attention (official ``CRALayer``).

    ``x * sigmoid(conv_du(gap(x)) + conv_1_1(gap(x)))`` where ``gap`` is the global average pool,
    ``conv_du`` is ``Conv C->C/r 1x1, ReLU, Conv C/r->C 1x1`` and ``conv_1_1`` is ``Conv C->C 1x1``,
    all without bias.

    Args:
        channels: C, the channel count of the input.
        reduction: r, the squeeze ratio of ``conv_du`` (16 in SAPNet, so 32 -> 2 -> 32).

    Shapes: float32 [N, C, H, W] in, the same shape out.
    """

    def __init__(self, channels: int = FEATURES, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=False),
        )
        self.conv_1_1 = nn.Conv2d(channels, channels, 1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Scale each channel of ``x`` [N, C, H, W] by its attention weight in (0, 1).

        ``pool_weights`` (float32 [N, 1, H, W], None for the official behaviour): the batch is the tiles
        of one frame, and the pooled value is ``sum over N, H, W of x * pool_weights``, shared by every
        tile, instead of each sample's own average. With weights that sum to 1 over the frame (each
        pixel's share of the tile blend divided by the frame's pixel count, see
        :meth:`sapnet_export.model.tiling.TileLayout.pool_weights`) this is the frame's global average, up to
        the tiles' border error.
        """
        if pool_weights is None:
            y = self.avg_pool(x)
        else:
            y = (x * pool_weights).sum(dim=(0, 2, 3), keepdim=True)
        # The official code adds conv_1_1 to conv_du in this order; float addition commutes exactly.
        y = self.conv_du(y) + self.conv_1_1(y)
        return x * self.sigmoid(y)


class ResidualBlock(nn.Sequential):
    """One progressive dilated unit: ``Conv 3x3, CRA, ReLU, Conv 3x3, CRA, ReLU`` at ``dilation``.

    Padding equals the dilation, so H and W are kept (official ``res_convK``, an ``nn.Sequential``:
    this subclass keeps its parameter names, ``res_conv1.0.weight`` ...). Shapes: float32 [N, 32, H, W]
    in and out.
    """

    def __init__(self, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(FEATURES, FEATURES, 3, 1, padding=dilation, dilation=dilation),
            CRALayer(FEATURES, 16),
            nn.ReLU(),
            nn.Conv2d(FEATURES, FEATURES, 3, 1, padding=dilation, dilation=dilation),
            CRALayer(FEATURES, 16),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Run the layers in order, handing ``pool_weights`` (see :meth:`CRALayer.forward`) to the CRA
        layers. Called as a module either way, so an exported graph keeps the node scopes
        (``/model/res_conv3/...``) that the quantization groups are read from."""
        for layer in self:
            x = layer(x, pool_weights) if isinstance(layer, CRALayer) else layer(x)
        return x


class SAPNet(nn.Module):
    """SAPNet's derain network: ``stages`` recurrent stages sharing one set of weights.

    Each stage: ``x = conv0(cat(input, x))`` (Conv 6->32 3x3, ReLU); a conv-LSTM on ``cat(x, h)``
    (gates ``conv_i``, ``conv_f``, ``conv_o`` with Sigmoid and ``conv_g`` with Tanh, each Conv 64->32 3x3;
    ``c = f*c + i*g``, ``h = o*tanh(c)``); five residual blocks ``res_conv1..5`` with dilations
    ``dilations``, each ``x = relu(block(x) + x)``; then ``x = conv(x) + input`` (Conv 32->3 3x3).
    ``h`` and ``c`` start at zero.

    Args:
        stages: recurrent stages the weights were trained for (6 in the published checkpoint); the
            default number that :meth:`forward` runs.
        dilations: dilation (and padding) of the five residual blocks; ``(1, 2, 4, 8, 16)`` in the
            published checkpoint, ``(1, 1, 1, 1, 1)`` for the official ``use_dilation=False``.

    Raises:
        ValueError: ``stages`` < 1 or ``dilations`` not five positive integers.
    """

    def __init__(self, stages: int = OFFICIAL_STAGES,
                 dilations: Sequence[int] = OFFICIAL_DILATIONS) -> None:
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        if len(dilations) != 5 or any(d < 1 for d in dilations):
            raise ValueError(f"dilations must be five positive integers, got {dilations}")
        self.stages = int(stages)
        self.dilations = dilations
        self.conv0 = nn.Sequential(nn.Conv2d(6, FEATURES, 3, 1, 1), nn.ReLU())
        self.res_conv1 = ResidualBlock(dilations[0])
        self.res_conv2 = ResidualBlock(dilations[1])
        self.res_conv3 = ResidualBlock(dilations[2])
        self.res_conv4 = ResidualBlock(dilations[3])
        self.res_conv5 = ResidualBlock(dilations[4])
        self.conv_i = nn.Sequential(nn.Conv2d(2 * FEATURES, FEATURES, 3, 1, 1), nn.Sigmoid())
        self.conv_f = nn.Sequential(nn.Conv2d(2 * FEATURES, FEATURES, 3, 1, 1), nn.Sigmoid())
        self.conv_g = nn.Sequential(nn.Conv2d(2 * FEATURES, FEATURES, 3, 1, 1), nn.Tanh())
        self.conv_o = nn.Sequential(nn.Conv2d(2 * FEATURES, FEATURES, 3, 1, 1), nn.Sigmoid())
        self.conv = nn.Sequential(nn.Conv2d(FEATURES, 3, 3, 1, 1))

    def resolve_stages(self, stages: int | None) -> int:
        """Return ``stages``, or the trained count when None; ValueError outside 1..``self.stages``."""
        if stages is None:
            return self.stages
        if not 1 <= int(stages) <= self.stages:
            raise ValueError(f"stages must be in 1..{self.stages} for this model, got {stages}")
        return int(stages)

    def forward_stages(self, rainy: torch.Tensor, stages: int | None = None,
                       pool_weights: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Run the network and return every stage's output.

        Args:
            rainy: float32 [N, 3, H, W], RGB in [0, 1]; any N, H, W >= 1.
            stages: how many stages to run (1..``self.stages``); None runs all (early exit trades
                quality for speed: each stage costs the same).
            pool_weights: None (official), or float32 [N, 1, H, W] when ``rainy`` holds the tiles of
                one frame: every channel attention then pools over all tiles with these weights
                (:meth:`CRALayer.forward`), so tiles see the frame's statistics, not their own.

        Returns:
            ``stages`` tensors, each float32 [N, 3, H, W], not clipped (values may leave [0, 1]).
        """
        stages = self.resolve_stages(stages)
        x = rainy
        h = c = None
        outputs = []
        for _ in range(stages):
            x = self.conv0(torch.cat((rainy, x), 1))
            if h is None:
                # Zero state shaped like the features, so N, H and W stay symbolic in an export.
                h = torch.zeros_like(x)
                c = torch.zeros_like(x)
            x = torch.cat((x, h), 1)
            i = self.conv_i(x)
            f = self.conv_f(x)
            g = self.conv_g(x)
            o = self.conv_o(x)
            c = f * c + i * g
            h = o * torch.tanh(c)
            x = h
            for block in (self.res_conv1, self.res_conv2, self.res_conv3, self.res_conv4, self.res_conv5):
                x = F.relu(block(x, pool_weights) + x)
            x = self.conv(x) + rainy
            outputs.append(x)
        return outputs

    def forward(self, rainy: torch.Tensor, stages: int | None = None,
                pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Derain ``rainy`` float32 [N, 3, H, W] in [0, 1]; return the last stage, float32 [N, 3, H, W].

        The output is not clipped; clip to [0, 1] before saving (as the official ``test.py`` does).
        ``pool_weights``: see :meth:`forward_stages`.
        """
        return self.forward_stages(rainy, stages, pool_weights)[-1]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (180,483 for the published checkpoint)."""
    return sum(p.numel() for p in model.parameters())
