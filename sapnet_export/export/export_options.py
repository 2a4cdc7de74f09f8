"""The options and the result of :func:`~sapnet_export.export.onnx_export.export_onnx`, and the
checks of the options (the messages name the CLI options of ``sapnet-export onnx``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.measure.evaluation import ImageResult
from sapnet_export.model.checkpoints import WeightsInfo
from sapnet_export.model.network import SAPNet
from .int8.convert import Int8Options
from .int8.mixed_fp16 import FLOAT_PRECISIONS
from .int8.qat_ranges import QAT_PROFILE, read_qat_ranges
from .int8.quantize import check_int8_options
from .int8.sensitivity import BudgetResult
from .precision import DEFAULT_MIN_PSNR_DB, PRECISIONS

#: Lowest opset accepted (what TensorRT and TensorRT-RTX parse; see docs/design.md section 3).
MIN_OPSET = 17
#: Highest opset the TorchScript exporter writes.
MAX_OPSET = 20
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how to check it (the options of ``sapnet-export onnx``).

    Attributes:
        stages: stages to export (1..``model.stages``; None: all).
        opset: ONNX opset, ``MIN_OPSET..MAX_OPSET``.
        precision: ``fp32``; ``fp16`` (float16 compute, float32 graph I/O;
            :func:`~sapnet_export.export.precision.to_fp16`); ``int8`` (QDQ, needs ``int8`` and images).
        static_hw: fix the input to [1, 3, H, W]; None keeps N, H, W dynamic.
        shared_pooling: add the ``pool_weights`` input (:func:`to_onnx_proto`) so that the tiles of a
            frame, run as one batch, share its channel-attention pooling (docs/design.md, Tiling). The
            pooling nodes stay float32 in fp16 and int8 graphs
            (:func:`~sapnet_export.model.onnx_meta.pooling_nodes`); a random frame's tiles are checked
            besides the whole-frame probes.
        min_psnr_db: fidelity threshold in dB against PyTorch fp32; None takes the precision's default
            (:data:`~sapnet_export.export.precision.DEFAULT_MIN_PSNR_DB`). For int8 it is also the budget.
        int8: calibration set and quantization options (int8 only).
        require_held_out: int8 without images is an error; False lets it through unmeasured (the
            report says ``"fidelity_measured": false``; the caller must tell the user).
        heavy_rain_check: int8 without images is checked on the built-in heavy-rain frames with
            ground truth (:mod:`sapnet_export.export.int8.heavy_rain_check`), which warn below the
            threshold (``report["held_out"]["warning"]``) rather than refuse, unless ``min_psnr_db``
            asks for a budget; False: without images as ``require_held_out`` says.
    """

    stages: int | None = None
    opset: int = DEFAULT_OPSET
    precision: str = "fp32"
    static_hw: tuple[int, int] | None = None
    shared_pooling: bool = False
    min_psnr_db: float | None = None
    int8: Int8Options | None = None
    require_held_out: bool = True
    heavy_rain_check: bool = True

    @property
    def threshold_db(self) -> float:
        """The fidelity threshold that applies: ``min_psnr_db`` or the precision's default."""
        return DEFAULT_MIN_PSNR_DB[self.precision] if self.min_psnr_db is None else self.min_psnr_db


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file; ``report_path``: its JSON report (``<path>.json``); ``size_bytes``: its size.
        export_s: seconds spent exporting and converting (for int8: calibration and the budget search
            included; the final checks excluded).
        probes: fidelity of ONNX Runtime against PyTorch fp32 on the random probe inputs.
        held_out: the same on the held-out images (``--images``), with quality when ``--gt`` was given.
        metadata: the model's ``metadata_props``.
        report: the JSON report's content.
        budget: for int8, the search (:class:`~sapnet_export.export.int8.sensitivity.BudgetResult`); None otherwise.
    """

    path: Path
    report_path: Path
    size_bytes: int
    export_s: float
    probes: list[ImageResult]
    held_out: list[ImageResult]
    metadata: dict[str, str]
    report: dict
    budget: BudgetResult | None = None


def check_options(options: ExportOptions, items: Sequence[tuple[Path, Path]]) -> None:
    """Refuse option combinations that cannot export (the messages name the CLI options), given the
    held-out ``items`` the export will measure on (``(path, relative)`` pairs).

    Raises:
        InputError: an unknown precision; int8 without a calibration set, a calibration set without
            int8; int8 without held-out images where they are required; a bad QDQ profile,
            calibration method or ``float_precision`` (fp16 only with the ``tensorrt`` profile);
            learned (QAT) ranges with a profile other than ``tensorrt``.
    """
    precision, int8, min_psnr_db = options.precision, options.int8, options.min_psnr_db
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and int8 is None:
        raise InputError("--precision int8 needs a calibration set: --calib DIR "
                         "(make one with `sapnet-export calib build`)")
    if precision != "int8" and int8 is not None:
        raise InputError(f"--calib is for --precision int8, not {precision}")
    if precision == "int8" and not items and (options.require_held_out or min_psnr_db is not None):
        raise InputError(f"--precision int8{' --min-psnr' if min_psnr_db is not None else ''} needs "
                         "held-out images (--images) to measure fidelity; calibration frames are "
                         "never used for that")
    if int8 is not None:
        check_int8_options(int8.profile, int8.method, allow_auto=True)
        if int8.float_precision not in FLOAT_PRECISIONS:
            raise InputError(f"--float-precision {int8.float_precision}: choose one of "
                             f"{', '.join(FLOAT_PRECISIONS)}")
        if int8.qat is not None and int8.profile != QAT_PROFILE:
            raise InputError(f"--qdq-profile {int8.profile}: the checkpoint's int8 ranges were learned "
                             f"by quantization-aware training for the {QAT_PROFILE} profile (sapnet-train "
                             f"qat); export it with --qdq-profile {QAT_PROFILE}")
        if int8.float_precision == "fp16" and int8.profile != "tensorrt":
            raise InputError(f"--float-precision fp16 is for the tensorrt profile (TensorRT runs int8 "
                             f"and fp16 in one strongly typed graph), not {int8.profile}")


def resolve_options(model: SAPNet, info: WeightsInfo, options: ExportOptions | None, option_fields: dict,
                    images: Sequence[Path | tuple[Path, Path]]) -> tuple[ExportOptions, int, list[tuple[Path, Path]]]:
    """The options (``option_fields`` over ``options``), the stage count and the ``(path, relative)``
    held-out items of :func:`export_onnx`; the combination is checked by :func:`check_options` once
    the held-out images are known. An int8 export of a checkpoint that carries learned ranges
    (``sapnet-train qat``) quantizes with them (:attr:`~sapnet_export.export.int8.convert.Int8Options.qat`).

    Raises:
        InputError: an unknown option field, stages outside the model's, a malformed QAT record.
    """
    unknown = set(option_fields) - {f.name for f in fields(ExportOptions)}
    if unknown:
        raise InputError(f"export_onnx: unknown option {', '.join(sorted(unknown))}")
    options = replace(options or ExportOptions(), **option_fields)
    try:
        stages = model.resolve_stages(options.stages)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if options.int8 is not None and options.int8.qat is None:
        qat = read_qat_ranges(info.metadata, str(info.path))
        if qat is not None:
            options = replace(options, int8=replace(options.int8, qat=qat))
    items = [item if isinstance(item, tuple) else (Path(item), Path(Path(item).name)) for item in images]
    return options, stages, items
