"""INT8 conversion with a fidelity budget: per-group sensitivity and the mixed-precision search.

One :class:`Int8Session` calibrates once (the ranges are cached in its work folder; NNCF, the
``openvino`` profile, calibrates per variant) and can then quantize any subset of the network's groups
(:data:`sapnet_export.export.int8.quantize.GROUPS`) and measure the result on held-out images with the
profile's Runner on the CPU (ONNX Runtime; OpenVINO for ``openvino``), against the PyTorch fp32 references.

- :func:`group_sensitivity` quantizes one group at a time, everything else float, and ranks the groups
  by the fidelity they cost (lowest PSNR first);
- :func:`meet_budget` starts from full INT8 and keeps the most harmful groups in float, one at a time
  in sensitivity order, until the minimum PSNR over the held-out images reaches the budget.

The idea is the one of TensorRT Model Optimizer's AutoQuantize and Polygraphy's ``debug precision``,
measured here in image terms (PSNR of the derained output) rather than by a task loss.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.measure.evaluation import HeldOutImage, ImageResult, evaluate, summarize
from sapnet_export.model.onnx_meta import pooling_nodes
from .coverage import DEFAULT_MARGIN, Coverage, compare_ranges, observed_ranges, read_calibration_ranges
from .groups import attention_nodes
from .qat_ranges import write_ort_cache
from .quantize import (DEFAULT_CALIB_METHOD, GROUPS, QDQ_PROFILES, conv_macs, int8_conv_nodes, node_groups,
                       profile_runner, quantize_int8)


@dataclass
class Trial:
    """One quantized variant measured on the held-out images.

    Attributes:
        float_groups: groups in float: those ``--keep-fp32`` (or the profile's default) keeps whole,
            which are float in every trial, and the quantizable groups this trial leaves float.
        int8_groups: groups quantized (for a sensitivity trial: the one group).
        int8_mac_share: share (0..1) of the network's Conv MACs running in int8.
        results: per-image fidelity (and quality) against the fp32 reference.
        path: the quantized ONNX (in the session's work folder).
    """

    float_groups: tuple[str, ...]
    int8_groups: tuple[str, ...]
    int8_mac_share: float
    results: list[ImageResult]
    path: Path

    @property
    def min_psnr_db(self) -> float:
        """Lowest fidelity PSNR (dB) over the held-out images (NaN when there were none)."""
        return min((r.fidelity.psnr_db for r in self.results), default=float("nan"))

    @property
    def mean_psnr_db(self) -> float:
        """Mean fidelity PSNR (dB) over the held-out images (NaN when there were none)."""
        fidelity = summarize(self.results)["fidelity"]
        return fidelity["psnr_mean_db"] if fidelity else float("nan")


@dataclass
class Int8Session:
    """Calibrate once, then quantize and measure variants.

    Args:
        fp32: the fp32 export (its node names define the groups).
        frames: calibration frames, float32 [N, 3, H, W] in [0, 1].
        held_out: held-out images with their references (:func:`~sapnet_export.measure.evaluation.prepare_held_out`).
        profile, calib_method: see :func:`~sapnet_export.export.int8.quantize.quantize_int8`.
        keep_fp32: node names always kept in float (``--keep-fp32``); the pooling nodes of a
            shared-pooling graph (:func:`~sapnet_export.model.onnx_meta.pooling_nodes`) always are too,
            and the CRA attention paths for a profile with ``float_attention`` (``cpu``).
        workdir: folder for the intermediate graphs and the calibration cache (a temporary one if None).
        on_trial: called after each measured variant.
        ranges: ``{tensor: (low, high)}`` to quantize with instead of calibrating (the ranges a
            quantization-aware fine-tuning learned, :func:`~sapnet_export.export.int8.qat_ranges.graph_ranges`);
            they become the calibration cache, ``frames`` are then not run and ``calib_method`` is
            ``minmax`` (the cache's method).
    """

    fp32: onnx.ModelProto
    frames: np.ndarray
    held_out: Sequence[HeldOutImage]
    profile: str = "tensorrt"
    calib_method: str = DEFAULT_CALIB_METHOD
    keep_fp32: Sequence[str] = ()
    workdir: Path | None = None
    on_trial: Callable[[Trial], None] | None = None
    ranges: dict[str, tuple[float, float]] | None = None
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sapnet-int8-")
            self.workdir = Path(self._tmp.name)
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fp32_path = self.workdir / "fp32.onnx"
        onnx.save(self.fp32, str(self.fp32_path))
        if self.ranges is not None:
            self.calib_method = "minmax"
        self.cache_path = self.workdir / f"calibration-{self.profile}-{self.calib_method}.json"
        if self.ranges is not None:
            write_ort_cache(self.ranges, self.cache_path)
        self.groups = node_groups(self.fp32)
        always = pooling_nodes(self.fp32)
        if QDQ_PROFILES[self.profile].float_attention:
            always += attention_nodes(self.fp32)
        self.keep_fp32 = (*self.keep_fp32, *(n for n in always if n not in self.keep_fp32))
        height, width = (self.held_out[0].image.shape[2:] if self.held_out else (64, 64))
        self.macs = conv_macs(self.fp32, int(height), int(width))
        quantizable = set(QDQ_PROFILES[self.profile].op_types)
        keep = set(self.keep_fp32)
        candidates = {g: [n.name for n in self.fp32.graph.node
                          if self.groups[n.name] == g and n.op_type in quantizable] for g in GROUPS}
        #: groups with a quantizable node that ``keep_fp32`` leaves to quantize; the others are float in
        #: every trial (:attr:`kept_groups`)
        self.quantizable_groups = tuple(g for g, names in candidates.items() if set(names) - keep)
        self.kept_groups = tuple(g for g, names in candidates.items() if names and not set(names) - keep)

    def close(self) -> None:
        """Remove the temporary work folder (if the session made it)."""
        if self._tmp is not None:
            self._tmp.cleanup()

    def quantize(self, int8_groups: Sequence[str]) -> tuple[Path, onnx.ModelProto, float]:
        """Quantize the nodes of ``int8_groups`` (minus ``keep_fp32``); everything else stays float.

        Returns:
            (path of the QDQ graph, the graph, share of Conv MACs in int8).
        """
        chosen = set(int8_groups)
        keep = set(self.keep_fp32)
        exclude = [name for name, group in self.groups.items() if group not in chosen or name in keep]
        self._count += 1
        path = self.workdir / f"int8-{self._count}.onnx"
        first = not self.cache_path.is_file() or not QDQ_PROFILES[self.profile].ranges_cache
        proto = quantize_int8(self.fp32_path, path, profile=self.profile,
                              frames=self.frames if first else None, calib_method=self.calib_method,
                              cache_path=self.cache_path, exclude=exclude)
        int8_nodes = int8_conv_nodes(proto)
        share = sum(self.macs[n] for n in int8_nodes) / sum(self.macs.values())
        return path, proto, share

    def calibrated_ranges(self) -> dict[str, tuple[float, float]]:
        """``{tensor: (low, high)}`` as calibrated (the cache; calibrating first if needed)."""
        if not self.cache_path.is_file():
            self.quantize(self.quantizable_groups)
        return read_calibration_ranges(self.cache_path)

    def coverage(self, frames: Sequence[np.ndarray] | None = None, source: str | None = None,
                 margin: float = DEFAULT_MARGIN, quantized: onnx.ModelProto | None = None) -> Coverage:
        """How the calibrated ranges (this session's cache; calibrating first if needed) compare with
        the fp32 activation ranges on ``frames`` (float32 [1, 3, H, W] or [3, H, W] each; default: the
        held-out images), tensor by tensor (:func:`~sapnet_export.export.int8.coverage.compare_ranges`).
        With ``quantized`` (the chosen int8 graph), only the tensors it quantizes (QuantizeLinear
        inputs) count: a group kept in float cannot clip.

        Raises:
            ValueError: no frames (and no held-out images).
        """
        if frames is None:
            frames = [item.image for item in self.held_out]
            source = source or f"{len(frames)} held-out images"
        calibrated = self.calibrated_ranges()
        if quantized is not None:
            inputs = {node.input[0] for node in quantized.graph.node if node.op_type == "QuantizeLinear"}
            calibrated = {name: value for name, value in calibrated.items() if name in inputs}
        observed = observed_ranges(self.fp32_path, frames, tensors=list(calibrated),
                                   op_types=QDQ_PROFILES[self.profile].op_types)
        return compare_ranges(self.fp32, calibrated, observed, frames=len(frames),
                              source=source or f"{len(frames)} frames",
                              symmetric=QDQ_PROFILES[self.profile].activation_symmetric, margin=margin)

    def trial(self, int8_groups: Sequence[str]) -> Trial:
        """Quantize ``int8_groups`` and measure the variant on the held-out images."""
        path, _, share = self.quantize(int8_groups)
        results = evaluate(profile_runner(self.profile, path), self.held_out)
        floats = {*self.kept_groups, *(g for g in self.quantizable_groups if g not in int8_groups)}
        result = Trial(float_groups=tuple(g for g in GROUPS if g in floats),
                       int8_groups=tuple(int8_groups), int8_mac_share=share, results=results,
                       path=path)
        if self.on_trial:
            self.on_trial(result)
        return result


def group_sensitivity(session: Int8Session) -> list[Trial]:
    """Quantize each quantizable group alone and rank the groups, most harmful (lowest PSNR) first."""
    trials = [session.trial([group]) for group in session.quantizable_groups]
    return sorted(trials, key=lambda t: t.min_psnr_db)


@dataclass
class BudgetResult:
    """Outcome of :func:`meet_budget`: the chosen variant, every variant tried in order, the
    sensitivity ranking when one was needed (empty when full INT8 already met the budget), the
    calibration coverage on the held-out images once measured (:meth:`Int8Session.coverage`), and
    ``chosen_is_written``: the chosen variant's graph is the one written, so its held-out results
    stand for the file (False once the graph was changed after the search: float parts in fp16)."""

    chosen: Trial
    tried: list[Trial]
    ranking: list[Trial]
    met: bool
    coverage: Coverage | None = None
    chosen_is_written: bool = True


def meet_budget(session: Int8Session, min_psnr_db: float | None) -> BudgetResult:
    """Full INT8, then keep the most harmful groups in float until the minimum held-out PSNR reaches
    ``min_psnr_db`` (None: full INT8 as is). ``met`` is False when even the last variant misses it
    (possible only with ``keep_fp32`` nodes or a budget above what fp32 itself gives)."""
    full = session.trial(session.quantizable_groups)
    tried, ranking = [full], []
    if min_psnr_db is None or full.min_psnr_db >= min_psnr_db:
        return BudgetResult(chosen=full, tried=tried, ranking=ranking,
                            met=min_psnr_db is None or full.min_psnr_db >= min_psnr_db)
    ranking = group_sensitivity(session)
    int8 = list(session.quantizable_groups)
    for harmful in ranking:
        int8.remove(harmful.int8_groups[0])
        if not int8:
            break
        current = session.trial(int8)
        tried.append(current)
        if current.min_psnr_db >= min_psnr_db:
            return BudgetResult(chosen=current, tried=tried, ranking=ranking, met=True)
    return BudgetResult(chosen=tried[-1], tried=tried, ranking=ranking, met=False)


def describe_mix(trial: Trial) -> dict:
    """The JSON-ready description of a variant: groups in float/int8, MAC share (0..1), and
    ``fidelity`` {``psnr_mean_db``, ``psnr_min_db``}: the keys of the held-out summary's ``fidelity``
    (:func:`sapnet_export.measure.evaluation.summarize`), so one reader serves every report."""
    return {"float_groups": list(trial.float_groups), "int8_groups": list(trial.int8_groups),
            "int8_mac_share": trial.int8_mac_share,
            "fidelity": {"psnr_mean_db": trial.mean_psnr_db, "psnr_min_db": trial.min_psnr_db}}
