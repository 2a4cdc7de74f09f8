"""INT8 conversion of an exported graph (step 2 of :func:`sapnet_export.export.onnx_export.export_onnx` for
``--precision int8``): its options and the quantization that meets a fidelity budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from sapnet_export.measure.evaluation import HeldOutImage
from .calibration import CalibrationSet
from .mixed_fp16 import float_parts_to_fp16
from .nncf_quantize import nncf_method
from .qdq_rules import check_tensorrt_qdq
from .qat_ranges import QAT_METHOD, QatRanges, graph_ranges
from .quantize import AUTO_CALIB_METHOD, QDQ_PROFILES, resolve_calib_method, select_nodes
from .sensitivity import BudgetResult, Int8Session, Trial, meet_budget


@dataclass(frozen=True)
class Int8Options:
    """How ``--precision int8`` quantizes (:mod:`sapnet_export.export.int8.quantize`, :mod:`sapnet_export.export.int8.sensitivity`).

    Attributes:
        calibration: the calibration set (:func:`~sapnet_export.export.int8.calibration.load_calibration`).
        profile: QDQ profile, ``tensorrt``, ``cpu`` or ``openvino`` (NNCF).
        method: calibration method, ``auto`` (default: chosen from the profile and the set,
            :func:`~sapnet_export.export.int8.quantize.resolve_calib_method`), ``minmax``,
            ``entropy`` or ``percentile`` (``openvino``: ``minmax`` or ``mean-minmax``).
        keep_fp32: group names or node-name globs kept out of quantization; None: the profile's
            :attr:`~sapnet_export.export.int8.quantize.QdqProfile.default_keep_fp32`; ``()``: nothing.
        float_precision: ``fp32`` or ``fp16``: the precision of what is not quantized (the groups
            kept in float and the element-wise ops; ``fp16``: ``tensorrt`` profile only,
            :mod:`sapnet_export.export.int8.mixed_fp16`).
        qat: the ranges a quantization-aware fine-tuning learned (a checkpoint of ``sapnet-train
            qat``; :mod:`sapnet_export.export.int8.qat_ranges`): the graph is quantized with them,
            the calibration frames are not run and ``method`` does not apply (``tensorrt`` profile only).
    """

    calibration: CalibrationSet
    profile: str = "tensorrt"
    method: str = AUTO_CALIB_METHOD
    keep_fp32: tuple[str, ...] | None = None
    float_precision: str = "fp32"
    qat: QatRanges | None = None

    @property
    def kept_float(self) -> tuple[tuple[str, ...], str]:
        """(the groups and globs kept in float, why): ``keep_fp32`` (``--keep-fp32``); when it is None,
        nothing with ``qat`` (the graph quantization-aware training emulated, every group int8), else
        the profile's default (``profile default``)."""
        if self.keep_fp32 is not None:
            return self.keep_fp32, "--keep-fp32"
        if self.qat is not None:
            return (), "qat"
        return QDQ_PROFILES[self.profile].default_keep_fp32, "profile default"


def convert_int8(proto: onnx.ModelProto, held_out: list[HeldOutImage], options: Int8Options,
                  min_psnr_db: float | None, meta: dict[str, str],
                  on_trial: Callable[[Trial], None] | None) -> tuple[onnx.ModelProto, BudgetResult]:
    """Quantize ``proto`` with ``options`` (meeting ``min_psnr_db`` on ``held_out`` when given: groups
    are kept in float, most harmful first; the search measures them in float32, and with
    ``float_precision`` fp16 the float parts are converted afterwards and ``budget.chosen_is_written``
    is False, so the caller measures the written graph again), check TensorRT's QDQ rules for the ``tensorrt`` profile, and
    record the result in ``meta`` (with the calibration coverage of the held-out images, when there
    are any: ``budget.coverage``). With ``options.qat`` the ranges are the learned ones, not calibrated.

    Returns:
        (the chosen int8 graph, the search).

    Raises:
        CheckFailed: the int8 graph breaks TensorRT's QDQ rules.
    """
    kept, kept_from = options.kept_float
    keep = select_nodes(proto, kept) if kept else []
    ranges = graph_ranges(proto, options.qat) if options.qat else None
    method, method_from = resolve_calib_method(options.method, options.profile,
                                               options.calibration.synthetic_frames)
    session = Int8Session(proto, options.calibration.frames, held_out, profile=options.profile,
                          calib_method=method, keep_fp32=keep, on_trial=on_trial, ranges=ranges)
    try:
        budget = meet_budget(session, min_psnr_db)
        quantized = onnx.load(str(budget.chosen.path))
        # do the held-out images hold activations the calibration did not cover? (read from ONNX
        # Runtime's calibration cache; NNCF, the openvino profile, keeps no ranges outside its graph)
        if held_out and QDQ_PROFILES[options.profile].ranges_cache:
            budget.coverage = session.coverage(quantized=quantized)
    finally:
        session.close()
    if options.profile == "tensorrt":
        check_tensorrt_qdq(quantized, "int8 graph (tensorrt profile)")
    fp16_nodes: list[str] = []
    if options.float_precision == "fp16":
        quantized, fp16_nodes = float_parts_to_fp16(quantized)
        check_tensorrt_qdq(quantized, "int8 graph with fp16 float parts")
        budget.chosen_is_written = False  # measured with float32 float parts: measure the file again
    calib = options.calibration
    meta.update({
        "qdq_profile": options.profile, "qdq_profile_summary": QDQ_PROFILES[options.profile].summary,
        "calib_method": (nncf_method(method) if options.profile == "openvino"
                         else QAT_METHOD if options.qat else method),
        "calib_method_from": "qat" if options.qat else method_from,
        "calibration": str(calib.path),
        "calibration_frames_sha256": calib.sha256,
        "calibration_shape": "x".join(map(str, calib.frames.shape)),
        "int8_groups": ",".join(budget.chosen.int8_groups) or "none",
        "float_groups": ",".join(budget.chosen.float_groups) or "none",
        "keep_fp32": ",".join(kept) or "none",
        "keep_fp32_from": kept_from,
        "int8_mac_share": f"{budget.chosen.int8_mac_share:.4f}",
        "float_precision": options.float_precision,
        "fp16_nodes": str(len(fp16_nodes)),
    })
    if budget.coverage is not None:
        meta["calibration_coverage"] = (f"max excess {100 * budget.coverage.as_dict()['max_excess']:.0f}% of range, "
                                        f"{len(budget.coverage.exceeding)} tensors above "
                                        f"{100 * budget.coverage.margin:.0f}% on {budget.coverage.source}")
    return quantized, budget
