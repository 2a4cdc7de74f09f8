"""Fake quantization of SAPNet as the ``tensorrt`` QDQ profile's int8 graph computes it, put into the
network in place and taken out again (for :mod:`training.qat`).

Weights: int8 symmetric per output channel, scale ``max|w| / 127`` of the current weights (what ONNX
Runtime's quantizer computes at export). Activations: every Conv input (the profile leaves Conv
outputs float; :mod:`sapnet_export.export.int8.quantize`), int8 symmetric per tensor, one range per
tensor **and stage**. The fake-quantize modules are PyTorch's own
(``torch.ao.quantization.FakeQuantize``; forward: quantize and dequantize, rounding half to even;
backward: the straight-through estimator). Weights get theirs through ``torch.nn.utils.parametrize``,
Conv inputs through forward pre-hooks, so the network's code
(``sapnet_export/model/network.py``) is untouched.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MinMaxObserver, MovingAveragePerChannelMinMaxObserver
from torch.nn.utils import parametrize

from sapnet_export.errors import InputError
from sapnet_export.export.int8.qat_ranges import QAT_PROFILE, QatRange, QatRanges
from sapnet_export.model.network import SAPNet

#: Symmetric int8 as ONNX Runtime and TensorRT use it: [-127, 127] (no -128).
_QMIN, _QMAX = -127, 127


def _activation_fq() -> FakeQuantize:
    return FakeQuantize(observer=MinMaxObserver, quant_min=_QMIN, quant_max=_QMAX, dtype=torch.qint8,
                        qscheme=torch.per_tensor_symmetric)


class _WeightFakeQuant(nn.Module):
    """Parametrization of a Conv weight: per-output-channel symmetric int8 fake quantization with the
    current weights' max-abs (averaging constant 1: the observer forgets earlier steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
                               quant_min=_QMIN, quant_max=_QMAX, dtype=torch.qint8,
                               qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.fq(weight)


class FakeQuantizedSAPNet:
    """Puts fake quantization into ``model`` in place (module docstring) and takes it out again.

    Conv inputs are found on a first forward (:meth:`discover`): Convs that read the same
    tensor in one stage share one quantizer, as they share one QuantizeLinear in the exported graph.

    Args:
        model: the network to fine-tune (its Conv2d modules get parametrized weights and hooks).
        stages: the stages every forward runs.
    """

    def __init__(self, model: SAPNet, stages: int) -> None:
        self.model, self.stages = model, stages
        self.convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
        self.activations = nn.ModuleDict()
        self._owners: dict[str, tuple[list[str], int]] = {}  # key -> (convs, stage)
        self._assign: dict[tuple[str, int], str] = {}
        self._calls = dict.fromkeys(self.convs, 0)
        self._seen: dict[int, tuple[str, torch.Tensor]] | None = None
        self._handles = [model.register_forward_pre_hook(self._reset)]
        for name, conv in self.convs.items():
            parametrize.register_parametrization(conv, "weight", _WeightFakeQuant().to(conv.weight.device))
            self._handles.append(conv.register_forward_pre_hook(partial(self._quantize_input, name)))

    def _reset(self, module: nn.Module, args: tuple) -> None:
        self._calls = dict.fromkeys(self.convs, 0)

    def _quantizer(self, key: str, convs: list[str], stage: int, like: torch.Tensor) -> None:
        if key not in self.activations:
            self.activations[key] = _activation_fq().to(like.device)
            self._owners[key] = (convs, stage)

    def _quantize_input(self, name: str, module: nn.Module, args: tuple) -> tuple:
        stage = self._calls[name]
        self._calls[name] = stage + 1
        x = args[0]
        key = self._assign.get((name, stage))
        if key is None:
            if self._seen is None:
                raise RuntimeError(f"Conv {name} at stage {stage + 1} was not seen by discover()")
            key, _ = self._seen.setdefault(id(x), (f"{name.replace('.', '_')}__stage{stage}", x))
            self._quantizer(key, [], stage, x)
            self._owners[key][0].append(name)
            self._assign[(name, stage)] = key
        return (self.activations[key](x), *args[1:])

    def _fake_quant(self, on: bool) -> None:
        for fq in self._all():
            fq.enable_fake_quant(on)

    def _all(self) -> list[FakeQuantize]:
        return [*self.activations.values(),
                *(conv.parametrizations.weight[0].fq for conv in self.convs.values())]

    @torch.no_grad()
    def discover(self, frame: torch.Tensor) -> None:
        """Run ``frame`` float32 [1, 3, H, W] in [0, 1] once to find every Conv input of every
        stage (the tensors are held until the pass ends, so no address is reused)."""
        self._seen = {}
        try:
            self.model(frame, stages=self.stages)
        finally:
            self._seen = None

    @torch.no_grad()
    def observe_ranges(self, frames: torch.Tensor) -> None:
        """Min/max of every Conv input over ``frames`` float32 [N, 3, H, W] (one at a time), with every
        fake quantization off; then the activation ranges are frozen and fake quantization is on."""
        self._fake_quant(False)
        for fq in self.activations.values():
            fq.enable_observer(True)
        for frame in frames:
            self.model(frame[None], stages=self.stages)
        for fq in self.activations.values():
            fq.enable_observer(False)
        self._fake_quant(True)

    def set_ranges(self, ranges: QatRanges) -> None:
        """Fix every Conv input's range to ``ranges`` (as learned; after :meth:`discover`) with fake
        quantization on: the network then computes what its int8 export computes.

        Raises:
            InputError: a discovered Conv input has no range in ``ranges``.
        """
        learned = ranges.by_conv()
        for key, fq in self.activations.items():
            convs, stage = self._owners[key]
            absmax = learned.get((convs[0], stage, False))
            if absmax is None:
                raise InputError(f"no learned range for the input of Conv {convs[0]} at stage {stage + 1}")
            fq.enable_observer(False)
            fq.scale = torch.tensor([absmax / _QMAX], device=fq.scale.device)
            fq.zero_point = torch.zeros(1, dtype=torch.int32, device=fq.zero_point.device)
        self._fake_quant(True)

    def ranges(self) -> QatRanges:
        """The frozen ranges (absmax = scale x 127)."""
        out = []
        for key, fq in self.activations.items():
            convs, stage = self._owners[key]
            out.append(QatRange(tuple(convs), stage, float(fq.scale.item()) * _QMAX, False))
        return QatRanges(QAT_PROFILE, self.stages, tuple(out))

    def remove(self) -> None:
        """Take the fake quantization out: plain fp32 weights (the latent ones, not their quantized
        values) and no hooks."""
        for handle in self._handles:
            handle.remove()
        for conv in self.convs.values():
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)
