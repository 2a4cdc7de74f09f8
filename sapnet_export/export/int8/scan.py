"""``sapnet-export sensitivity`` as a library call: which groups cost the most fidelity in INT8.

:func:`scan_sensitivity` exports the fp32 graph, runs the PyTorch fp32 references on the held-out images,
calibrates once, measures full INT8 and then each group quantized alone
(:func:`sapnet_export.export.int8.sensitivity.group_sensitivity`) and the calibration coverage, and
returns the ranking with its JSON
report (format :data:`SENSITIVITY_FORMAT`, docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.measure.evaluation import prepare_held_out
from sapnet_export.model.checkpoints import WeightsInfo
from sapnet_export.model.network import SAPNet
from sapnet_export.runners.torch_runner import TorchRunner
from .calibration import CalibrationSet
from .quantize import DEFAULT_CALIB_METHOD, check_int8_options
from .sensitivity import Int8Session, Trial, describe_mix, group_sensitivity

#: ``format`` of the sensitivity report.
#: v2: each group mix has ``fidelity`` {``psnr_mean_db``, ``psnr_min_db``}, the held-out summary's
#: keys (v1: flat ``fidelity_psnr_db_mean``/``fidelity_psnr_db_min``).
SENSITIVITY_FORMAT = "sapnet-export/sensitivity-v2"


@dataclass(frozen=True)
class SensitivityScan:
    """What :func:`scan_sensitivity` measured.

    Attributes:
        full: full INT8 (every quantizable group); ranking: each group quantized alone, most harmful
            (lowest min PSNR) first.
        stages: stages exported; images: the held-out image files measured on.
        coverage: held-out activation ranges against the calibrated ones
            (:meth:`~sapnet_export.export.int8.sensitivity.Int8Session.coverage`, as a dict).
        report: the JSON report (:data:`SENSITIVITY_FORMAT`).
    """

    full: Trial
    ranking: list[Trial]
    stages: int
    images: list[Path]
    coverage: dict
    report: dict


def scan_sensitivity(model: SAPNet, info: WeightsInfo, calibration: CalibrationSet,
                     items: Sequence[tuple[Path, Path]], *, stages: int | None = None,
                     profile: str = "tensorrt", method: str = DEFAULT_CALIB_METHOD,
                     on_step: Callable[[str], None] | None = None,
                     on_trial: Callable[[Trial], None] | None = None) -> SensitivityScan:
    """Rank the network's groups by the fidelity INT8 costs them (PSNR against PyTorch fp32 on
    held-out images, ONNX Runtime on the CPU).

    Args:
        model, info: the network and its weights (:func:`~sapnet_export.model.checkpoints.load_weights`).
        calibration: the calibration set (:func:`~sapnet_export.export.int8.calibration.load_calibration`).
        items: held-out ``(path, relative)`` pairs (:func:`~sapnet_export.data.images.discover_images`);
            never calibration sources.
        stages: stages to export (None: all); profile: QDQ profile; method: calibration method.
        on_step: called with a sentence as each phase starts; on_trial: with each group measured.

    Raises:
        InputError: bad profile, method or stages; an unreadable image; an image that is a
            calibration source.
    """
    from sapnet_export.export.onnx_export import DEFAULT_OPSET, to_onnx_proto

    check_int8_options(profile, method)
    try:
        stages = model.resolve_stages(stages)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if on_step:
        on_step(f"PyTorch fp32 references on {len(items)} held-out images...")
    held_out = prepare_held_out(TorchRunner(model, info, stages=stages), items,
                                exclude_sha256=calibration.source_sha256)
    session = Int8Session(to_onnx_proto(model, stages, DEFAULT_OPSET, None), calibration.frames, held_out,
                          profile=profile, calib_method=method)
    try:
        if on_step:
            on_step("calibrating, then quantizing the whole network...")
        full = session.trial(session.quantizable_groups)
        session.on_trial = on_trial
        ranking = group_sensitivity(session)
        if on_step:
            on_step("calibration coverage on the held-out images...")
        coverage = session.coverage().as_dict()
    finally:
        session.close()
    images = [path for path, _ in items]
    report = {
        "format": SENSITIVITY_FORMAT, "profile": profile, "calib_method": method,
        "calibration": str(calibration.path), "calibration_frames_sha256": calibration.sha256,
        "checkpoint": info.name, "checkpoint_sha256": info.sha256, "stages": stages,
        "held_out_images": [str(p) for p in images],
        "reference": "PyTorch fp32 (CPU)", "full_int8": describe_mix(full),
        "ranking": [describe_mix(t) for t in ranking], "coverage": coverage}
    return SensitivityScan(full=full, ranking=ranking, stages=stages, images=images, coverage=coverage,
                           report=report)
