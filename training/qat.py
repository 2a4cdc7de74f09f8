"""Quantization-aware fine-tuning (QAT) of SAPNet for the ``tensorrt`` QDQ profile, with the fp32 model
as distillation teacher (the ``sapnet-train qat`` command).

The fake quantization is the int8 export's (:mod:`training.fake_quant`). The recipe
(:func:`qat_finetune`):

1. the activation ranges are observed with every fake quantization off, min/max over the given
   frames at full size (the calibration method ``minmax``), then frozen;
2. the weights are fine-tuned with fake quantization on: Adam, random crops with flips of the frames,
   loss L1 between the student's output and the fp32 teacher's (the checkpoint as loaded), no ground
   truth needed, so real rain without clean frames can be used;
3. the fake quantization is removed; the fp32 weights (not their quantized values) and the frozen
   ranges (:class:`~sapnet_export.export.int8.qat_ranges.QatRanges`) are what the checkpoint holds
   (:func:`save_qat_checkpoint`). ``sapnet-export onnx --precision int8`` with such a checkpoint
   quantizes with those ranges.

Sources: Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018 (fake quantization, straight-through estimator); Hinton et al., "Distilling the
Knowledge in a Neural Network", 2015 (teacher outputs as targets); NVIDIA's "Achieving FP32 Accuracy for
INT8 Inference Using Quantization Aware Training with TensorRT" (QAT then explicit QDQ export, fine-tuning
for a small share of the original schedule at a low learning rate).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.export.int8.qat_ranges import QatRanges
from sapnet_export.model.checkpoints import WeightsInfo, save_checkpoint
from sapnet_export.model.network import SAPNet
from sapnet_export.provenance import stamp

from .fake_quant import FakeQuantizedSAPNet


class QatDiverged(CheckFailed):
    """The distillation loss became NaN or infinite (exit 1; the message names the step)."""


@dataclass(frozen=True)
class QatConfig:
    """The fine-tuning recipe. The defaults are the measured run a of docs/measurements.md
    (*Quantization-aware fine-tuning*).

    Attributes:
        steps: optimizer steps.
        batch_size: crops per step.
        patch: crop side in pixels (at most the frames' height and width).
        lr: Adam's learning rate (constant; a small share of the training rate, 1e-3).
        stages: stages to run (None: the checkpoint's); the ranges cover these stages.
        seed: seeds the crops, flips and torch.
    """

    steps: int = 200
    batch_size: int = 4
    patch: int = 128
    lr: float = 5e-5
    stages: int | None = None
    seed: int = 0

    def as_dict(self) -> dict:
        """Plain-type form for checkpoint metadata."""
        return {"steps": self.steps, "batch_size": self.batch_size, "patch": self.patch, "lr": self.lr,
                "stages": self.stages, "seed": self.seed}


@dataclass
class QatResult:
    """What :func:`qat_finetune` did: the fine-tuned network (fp32, no fake quantization), its learned
    ranges, the loss of every step (mean absolute error against the teacher, in [0, 1] pixel units)
    and the seconds it took."""

    model: SAPNet
    ranges: QatRanges
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def loss_start(self) -> float:
        """Mean loss of the first 10 steps (NaN with no steps)."""
        return float(np.mean(self.losses[:10])) if self.losses else float("nan")

    @property
    def loss_end(self) -> float:
        """Mean loss of the last 10 steps (NaN with no steps)."""
        return float(np.mean(self.losses[-10:])) if self.losses else float("nan")


def _crops(frames: torch.Tensor, size: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` random crops [count, 3, size, size] of ``frames``, each flipped left-right at random."""
    n, _, h, w = frames.shape
    out = []
    for _ in range(count):
        i, y, x = int(rng.integers(n)), int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        crop = frames[i, :, y:y + size, x:x + size]
        out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
    return torch.stack(out)


def check_config(config: QatConfig, frames_shape: tuple[int, ...], model: SAPNet) -> int:
    """The stage count the fine-tuning runs.

    Raises:
        InputError: the crop is larger than the frames, or the stages are outside the model's.
    """
    if config.patch > min(frames_shape[2:]):
        raise InputError(f"--patch {config.patch}: larger than the frames ({frames_shape[2]}x"
                         f"{frames_shape[3]})")
    try:
        return model.resolve_stages(config.stages)
    except ValueError as exc:
        raise InputError(f"--stages {config.stages}: {exc}") from None


def qat_finetune(model: SAPNet, frames: np.ndarray, config: QatConfig, device: torch.device,
                 on_step: Callable[[int, int, float], None] | None = None,
                 range_frames: np.ndarray | None = None) -> QatResult:
    """Fine-tune a copy of ``model`` for int8 (module docstring); ``model`` is the teacher and is not
    changed.

    Args:
        frames: float32 [N, 3, H, W], RGB in [0, 1] (a calibration set's frames): the range
            observation runs on them whole, the fine-tuning on crops of them.
        on_step: called with (step, steps, loss) after each step.
        range_frames: float32 [M, 3, H', W'] in [0, 1], the frames the ranges are observed on instead
            of ``frames`` (None: ``frames``).

    Raises:
        InputError: see :func:`check_config`.
        QatDiverged: the loss became NaN or infinite.
    """
    started = time.perf_counter()
    stages = check_config(config, frames.shape, model)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    teacher = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    student = copy.deepcopy(model).to(device).eval()
    data = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(device)
    quant = FakeQuantizedSAPNet(student, stages)
    quant.discover(data[:1, :, :config.patch, :config.patch])
    quant.observe_ranges(data if range_frames is None else torch.from_numpy(
        np.ascontiguousarray(range_frames, dtype=np.float32)).to(device))
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    losses: list[float] = []
    for step in range(config.steps):
        batch = _crops(data, config.patch, config.batch_size, rng)
        with torch.no_grad():
            target = teacher(batch, stages=stages)
        loss = F.l1_loss(student(batch, stages=stages), target)
        if not math.isfinite(loss.item()):
            raise QatDiverged(f"QAT diverged at step {step + 1}: loss {loss.item()}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, config.steps, losses[-1])
    ranges = quant.ranges()
    quant.remove()
    return QatResult(student.cpu(), ranges, losses, time.perf_counter() - started)


@dataclass(frozen=True)
class QatFrames:
    """The frames of one or more calibration sets, float32 [N, 3, H, W] in [0, 1], and each set's
    ``{"path", "frames_sha256", "count"}``."""

    frames: np.ndarray
    sets: list[dict]


def load_qat_frames(paths: Sequence[str | os.PathLike], option: str = "--calib") -> QatFrames:
    """Load and join calibration sets (:func:`~sapnet_export.export.int8.calibration.load_calibration`).

    Raises:
        InputError: no set, a set that does not load, sets of different frame sizes (the messages
            name ``option``).
    """
    from sapnet_export.export.int8.calibration import load_calibration

    if not paths:
        raise InputError(f"{option}: give at least one calibration set")
    loaded = [load_calibration(path) for path in paths]
    sizes = {tuple(c.frames.shape[2:]) for c in loaded}
    if len(sizes) > 1:
        raise InputError(f"{option}: the sets have different frame sizes ("
                         + ", ".join(f"{c.path}: {c.frames.shape[2]}x{c.frames.shape[3]}" for c in loaded)
                         + "); build them at one --size")
    return QatFrames(np.concatenate([c.frames for c in loaded]),
                     [{"path": str(c.path), "frames_sha256": c.sha256, "count": int(c.frames.shape[0])}
                      for c in loaded])


def save_qat_checkpoint(result: QatResult, output: str | os.PathLike, config: QatConfig,
                        teacher: WeightsInfo, data: QatFrames, device: torch.device,
                        ranges_from: QatFrames | None = None) -> Path:
    """Write the fine-tuned weights with their ranges (metadata ``qat``) and the run's record (metadata
    ``training``: recipe, teacher, calibration sets (of the crops, and of the ranges), device, seconds,
    mean loss of the first and last 10 steps; docs/formats.md, *Checkpoint*) atomically, and return
    the path."""
    return save_checkpoint(
        result.model, output, provenance=stamp(), qat=result.ranges.as_dict(),
        training={"method": "qat", "recipe": config.as_dict(),
                  "teacher": {"name": teacher.name, "sha256": teacher.sha256},
                  "calibration": data.sets,
                  "ranges_from": (ranges_from or data).sets,
                  "device": str(device), "seconds": result.seconds,
                  "loss_first10": result.loss_start, "loss_last10": result.loss_end})
