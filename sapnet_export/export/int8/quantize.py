"""INT8 explicit quantization: QuantizeLinear/DequantizeLinear pairs with scales from a calibration set.

The quantizer is ONNX Runtime's ``onnxruntime.quantization.quantize_static`` (QDQ format), chosen over
TensorRT Model Optimizer because it installs from PyPI with the ONNX Runtime this toolkit already uses,
runs its calibration on the CPU, supports per-node exclusion (``nodes_to_exclude``) and caches
calibration ranges to a file (``calibration_cache_path``), which the PSNR-budget search and the
sensitivity scan reuse so that calibration runs once. ModelOpt would pull in a second framework and,
for its ONNX path, still calibrates with ONNX Runtime.

Three QDQ profiles (docs/design.md section 3):

- ``tensorrt``: int8 activations, symmetric (zero point 0), per tensor; int8 weights, symmetric, per
  channel on axis 0; bias left in float. Only Conv inputs are quantized, not Conv outputs (the weighted
  layers' inputs, as TensorRT's explicit-quantization guide recommends: "do not quantize the outputs of
  weighted operations" by default; TensorRT runs each Conv in int8 and writes its output in the float
  precision of the graph, fp32 or fp16, and the residual sums, the LSTM cell and the attention stay
  float). ONNX Runtime's quantizer puts a pair on the output of every op it quantizes unless told not to
  (``OpTypesToExcludeOutputQuantization``); with those 276 output pairs the published checkpoint kept
  42.98 / 39.94 dB fidelity (mean / worst image) on the 100 Rain100L images and lost up to 1.57 dB
  Y-PSNR, without them 46.87 / 43.81 dB and at most 0.84 dB (percentile, the README's 20 calibration
  frames; docs/measurements.md, "INT8 in heavy rain"). Checked by
  :func:`sapnet_export.export.int8.qdq_rules.tensorrt_qdq_violations`.
- ``cpu``: uint8 activations (asymmetric) and int8 weights (u8s8), ONNX Runtime's fast path on x86;
  Conv and the element-wise ops around it are quantized so that ONNX Runtime fuses them into integer
  kernels (quantizing Conv inputs alone gave no speed-up on the CPU).
- ``openvino``: NNCF's ``nncf.quantize`` (its own statistics, ``minmax`` / ``mean-minmax`` range estimators,
  bias correction), checked with OpenVINO (:mod:`sapnet_export.export.int8.nncf_quantize`).

The groups a quantization includes or leaves in float (``conv0`` .. ``conv``) are defined in
:mod:`sapnet_export.export.int8.groups` (their names are importable from here too).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import INPUT_NAME, POOL_WEIGHTS_NAME, whole_frame_pool_weights
from .groups import GROUPS, conv_macs, int8_conv_nodes, node_groups, select_nodes
from .nncf_quantize import NNCF_RANGE_ESTIMATORS

__all__ = ["AUTO_CALIB_METHOD", "CALIB_METHODS", "DEFAULT_CALIB_METHOD", "GROUPS", "QDQ_PROFILES", "QdqProfile",
           "analysis_calib_method", "check_int8_options", "conv_macs", "int8_conv_nodes", "node_groups",
           "profile_runner", "quantize_int8", "resolve_calib_method", "select_nodes"]

#: ONNX Runtime's calibration methods (``CalibrationMethod``): minmax keeps the full range; entropy (KL,
#: TensorRT's classic calibrator) and percentile (99.999 %) clip outliers, holding a frame's tensors in memory.
CALIB_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QdqProfile:
    """How a QDQ graph is quantized for one consumer (see the module docstring).

    Attributes:
        name: ``tensorrt``, ``cpu`` or ``openvino``.
        activation_type, weight_type: ``int8`` or ``uint8``.
        activation_symmetric: zero point 0 for activations.
        op_types: ONNX op types whose inputs get QuantizeLinear/DequantizeLinear.
        summary: one line for reports.
        backend: the Runner that checks the graph (``--backend`` name; :func:`profile_runner`).
        conv_outputs: Conv outputs get a QuantizeLinear/DequantizeLinear pair too (``cpu``: ONNX
            Runtime fuses Conv into its integer QLinearConv only with a quantized output); False for
            ``tensorrt`` (module docstring).
        calib_methods: the ``--calib-method`` values it takes: :data:`CALIB_METHODS`; ``openvino``
            NNCF's range estimators (:data:`~sapnet_export.export.int8.nncf_quantize.NNCF_RANGE_ESTIMATORS`).
        ranges_cache: its calibrated ranges are kept in a cache file (ONNX Runtime's), which the
            coverage checks read; False for ``openvino`` (NNCF writes them into its graph only).
        float_attention: the CRA layers' attention paths always stay float
            (:func:`~sapnet_export.export.int8.groups.attention_nodes`; ``--keep-fp32 cra`` for the other
            profiles): measured for ``cpu``, which quantizes their element-wise ops too, on 8 heavy-rain
            frames: worst fidelity 33.7 dB without, 38.8 dB with (docs/measurements.md, "INT8 in heavy
            rain"); they hold 5e-8 of the MACs.
        default_keep_fp32: the groups kept in float when ``--keep-fp32`` is not given (``--keep-fp32
            none`` quantizes them too): ``conv0`` and the output ``conv`` (1.5 % of the Conv MACs) for
            ``tensorrt``; those and the element-wise LSTM cell update ``lstm_cell`` (no MACs) for
            ``cpu``. Measured on all 100 Rain100L images and heavy20 with the 20 real-rain
            calibration frames and percentile, light-rain Y-PSNR change (mean / worst image):
            ``tensorrt`` -0.368 / -0.841 dB with every group int8, -0.306 / -0.708 dB with ``conv0``
            and ``conv`` float; ``cpu`` -0.325 / -1.418, -0.217 / -1.375 and, with ``lstm_cell``
            float too, -0.263 / -0.600 dB, the only ``cpu`` recipe inside -1.0 dB. It costs speed:
            ONNX Runtime ran that graph 1.37x faster than fp32 where the one with ``lstm_cell`` int8
            ran 1.56x (one interleaved run; docs/measurements.md, "The default recipe").
            ``openvino`` keeps those three too (NNCF ``minmax``, mixed set; light / heavy20 -0.280 /
            -1.048 and -0.108 / -0.861 dB against -0.255 / -1.608 and -0.277 / -0.844 with every
            group int8, same OpenVINO speed; "The openvino profile in heavy rain").
    """

    name: str
    activation_type: str
    weight_type: str
    activation_symmetric: bool
    op_types: tuple[str, ...]
    summary: str
    backend: str = "onnxruntime"
    float_attention: bool = False
    conv_outputs: bool = True
    default_keep_fp32: tuple[str, ...] = ()
    calib_methods: tuple[str, ...] = CALIB_METHODS
    ranges_cache: bool = True


QDQ_PROFILES = {
    "tensorrt": QdqProfile("tensorrt", "int8", "int8", True, ("Conv",),
                           "int8 symmetric per-tensor activations, int8 symmetric per-channel (axis 0) "
                           "weights, float bias; Conv inputs (not outputs)", conv_outputs=False,
                           default_keep_fp32=("conv0", "conv")),
    "cpu": QdqProfile("cpu", "uint8", "int8", False,
                      ("Conv", "Add", "Mul", "Sigmoid", "GlobalAveragePool", "Concat", "Relu"),
                      "u8s8: uint8 asymmetric activations, int8 symmetric per-channel weights, "
                      "float bias; Conv and element-wise ops; the CRA attention paths float",
                      float_attention=True, default_keep_fp32=("conv0", "conv", "lstm_cell")),
    "openvino": QdqProfile("openvino", "uint8", "int8", False,
                           ("Conv", "Add", "Mul", "Sigmoid", "GlobalAveragePool", "Concat", "Relu"),
                           "NNCF nncf.quantize (preset mixed): uint8 asymmetric activations, int8 "
                           "symmetric per-channel weights, fast bias correction; QDQ placed for OpenVINO",
                           backend="openvino", calib_methods=tuple(NNCF_RANGE_ESTIMATORS), ranges_cache=False,
                           default_keep_fp32=("conv0", "conv", "lstm_cell")),
}
#: The method of the analysis commands (``sensitivity``, ``calib show --coverage``) and of a set
#: without synthetic rain: the method that measured best for SAPNet on real-rain calibration frames,
#: in fidelity and in Y-PSNR against ground truth (docs/commands.md, ``onnx --calib-method``).
DEFAULT_CALIB_METHOD = "percentile"
#: ``--calib-method auto`` (the default of ``onnx --precision int8`` and ``trt --int8``): chosen by
#: :func:`resolve_calib_method` from the profile and the calibration set.
AUTO_CALIB_METHOD = "auto"


def analysis_calib_method(profile: str) -> str:
    """``sensitivity``'s method without ``--calib-method``: :data:`DEFAULT_CALIB_METHOD` where the
    profile takes it, else its first (``openvino``: ``minmax``; NNCF has no percentile)."""
    methods = QDQ_PROFILES[profile].calib_methods
    return DEFAULT_CALIB_METHOD if DEFAULT_CALIB_METHOD in methods else methods[0]


def resolve_calib_method(method: str, profile: str, synthetic_frames: int) -> tuple[str, str]:
    """The calibration method ``auto`` stands for, with the reason (for reports); others are kept.

    ``auto``: ``minmax`` for the ``tensorrt`` profile on a calibration set with synthetic rain in it
    (``synthetic_frames`` > 0, ``calib build --synthetic-rain``) and for ``openvino`` always (heavy20
    Y-PSNR change, mean, every group int8: -0.993 dB with ``mean-minmax``, -0.414 with ``minmax`` on
    the real-rain set; -0.821 and -0.277 on the mixed one; "The openvino profile in heavy rain"),
    ``percentile`` otherwise. Published checkpoint, 100 Rain100L images, ``conv0`` and ``conv`` float
    (docs/measurements.md, "The default recipe"), Y-PSNR change mean / worst: ``tensorrt`` on the
    mixed set -0.280 / -0.772 dB with minmax, -0.406 / -1.041 with percentile; on the 20 real-rain
    frames -0.483 / -1.219 and -0.306 / -0.708; ``cpu`` on the mixed set -0.521 / -2.146 with minmax.

    Args:
        method: ``auto`` or one of the profile's :attr:`QdqProfile.calib_methods`.
        profile: a key of :data:`QDQ_PROFILES`.
        synthetic_frames: frames of the calibration set with rendered rain (its manifest's
            ``synthetic_frames``).

    Returns:
        (method, why): why is ``--calib-method`` for a method the user gave.
    """
    if method != AUTO_CALIB_METHOD:
        return method, "--calib-method"
    if profile == "tensorrt" and synthetic_frames > 0:
        return "minmax", f"auto: tensorrt profile, {synthetic_frames} synthetic-rain calibration frames"
    if profile == "openvino":
        return "minmax", "auto: openvino profile"
    reason = "no synthetic-rain calibration frames" if profile == "tensorrt" else f"{profile} profile"
    return DEFAULT_CALIB_METHOD, f"auto: {reason}"


class _FramesReader:
    """``CalibrationDataReader`` protocol: yields ``{"rainy": float32 [1, 3, H, W]}`` one frame at a time,
    within the range last given to :meth:`set_range` (ONNX Runtime's strided calibration). For a
    shared-pooling graph (``shared_pooling``), each frame comes with its whole-frame ``pool_weights``
    (:func:`~sapnet_export.model.onnx_meta.whole_frame_pool_weights`), so it is calibrated as it is trained."""

    def __init__(self, frames: np.ndarray, shared_pooling: bool = False) -> None:
        self._frames = frames
        self._iter = iter(range(len(frames)))
        self._extra = ({POOL_WEIGHTS_NAME: whole_frame_pool_weights(*frames.shape[2:])}
                       if shared_pooling else {})

    def __len__(self) -> int:
        return len(self._frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(range(start_index, min(end_index, len(self._frames))))

    def get_next(self) -> dict[str, np.ndarray] | None:
        index = next(self._iter, None)
        if index is None:
            return None
        return {INPUT_NAME: np.ascontiguousarray(self._frames[index][None]), **self._extra}


@contextlib.contextmanager
def _quiet_ort_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a pre-processing hint on the root logger for every call (the graph
    it gets here is already shape-inferred and checked) and its histogram calibrators print progress
    to stdout; both would break this toolkit's tables."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def check_int8_options(profile: str, calib_method: str, allow_auto: bool = False,
                       need_ranges: bool = False) -> None:
    """Raise InputError unless ``profile`` is in :data:`QDQ_PROFILES` and ``calib_method`` in its
    :attr:`QdqProfile.calib_methods` (or ``auto`` with ``allow_auto``, where
    :func:`resolve_calib_method` runs later), the profile keeps its ranges where ``need_ranges``
    (``calib show --coverage``; :attr:`QdqProfile.ranges_cache`), and NNCF is installed for
    ``openvino``; checked before any slow work starts."""
    if profile not in QDQ_PROFILES:
        raise InputError(f"--qdq-profile {profile}: choose one of {', '.join(QDQ_PROFILES)}")
    if need_ranges and not QDQ_PROFILES[profile].ranges_cache:
        raise InputError(f"--coverage --qdq-profile {profile}: NNCF keeps no calibration ranges "
                         "outside its graph; compare with --qdq-profile tensorrt or cpu")
    methods = QDQ_PROFILES[profile].calib_methods
    allowed = (AUTO_CALIB_METHOD, *methods) if allow_auto else methods
    if calib_method not in allowed:
        raise InputError(f"--calib-method {calib_method}: the {profile} profile takes {', '.join(allowed)}")
    if profile == "openvino":
        from .nncf_quantize import nncf_version

        nncf_version()


def quantize_int8(fp32_path: str | os.PathLike, output: str | os.PathLike, *, profile: str,
                  frames: np.ndarray | None, calib_method: str = DEFAULT_CALIB_METHOD,
                  cache_path: str | os.PathLike, exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """Quantize the fp32 ONNX at ``fp32_path`` into a QDQ graph at ``output`` and return it.

    Calibration runs the graph on ``frames`` (float32 [N, 3, H, W] in [0, 1]) with ONNX Runtime on the
    CPU and stores the activation ranges at ``cache_path``; when that file exists, calibration is skipped
    and its ranges are used (pass ``frames=None`` then). The ``openvino`` profile quantizes with NNCF
    instead (:func:`~sapnet_export.export.int8.nncf_quantize.quantize_nncf`), which calibrates on
    ``frames`` every time and ignores ``cache_path``.

    Args:
        profile: a key of :data:`QDQ_PROFILES`.
        calib_method: one of the profile's :attr:`QdqProfile.calib_methods`.
        exclude: node names kept in float (neither inputs nor weights quantized).

    Raises:
        InputError: unknown profile or method, no frames and no cache.

    Source: ``onnxruntime.quantization.quantize_static`` (ONNX Runtime 1.31 API docstring: QDQ format,
    ``extra_options`` ``ActivationSymmetric``, ``WeightSymmetric``, ``QuantizeBias``).
    """
    check_int8_options(profile, calib_method)
    if profile == "openvino":
        from .nncf_quantize import quantize_nncf

        return quantize_nncf(fp32_path, output, frames=frames, exclude=exclude, calib_method=calib_method)
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if frames is None and not Path(cache_path).is_file():
        raise InputError("INT8 needs calibration frames (--calib DIR)")
    spec = QDQ_PROFILES[profile]
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    reader = None
    if not Path(cache_path).is_file():  # calibrating: a shared-pooling graph also needs its weights fed
        shared = POOL_WEIGHTS_NAME in {i.name for i in onnx.load(str(fp32_path)).graph.input}
        reader = _FramesReader(frames, shared)
    with _quiet_ort_quantizer():
        quantize_static(
            str(fp32_path), str(output), reader, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(spec.op_types), per_channel=True,
            activation_type=types[spec.activation_type], weight_type=types[spec.weight_type],
            nodes_to_exclude=list(exclude), calibrate_method=methods[calib_method],
            calibration_providers=["CPUExecutionProvider"], calibration_cache_path=str(cache_path),
            extra_options={"ActivationSymmetric": spec.activation_symmetric, "WeightSymmetric": True,
                           "QuantizeBias": False,
                           "OpTypesToExcludeOutputQuantization": [] if spec.conv_outputs else ["Conv"],
                           # Calibrate frame by frame: every calibrator (the histogram ones too) then
                           # folds a frame's tensors into its ranges before running the next frame,
                           # so memory holds one frame's calibrated tensors, not the whole set's.
                           "CalibStridedMinMax": 1})
    return onnx.load(str(output))


def profile_runner(profile: str | None, path: str | os.PathLike):  # noqa: ANN201 - Runner
    """The Runner that checks a graph of ``profile`` (None: fp32/fp16 graphs) on the CPU: OpenVINO for
    the ``openvino`` profile, ONNX Runtime otherwise (:attr:`QdqProfile.backend`)."""
    from sapnet_export.runners import create_runner

    backend = QDQ_PROFILES[profile].backend if profile else "onnxruntime"
    return create_runner(backend, model=str(path), device="cpu", own_graph=True)
