"""INT8 explicit quantization: QuantizeLinear/DequantizeLinear pairs with scales from a calibration set.

The quantizer is ONNX Runtime's ``onnxruntime.quantization.quantize_static`` (QDQ format), chosen over
TensorRT Model Optimizer because it installs from PyPI with the ONNX Runtime this toolkit already uses,
runs its calibration on the CPU, supports per-node exclusion (``nodes_to_exclude``) and caches
calibration ranges to a file (``calibration_cache_path``), which the PSNR-budget search and the
sensitivity scan reuse so that calibration runs once. ModelOpt would pull in a second framework and,
for its ONNX path, still calibrates with ONNX Runtime.

Three QDQ profiles (docs/design.md section 3):

- ``tensorrt``: int8 activations, symmetric (zero point 0), per tensor; int8 weights, symmetric, per
  channel on axis 0; bias left in float. Only Conv inputs are quantized (the weighted layers, as
  TensorRT's explicit-quantization guide recommends); TensorRT fuses the rest. Checked by
  :func:`sapnet_export.export.int8.qdq_rules.tensorrt_qdq_violations`.
- ``cpu``: uint8 activations (asymmetric) and int8 weights (u8s8), ONNX Runtime's fast path on x86;
  Conv and the element-wise ops around it are quantized so that ONNX Runtime fuses them into integer
  kernels (quantizing Conv inputs alone gave no speed-up on the CPU).
- ``openvino``: NNCF's ``nncf.quantize`` instead of ONNX Runtime's quantizer (its own statistics and
  bias correction), checked with OpenVINO (:mod:`sapnet_export.export.int8.nncf_quantize`).

Groups: the network's nodes are grouped by the module they come from (docs/design.md section 2; weights
are shared by the stages, so a group spans all stages): ``conv0``, the four gates ``conv_i``,
``conv_f``, ``conv_g``, ``conv_o``, ``lstm_cell`` (the element-wise cell update), ``res_conv1`` ..
``res_conv5`` (with their residual Add and ReLU) and the output ``conv`` (with its ``+ input``).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import INPUT_NAME, POOL_WEIGHTS_NAME, whole_frame_pool_weights


@dataclass(frozen=True)
class QdqProfile:
    """How a QDQ graph is quantized for one consumer (see the module docstring).

    Attributes:
        name: ``tensorrt`` or ``cpu``.
        activation_type, weight_type: ``int8`` or ``uint8``.
        activation_symmetric: zero point 0 for activations.
        op_types: ONNX op types whose inputs get QuantizeLinear/DequantizeLinear.
        summary: one line for reports.
        backend: the Runner that checks the graph (``--backend`` name; :func:`profile_runner`).
    """

    name: str
    activation_type: str
    weight_type: str
    activation_symmetric: bool
    op_types: tuple[str, ...]
    summary: str
    backend: str = "onnxruntime"


QDQ_PROFILES = {
    "tensorrt": QdqProfile("tensorrt", "int8", "int8", True, ("Conv",),
                           "int8 symmetric per-tensor activations, int8 symmetric per-channel (axis 0) "
                           "weights, float bias; Conv inputs"),
    "cpu": QdqProfile("cpu", "uint8", "int8", False,
                      ("Conv", "Add", "Mul", "Sigmoid", "GlobalAveragePool", "Concat", "Relu"),
                      "u8s8: uint8 asymmetric activations, int8 symmetric per-channel weights, "
                      "float bias; Conv and element-wise ops"),
    "openvino": QdqProfile("openvino", "int8", "int8", True,
                           ("Conv", "Add", "Mul", "Sigmoid", "GlobalAveragePool", "Concat", "Relu"),
                           "NNCF nncf.quantize (preset performance): int8 symmetric activations, int8 "
                           "symmetric per-channel weights, fast bias correction; QDQ placed for OpenVINO",
                           backend="openvino"),
}
#: Calibration methods (``onnxruntime.quantization.CalibrationMethod``): minmax keeps the full range;
#: entropy (KL divergence, TensorRT's classic calibrator) and percentile (99.999 %) clip outliers but
#: hold every calibrated tensor of a frame in memory at once.
CALIB_METHODS = ("minmax", "entropy", "percentile")
#: The default: the method that measured best for SAPNet, in fidelity and in Y-PSNR against ground
#: truth (the figures: docs/commands.md, ``onnx --calib-method``; docs/measurements.md).
DEFAULT_CALIB_METHOD = "percentile"
#: Group names in network order.
GROUPS = ("conv0", "conv_i", "conv_f", "conv_g", "conv_o", "lstm_cell", "res_conv1", "res_conv2",
          "res_conv3", "res_conv4", "res_conv5", "conv")
_SCOPE = re.compile(r"^/model/(conv0|conv_[ifgo]|res_conv[1-5]|conv)/")


def node_groups(model: onnx.ModelProto) -> dict[str, str]:
    """Map every node name of an exported fp32 graph to its group (:data:`GROUPS`).

    Nodes inside a module's scope (``/model/res_conv3/...``) take that module. Unscoped nodes follow
    the data: a Concat belongs to the group that consumes it (``conv0``, or ``lstm_cell`` for the one
    feeding the gates), a node fed by a residual block or by the output conv belongs to it (the
    residual ``Add``/``Relu``, the ``+ input``), anything else is the ``lstm_cell``.
    """
    groups: dict[str, str] = {}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:  # topological order: producers are grouped first
        match = _SCOPE.match(node.name)
        if match:
            groups[node.name] = match.group(1)
            continue
        fed_by = [groups.get(producer[i].name) for i in node.input if i in producer]
        if node.op_type == "Concat":
            users = {(_SCOPE.match(c.name) or [None, None])[1] for c in consumers.get(node.output[0], [])}
            groups[node.name] = "conv0" if users == {"conv0"} else "lstm_cell"
        elif any(g is not None and (g.startswith("res_conv") or g == "conv") for g in fed_by):
            groups[node.name] = next(g for g in fed_by if g and (g.startswith("res_conv") or g == "conv"))
        else:
            groups[node.name] = "lstm_cell"
    return groups


def select_nodes(model: onnx.ModelProto, patterns: Iterable[str]) -> list[str]:
    """Names of the nodes matched by ``patterns``: a group name (:data:`GROUPS`) selects its nodes, any
    other pattern is an ``fnmatch`` glob on node names (e.g. ``/model/res_conv5/*``).

    Raises:
        InputError: a pattern matches no node (the message lists the groups).
    """
    groups = node_groups(model)
    chosen: list[str] = []
    for pattern in patterns:
        hits = ([n for n, g in groups.items() if g == pattern] if pattern in GROUPS
                else [n for n in groups if fnmatch.fnmatchcase(n, pattern)])
        if not hits:
            raise InputError(f"--keep-fp32 {pattern!r} matches no node; use a group "
                             f"({', '.join(GROUPS)}) or a glob on node names like '/model/res_conv5/*'")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def conv_macs(model: onnx.ModelProto, height: int = 64, width: int = 64) -> dict[str, int]:
    """Multiply-accumulates of every Conv node for one [1, 3, height, width] input.

    MACs = output elements x (input channels / group) x kernel height x kernel width, with output
    shapes from ONNX shape inference of the graph with its input fixed to that size.
    """
    fixed = copy.deepcopy(model)
    for graph_input in fixed.graph.input:  # rainy [1, 3, H, W]; pool_weights [1, 1, H, W] if present
        dims = graph_input.type.tensor_type.shape.dim
        for dim, value in zip(dims, (1, 3 if graph_input.name == INPUT_NAME else 1, height, width)):
            dim.ClearField("dim_param")
            dim.dim_value = value
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(fixed)
    # The batch dimension of the recurrent state is not propagated through Shape/ConstantOfShape; count
    # per frame (N = 1) and require the other dimensions to be known.
    shapes = {v.name: [1] + [d.dim_value for d in v.type.tensor_type.shape.dim][1:]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    macs = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            _, cin_per_group, kh, kw = weights[node.input[1]]
            shape = shapes.get(node.output[0], [0])
            if len(shape) != 4 or 0 in shape:
                raise ValueError(f"{node.name}: output shape not inferred ({shape})")
            macs[node.name] = int(np.prod(shape)) * cin_per_group * kh * kw
    return macs


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


def check_int8_options(profile: str, calib_method: str) -> None:
    """Raise InputError unless ``profile`` is in :data:`QDQ_PROFILES` and ``calib_method`` in
    :data:`CALIB_METHODS` (checked before any slow work starts)."""
    if profile not in QDQ_PROFILES:
        raise InputError(f"--qdq-profile {profile}: choose one of {', '.join(QDQ_PROFILES)}")
    if profile == "openvino":
        from .nncf_quantize import nncf_version

        nncf_version()
        return  # NNCF chooses its own range estimators; --calib-method does not apply
    if calib_method not in CALIB_METHODS:
        raise InputError(f"--calib-method {calib_method}: choose one of {', '.join(CALIB_METHODS)}")


def quantize_int8(fp32_path: str | os.PathLike, output: str | os.PathLike, *, profile: str,
                  frames: np.ndarray | None, calib_method: str = DEFAULT_CALIB_METHOD,
                  cache_path: str | os.PathLike, exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """Quantize the fp32 ONNX at ``fp32_path`` into a QDQ graph at ``output`` and return it.

    Calibration runs the graph on ``frames`` (float32 [N, 3, H, W] in [0, 1]) with ONNX Runtime on the
    CPU and stores the activation ranges at ``cache_path``; when that file exists, calibration is skipped
    and its ranges are used (pass ``frames=None`` then). The ``openvino`` profile quantizes with NNCF
    instead (:func:`~sapnet_export.export.int8.nncf_quantize.quantize_nncf`), which calibrates on
    ``frames`` every time and ignores ``calib_method`` and ``cache_path``.

    Args:
        profile: a key of :data:`QDQ_PROFILES`.
        calib_method: one of :data:`CALIB_METHODS`.
        exclude: node names kept in float (neither inputs nor weights quantized).

    Raises:
        InputError: unknown profile or method, no frames and no cache.

    Source: ``onnxruntime.quantization.quantize_static`` (ONNX Runtime 1.31 API docstring: QDQ format,
    ``extra_options`` ``ActivationSymmetric``, ``WeightSymmetric``, ``QuantizeBias``).
    """
    check_int8_options(profile, calib_method)
    if profile == "openvino":
        from .nncf_quantize import quantize_nncf

        return quantize_nncf(fp32_path, output, frames=frames, exclude=exclude)
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
                           # Calibrate frame by frame: every calibrator (the histogram ones too) then
                           # folds a frame's tensors into its ranges before running the next frame,
                           # so memory holds one frame's calibrated tensors, not the whole set's.
                           "CalibStridedMinMax": 1})
    return onnx.load(str(output))


def int8_conv_nodes(quantized: onnx.ModelProto) -> set[str]:
    """Conv nodes of a QDQ graph whose activation and weight both come from DequantizeLinear, the
    activation possibly through a Concat of DequantizeLinear outputs and constants (NNCF quantizes
    the inputs of a Concat, not its output; the stage-1 LSTM state is a ConstantOfShape of zeros)."""
    producer = {out: node for node in quantized.graph.node for out in node.output}

    def dequantized(name: str, through_concat: bool) -> bool:
        node = producer.get(name)
        if node is None:
            return False
        if node.op_type == "DequantizeLinear":
            return True
        if through_concat and node.op_type == "Concat":
            return all(dequantized(i, False) or getattr(producer.get(i), "op_type", "") == "ConstantOfShape"
                       for i in node.input)
        return False

    return {node.name for node in quantized.graph.node if node.op_type == "Conv"
            and dequantized(node.input[0], True) and dequantized(node.input[1], False)}


def profile_runner(profile: str | None, path: str | os.PathLike):  # noqa: ANN201 - Runner
    """The Runner that checks a graph of ``profile`` (None: fp32/fp16 graphs) on the CPU: OpenVINO for
    the ``openvino`` profile, ONNX Runtime otherwise (:attr:`QdqProfile.backend`)."""
    from sapnet_export.runners import create_runner

    backend = QDQ_PROFILES[profile].backend if profile else "onnxruntime"
    return create_runner(backend, model=str(path), device="cpu")
