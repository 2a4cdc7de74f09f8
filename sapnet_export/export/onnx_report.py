"""What an export says about itself: the graph's ``metadata_props`` and the JSON report written beside it
(format :data:`CONVERSION_REPORT_FORMAT`, docs/formats.md)."""

from __future__ import annotations

import onnx
import torch

from sapnet_export import __version__
from sapnet_export.measure.evaluation import ImageResult, result_rows, summarize
from sapnet_export.model.checkpoints import WeightsInfo
from sapnet_export.model.onnx_meta import INPUT_NAME, OUTPUT_NAME, POOL_WEIGHTS_NAME
from sapnet_export.provenance import stamp
from .int8.sensitivity import BudgetResult, describe_mix

#: ``format`` of the JSON report written beside every export. v2: ``held_out.summary`` has the schema of
#: :func:`sapnet_export.measure.evaluation.summarize` (the one ``verify`` writes; v1 had flat
#: ``fidelity_psnr_db_mean``/``gt_*`` keys). v3: the int8 group mixes (``int8.chosen``, ``tried``,
#: ``sensitivity``) have ``fidelity`` {``psnr_mean_db``, ``psnr_min_db``} too
#: (:func:`~sapnet_export.export.int8.sensitivity.describe_mix`), and each held-out image row has
#: ``quality``/``reference_quality`` under the summary's names (v2: ``gt_converted``/``gt_reference``).
CONVERSION_REPORT_FORMAT = "sapnet-export/conversion-report-v3"


#: ``pooling`` metadata of a plain and of a shared-pooling export.
POOLING = {False: "per input (GlobalAveragePool per sample, as trained)",
           True: f"shared: every CRA layer pools sum over N, H, W of x * {POOL_WEIGHTS_NAME} (float32 "
                 "[N, 1, H, W], summing to 1 over the batch: the tiles of one frame)"}


def build_metadata(info: WeightsInfo, stages: int, opset: int, static_hw: tuple[int, int] | None,
                   command: str | None, precision: str = "fp32", shared_pooling: bool = False) -> dict[str, str]:
    """The ``metadata_props`` of an export: model, stages, precision, checkpoint, I/O, versions."""
    return {
        "model_name": "SAPNet derain network (WACV 2022)",
        "stages": str(stages),
        "dilations": ",".join(map(str, info.dilations)),
        "precision": precision,
        "checkpoint": info.name,
        "checkpoint_sha256": info.sha256,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "pooling": POOLING[shared_pooling],
        "input_layout": "NCHW, RGB",
        "input_range": "float32 in [0, 1]",
        "output_range": "float32, not clipped; clip to [0, 1]",
        "shape": "static " + "x".join(map(str, (1, 3, *static_hw))) if static_hw else "dynamic N, H, W",
        "opset": str(opset),
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "sapnet_export_version": __version__,
        **stamp(command),
    }


def conversion_report(result_meta: dict[str, str], probes: list[ImageResult], held_out: list[ImageResult],
            threshold: float, export_s: float, budget: BudgetResult | None,
            options) -> dict:  # noqa: ANN001 - Int8Options | None
    """The JSON report of an export (:data:`CONVERSION_REPORT_FORMAT`): metadata, threshold, seconds, the
    held-out summary and rows, the probes, the int8 search and the calibration set."""
    report = {
        "format": CONVERSION_REPORT_FORMAT,
        "metadata": result_meta,
        "reference": "PyTorch fp32 (CPU) on the same input",
        "fidelity_threshold_db": threshold,
        "conversion_seconds": export_s,
        "held_out": {"summary": summarize(held_out), "images": result_rows(held_out)},
        "probes": result_rows(probes),
    }
    if budget is not None:
        report["int8"] = {"chosen": describe_mix(budget.chosen), "budget_met": budget.met,
                          "tried": [describe_mix(t) for t in budget.tried],
                          "sensitivity": [describe_mix(t) for t in budget.ranking],
                          "coverage": budget.coverage.as_dict() if budget.coverage else None}
    if options is not None:
        report["calibration"] = {"path": str(options.calibration.path),
                                 "frames_sha256": options.calibration.sha256,
                                 "count": int(options.calibration.frames.shape[0]),
                                 "stale_sources": options.calibration.stale,
                                 "synthetic_frames": options.calibration.synthetic_frames,
                                 "method": result_meta.get("calib_method"),
                                 "method_from": result_meta.get("calib_method_from"),
                                 # learned ranges replace the calibrated ones (sapnet-train qat)
                                 "ranges": "qat" if options.qat else "calibrated"}
        if options.qat is not None:
            report["int8"]["qat"] = options.qat.as_dict()
    return report
