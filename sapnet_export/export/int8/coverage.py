"""Calibration coverage: do the activation ranges of held-out frames stay inside the calibrated ones?

INT8 clips every value outside its tensor's calibrated range. When the deployment sees brighter or
denser rain than the calibration frames, some activations leave that range, are clipped, and the
error of stage k feeds stage k+1 (the network is unrolled, one weight set shared by six stages, but
every stage's tensors have their own ranges). This module measures it:

- :func:`observed_ranges` runs the fp32 graph over frames with ONNX Runtime, recording the minimum
  and maximum of the calibrated tensors (ONNX Runtime's ``MinMaxCalibrater``: a ReduceMin/ReduceMax
  pair per tensor, one frame at a time, so memory stays one frame's);
- :func:`read_calibration_ranges` reads the ranges a quantization used (its calibration cache);
- :func:`compare_ranges` gives, per tensor, how far the held-out values go beyond the calibrated range,
  as a share of that range's width (``excess``; 0 when inside), with the tensor's group and stage.

``excess`` > ``margin`` (default :data:`DEFAULT_MARGIN`, 0.25: a quarter of the range) is a warning:
the frames hold activations the calibration did not cover. The idea is Polygraphy's and TensorRT's
advice to calibrate on data representative of deployment, checked per tensor on the user's frames.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.model.onnx_meta import POOL_WEIGHTS_NAME
from .quantize import _FramesReader, _quiet_ort_quantizer, node_groups

#: Held-out activations beyond the calibrated range by more than this share of its width warn.
DEFAULT_MARGIN = 0.25


@dataclass(frozen=True)
class TensorCoverage:
    """One calibrated tensor: its name, the node group and stage (1-based) of its producer, the
    calibrated range (``calib_low``, ``calib_high``), the held-out one, and ``excess``: how far the
    held-out values go beyond the calibrated range, as a share of its width (0: covered)."""

    name: str
    group: str
    stage: int
    calib_low: float
    calib_high: float
    low: float
    high: float
    excess: float


@dataclass(frozen=True)
class Coverage:
    """The comparison of :func:`compare_ranges`: every compared tensor (worst first), the margin, and
    the frames it was measured on (``frames``: a count; ``source``: what they were, for reports)."""

    tensors: list[TensorCoverage]
    margin: float
    frames: int
    source: str

    @property
    def exceeding(self) -> list[TensorCoverage]:
        """Tensors whose ``excess`` is above the margin, worst first."""
        return [t for t in self.tensors if t.excess > self.margin]

    def by_stage(self) -> dict[int, float]:
        """Largest ``excess`` per stage."""
        stages: dict[int, float] = {}
        for t in self.tensors:
            stages[t.stage] = max(stages.get(t.stage, 0.0), t.excess)
        return dict(sorted(stages.items()))

    def warning(self) -> str | None:
        """One line for the user when tensors exceed the margin, else None."""
        bad = self.exceeding
        if not bad:
            return None
        worst = bad[0]
        return (f"{len(bad)} of {len(self.tensors)} calibrated tensors exceed their calibration range by "
                f"more than {100 * self.margin:.0f} % on {self.source} (worst: {worst.name}, "
                f"{worst.group} stage {worst.stage}: [{worst.low:.3g}, {worst.high:.3g}] vs calibrated "
                f"[{worst.calib_low:.3g}, {worst.calib_high:.3g}], {100 * worst.excess:.0f} % beyond): "
                "these frames hold rain or light the calibration did not; add such frames "
                "(calib build --clean ... --synthetic-rain heavy|mixed)")

    def as_dict(self, top: int = 10) -> dict:
        """JSON-ready summary: margin, counts, the largest excess per stage and the ``top`` worst."""
        return {"source": self.source, "frames": self.frames, "margin": self.margin,
                "tensors": len(self.tensors), "exceeding": len(self.exceeding),
                "max_excess": self.tensors[0].excess if self.tensors else 0.0,
                "max_excess_by_stage": {str(k): v for k, v in self.by_stage().items()},
                "worst": [t.__dict__ for t in self.tensors[:top]],
                "warning": self.warning()}


def node_stages(model: onnx.ModelProto) -> dict[str, int]:
    """Stage (1-based) of every node of an exported graph: each stage begins with the ``conv0`` Conv
    (the exporter writes nodes in topological order, stage after stage)."""
    groups = node_groups(model)
    stages, stage = {}, 0
    for node in model.graph.node:
        if node.op_type == "Conv" and groups.get(node.name) == "conv0":
            stage += 1
        stages[node.name] = max(stage, 1)
    return stages


def observed_ranges(fp32_path: str | os.PathLike, frames: Iterable[np.ndarray],
                    tensors: Sequence[str] | None = None,
                    op_types: Sequence[str] | None = None) -> dict[str, tuple[float, float]]:
    """Minimum and maximum of tensors of the fp32 graph over ``frames``.

    Args:
        fp32_path: the fp32 ONNX (the graph a quantization started from).
        frames: float32 [1, 3, H, W] or [3, H, W] arrays in [0, 1]; sizes may differ between frames.
        tensors: names to keep (e.g. those of a calibration cache); None keeps every one measured.
        op_types: op types whose input tensors are measured (as ``quantize_static``'s
            ``op_types_to_quantize``); None measures every float tensor.

    Returns:
        ``{tensor name: (min, max)}``.

    Source: ``onnxruntime.quantization.calibrate.MinMaxCalibrater`` (ONNX Runtime 1.31).
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    with tempfile.TemporaryDirectory(prefix="sapnet-coverage-") as tmp, _quiet_ort_quantizer():
        calibrator = create_calibrator(Path(fp32_path), list(op_types) if op_types else None,
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax,
                                       providers=["CPUExecutionProvider"])
        shared = POOL_WEIGHTS_NAME in {i.name for i in onnx.load(str(fp32_path)).graph.input}
        count = 0
        for frame in frames:  # one frame at a time: sizes may differ, memory stays one frame's
            frame = np.asarray(frame, np.float32)
            calibrator.collect_data(_FramesReader(frame[None] if frame.ndim == 3 else frame, shared))
            count += 1
        if count == 0:
            raise ValueError("no frames to measure activation ranges on")
        data = calibrator.compute_data()
    keep = set(tensors) if tensors is not None else None
    return {name: (float(np.min(d.range_value[0])), float(np.max(d.range_value[1])))
            for name, d in data.data.items() if keep is None or name in keep}


def read_calibration_ranges(cache_path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """The ranges stored in an ONNX Runtime calibration cache (``quantize_static``'s
    ``calibration_cache_path``): ``{tensor name: (low, high)}``."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(Path(cache_path))
    return {name: (float(np.min(d.range_value[0])), float(np.max(d.range_value[1])))
            for name, d in data.data.items()}


def compare_ranges(model: onnx.ModelProto, calibrated: dict[str, tuple[float, float]],
                   observed: dict[str, tuple[float, float]], *, frames: int, source: str,
                   symmetric: bool, margin: float = DEFAULT_MARGIN) -> Coverage:
    """Compare ``observed`` ranges with ``calibrated`` ones, tensor by tensor (both from the graph
    ``model``; tensors in only one of them are skipped). Graph inputs (the image) are left out: [0, 1]
    by construction.

    The calibrated range is the one the quantizer represents: it always holds 0, and with
    ``symmetric`` (the ``tensorrt`` profile: zero point 0) it is [-m, m] with m the larger magnitude
    (ONNX Runtime's ``compute_scale_zp``).

    Raises:
        ValueError: ``margin`` is negative.
    """
    if margin < 0:
        raise ValueError(f"coverage margin {margin} is negative")
    groups, stages = node_groups(model), node_stages(model)
    producer = {out: node.name for node in model.graph.node for out in node.output}
    rows = []
    for name, (calib_low, calib_high) in calibrated.items():
        if name not in observed or name not in producer:
            continue
        low, high = observed[name]
        calib_low, calib_high = min(calib_low, 0.0), max(calib_high, 0.0)
        if symmetric:
            calib_high = max(abs(calib_low), abs(calib_high))
            calib_low = -calib_high
        width = max(calib_high - calib_low, 1e-12)
        excess = max(0.0, high - calib_high, calib_low - low) / width
        node = producer[name]
        rows.append(TensorCoverage(name, groups.get(node, "?"), stages.get(node, 1), calib_low, calib_high,
                                   low, high, float(excess)))
    rows.sort(key=lambda t: -t.excess)
    return Coverage(tensors=rows, margin=margin, frames=frames, source=source)
