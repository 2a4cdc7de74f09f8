"""PyTorch -> ONNX export of the derain network (fp32, fp16 or int8), verified against PyTorch before it lands.

The exporter is PyTorch's TorchScript-based ``torch.onnx.export(dynamo=False)``: it writes one file at
exactly the opset asked, with ``GlobalAveragePool`` for CRA and the weights shared by the stages' Conv
nodes; the dynamo exporter was slower, wrote a larger file and bumped the opset (docs/commands.md,
``onnx``, "Exporter").
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from sapnet_export import __version__
from sapnet_export.export.int8.calibration import CalibrationSet
from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.measure.evaluation import HeldOutImage, ImageResult, evaluate, prepare_held_out, result_rows, summarize
from sapnet_export.fileio import atomic_outputs, check_output, to_json
from sapnet_export.provenance import stamp
from sapnet_export.export.int8.sensitivity import BudgetResult, Int8Session, Trial, describe_mix, meet_budget
from sapnet_export.model.network import SAPNet
from sapnet_export.model.onnx_meta import INPUT_NAME, OUTPUT_NAME, POOL_WEIGHTS_NAME, pooling_nodes
from .precision import DEFAULT_MIN_PSNR_DB, PRECISIONS, to_fp16
from sapnet_export.export.int8.nncf_quantize import NNCF_METHOD
from sapnet_export.export.int8.qdq_rules import check_tensorrt_qdq
from sapnet_export.model.tiling import TileLayout
from sapnet_export.export.int8.quantize import (DEFAULT_CALIB_METHOD, QDQ_PROFILES, check_int8_options,
                                                profile_runner, select_nodes)
from sapnet_export.runners.base import Runner
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import WeightsInfo

#: Lowest opset accepted (what TensorRT and TensorRT-RTX parse; see docs/design.md section 3).
MIN_OPSET = 17
#: Highest opset the TorchScript exporter writes.
MAX_OPSET = 20
DEFAULT_OPSET = 17
#: ``format`` of the JSON report written beside every export. v2: ``held_out.summary`` has the schema of
#: :func:`sapnet_export.measure.evaluation.summarize` (the one ``verify`` writes; v1 had flat
#: ``fidelity_psnr_db_mean``/``gt_*`` keys).
CONVERSION_REPORT_FORMAT = "sapnet-export/conversion-report-v2"


class _StagesWrapper(torch.nn.Module):
    """Fixes the stage count so the exported graph takes only the image (and, for a shared-pooling
    export, the pool weights)."""

    def __init__(self, model: SAPNet, stages: int) -> None:
        super().__init__()
        self.model, self.stages = model, stages

    def forward(self, rainy: torch.Tensor, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(rainy, stages=self.stages, pool_weights=pool_weights)


@dataclass(frozen=True)
class Int8Options:
    """How ``--precision int8`` quantizes (:mod:`sapnet_export.export.int8.quantize`, :mod:`sapnet_export.export.int8.sensitivity`).

    Attributes:
        calibration: the calibration set (:func:`~sapnet_export.export.int8.calibration.load_calibration`).
        profile: QDQ profile, ``tensorrt``, ``cpu`` or ``openvino`` (NNCF).
        method: calibration method, ``minmax``, ``entropy`` or ``percentile`` (default).
        keep_fp32: group names or node-name globs kept out of quantization.
    """

    calibration: CalibrationSet
    profile: str = "tensorrt"
    method: str = DEFAULT_CALIB_METHOD
    keep_fp32: tuple[str, ...] = ()


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


def _probe_inputs(static_hw: tuple[int, int] | None) -> list[tuple[str, np.ndarray]]:
    """Deterministic random probes: two shapes for a dynamic export (to prove N, H, W are free)."""
    rng = np.random.default_rng(0)
    shapes = [(1, 3, *static_hw)] if static_hw else [(1, 3, 64, 64), (2, 3, 37, 53)]
    return [(f"probe {'x'.join(map(str, s))}", rng.random(s, dtype=np.float32)) for s in shapes]


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


def to_onnx_proto(model: SAPNet, stages: int, opset: int, static_hw: tuple[int, int] | None,
                  shared_pooling: bool = False) -> onnx.ModelProto:
    """Trace ``model`` at ``stages`` into an ONNX model (checked, shapes inferred).

    The graph: input ``rainy`` float32 [N, 3, H, W], output ``derained`` float32 [N, 3, H, W];
    N, H, W are symbolic unless ``static_hw`` fixes [1, 3, H, W]. ``shared_pooling`` adds the input
    ``pool_weights`` float32 [N, 1, H, W] and pools each CRA layer with it (``Mul`` and ``ReduceSum``
    over N, H, W instead of ``GlobalAveragePool``; :data:`~sapnet_export.model.onnx_meta.POOL_WEIGHTS_NAME`).

    Raises:
        InputError: ``opset`` outside ``MIN_OPSET..MAX_OPSET``; ``shared_pooling`` with ``static_hw``
            (a static graph takes one frame, shared pooling a batch of tiles).
        onnx.checker.ValidationError: the traced graph is invalid (a bug, not a user error).
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"--opset {opset}: choose {MIN_OPSET}..{MAX_OPSET}")
    if shared_pooling and static_hw:
        raise InputError("--shared-pooling runs the tiles of a frame as one batch, so N, H and W must "
                         "stay dynamic: drop --static")
    wrapper = _StagesWrapper(model.eval(), stages)
    example = torch.rand(1, 3, *(static_hw or (64, 64)))
    names = [INPUT_NAME]
    axes = None if static_hw else {INPUT_NAME: {0: "N", 2: "H", 3: "W"},
                                   OUTPUT_NAME: {0: "N", 2: "H", 3: "W"}}
    args: tuple[torch.Tensor, ...] = (example,)
    if shared_pooling:
        args = (example, torch.full((1, 1, 64, 64), 1 / (64 * 64)))
        names.append(POOL_WEIGHTS_NAME)
        axes[POOL_WEIGHTS_NAME] = {0: "N", 2: "H", 3: "W"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(wrapper, args, buffer, input_names=names,
                          output_names=[OUTPUT_NAME], opset_version=opset, dynamic_axes=axes,
                          do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _probes(reference_runner: TorchRunner, static_hw: tuple[int, int] | None) -> list[HeldOutImage]:
    """Random probe inputs with their PyTorch references (two shapes for a dynamic export)."""
    return [HeldOutImage(path=Path(name), name=name, image=batch, reference=reference_runner.run(batch))
            for name, batch in _probe_inputs(static_hw)]


class _TilesProbe(Runner):
    """Presents ``runner.run_tiles`` with fixed pool weights as ``run``, so :func:`evaluate` checks a
    shared-pooling graph on the tiles of one frame as it checks whole frames."""

    def __init__(self, runner: Runner, pool_weights: np.ndarray) -> None:
        self.runner, self.pool_weights, self.info = runner, pool_weights, runner.info

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.runner.run_tiles(batch, self.pool_weights)


def _evaluate_tiles(runner: Runner, reference_runner: TorchRunner,
                    on_row: Callable[[ImageResult], None] | None) -> list[ImageResult]:
    """Fidelity of a shared-pooling graph on a random 72x88 frame cut into 4 tiles of 48x56
    (overlap 24) and run as one batch, against PyTorch with the same pool weights."""
    frame = np.random.default_rng(1).random((1, 3, 72, 88), dtype=np.float32)
    layout = TileLayout(72, 88, (48, 56), 24)
    tiles = layout.tile_batch(frame)
    weights = layout.pool_weights()
    name = f"probe tiles {len(layout.windows)}x48x56 (shared pooling)"
    probe = HeldOutImage(path=Path(name), name=name, image=tiles,
                         reference=reference_runner.run_tiles(tiles, weights))
    return evaluate(_TilesProbe(runner, weights), [probe], on_row)


def _check_options(precision: str, int8: Int8Options | None, items: Sequence[tuple[Path, Path]],
                   require_held_out: bool, min_psnr_db: float | None) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and int8 is None:
        raise InputError("--precision int8 needs a calibration set: --calib DIR "
                         "(make one with `sapnet-export calib build`)")
    if precision != "int8" and int8 is not None:
        raise InputError(f"--calib is for --precision int8, not {precision}")
    if precision == "int8" and not items and (require_held_out or min_psnr_db is not None):
        raise InputError(f"--precision int8{' --min-psnr' if min_psnr_db is not None else ''} needs "
                         "held-out images (--images) to measure fidelity; calibration frames are "
                         "never used for that")
    if int8 is not None:
        check_int8_options(int8.profile, int8.method)


def _convert_int8(proto: onnx.ModelProto, held_out: list[HeldOutImage], options: Int8Options,
                  min_psnr_db: float | None, meta: dict[str, str],
                  on_trial: Callable[[Trial], None] | None) -> tuple[onnx.ModelProto, BudgetResult]:
    """Quantize (meeting ``min_psnr_db`` when given), check TensorRT's rules, fill ``meta``."""
    keep = select_nodes(proto, options.keep_fp32) if options.keep_fp32 else []
    session = Int8Session(proto, options.calibration.frames, held_out, profile=options.profile,
                          calib_method=options.method, keep_fp32=keep, on_trial=on_trial)
    try:
        budget = meet_budget(session, min_psnr_db)
        quantized = onnx.load(str(budget.chosen.path))
        # do the held-out images hold activations the calibration did not cover? (read from ONNX
        # Runtime's calibration cache; NNCF, the openvino profile, keeps no ranges outside its graph)
        if held_out and options.profile != "openvino":
            budget.coverage = session.coverage()
    finally:
        session.close()
    if options.profile == "tensorrt":
        check_tensorrt_qdq(quantized, "int8 graph (tensorrt profile)")
    calib = options.calibration
    meta.update({
        "qdq_profile": options.profile, "qdq_profile_summary": QDQ_PROFILES[options.profile].summary,
        "calib_method": NNCF_METHOD if options.profile == "openvino" else options.method,
        "calibration": str(calib.path),
        "calibration_frames_sha256": calib.sha256,
        "calibration_shape": "x".join(map(str, calib.frames.shape)),
        "int8_groups": ",".join(budget.chosen.int8_groups) or "none",
        "float_groups": ",".join(budget.chosen.float_groups) or "none",
        "keep_fp32": ",".join(options.keep_fp32) or "none",
        "int8_mac_share": f"{budget.chosen.int8_mac_share:.4f}",
    })
    if budget.coverage is not None:
        meta["calibration_coverage"] = (f"max excess {100 * budget.coverage.as_dict()['max_excess']:.0f}% of range, "
                                        f"{len(budget.coverage.exceeding)} tensors above "
                                        f"{100 * budget.coverage.margin:.0f}% on {budget.coverage.source}")
    return quantized, budget


def _report(result_meta: dict[str, str], probes: list[ImageResult], held_out: list[ImageResult],
            threshold: float, export_s: float, budget: BudgetResult | None,
            options: Int8Options | None) -> dict:
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
                                 "stale_sources": options.calibration.stale}
    return report


def export_onnx(model: SAPNet, info: WeightsInfo, output: str | os.PathLike, *,
                stages: int | None = None, opset: int = DEFAULT_OPSET, precision: str = "fp32",
                static_hw: tuple[int, int] | None = None,
                images: Sequence[Path | tuple[Path, Path]] = (), gt_dir: Path | None = None,
                min_psnr_db: float | None = None, int8: Int8Options | None = None,
                shared_pooling: bool = False, force: bool = False, command: str | None = None,
                require_held_out: bool = True,
                on_row: Callable[[ImageResult], None] | None = None,
                on_trial: Callable[[Trial], None] | None = None) -> ExportResult:
    """Export ``model`` to ONNX at ``output`` (fp32, fp16 or int8), verify it, then move it into place
    with its JSON report ``<output>.json``.

    The graph and the report are written to temporary names beside ``output``. ONNX Runtime (CPU;
    OpenVINO for the ``openvino`` QDQ profile) runs the graph on random probes and on the held-out ``images``; PyTorch fp32 is the reference. fp32 and
    fp16: every input must reach ``min_psnr_db``. int8: the held-out images must (the probes, random
    noise, are reported only); with ``min_psnr_db`` given, groups are kept in float until they do
    (:func:`sapnet_export.export.int8.sensitivity.meet_budget`). Only then are both files renamed into place.

    Args:
        model, info: the network and its weights' provenance (:func:`~sapnet_export.model.checkpoints.load_weights`).
        output: destination ``.onnx`` path.
        stages: stages to export (1..``model.stages``; None: all).
        opset: ONNX opset, ``MIN_OPSET..MAX_OPSET``.
        precision: ``fp32``; ``fp16`` (float16 compute, float32 graph I/O;
            :func:`~sapnet_export.export.precision.to_fp16`); ``int8`` (QDQ, needs ``int8`` and ``images``).
        static_hw: fix the input to [1, 3, H, W]; None keeps N, H, W dynamic.
        shared_pooling: add the ``pool_weights`` input (:func:`to_onnx_proto`) so that the tiles of a
            frame, run as one batch, share its channel-attention pooling (README "Tiling"). The
            pooling nodes stay float32 in fp16 and int8 graphs
            (:func:`~sapnet_export.model.onnx_meta.pooling_nodes`); a random frame's tiles are checked
            besides the whole-frame probes.
        images: held-out image files (or ``(path, relative)`` pairs from
            :func:`~sapnet_export.data.images.discover_images`); never calibration sources.
        gt_dir: ground-truth folder for Y-PSNR/SSIM (matched by relative path or file name).
        min_psnr_db: fidelity threshold in dB against PyTorch fp32; None takes the precision's default
            (:data:`~sapnet_export.export.precision.DEFAULT_MIN_PSNR_DB`). For int8 it is also the budget.
        int8: calibration set and quantization options (int8 only).
        force: replace an existing ``output``.
        command: the command line recorded in the metadata (default: this process's argv).
        require_held_out: int8 without ``images`` is an error; False lets it through unmeasured
            (the report says ``"fidelity_measured": false``; the caller must tell the user).
        on_row: called with each measured :class:`~sapnet_export.measure.evaluation.ImageResult`.
        on_trial: called with each int8 variant measured.

    Raises:
        InputError: ``output`` exists without ``force``, bad options, unreadable image, an image that
            is a calibration source, missing ground truth.
        CheckFailed: fidelity below the threshold, NaN/Inf in an output, or an int8 graph breaking
            TensorRT's QDQ rules; nothing is left at ``output``.
    """
    try:
        stages = model.resolve_stages(stages)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    items = [item if isinstance(item, tuple) else (Path(item), Path(Path(item).name)) for item in images]
    _check_options(precision, int8, items, require_held_out, min_psnr_db)
    threshold = DEFAULT_MIN_PSNR_DB[precision] if min_psnr_db is None else min_psnr_db
    output = Path(output)
    report_path = output.with_name(output.name + ".json")
    check_output(output, force=force)
    check_output(report_path)  # a companion: replaced with its model, never a directory
    reference_runner = TorchRunner(model, info, stages=stages, device="cpu")
    exclude = int8.calibration.source_sha256 if int8 else frozenset()
    held_out = prepare_held_out(reference_runner, items, gt_dir, exclude_sha256=exclude,
                                required_hw=static_hw)
    start = time.perf_counter()
    proto = to_onnx_proto(model, stages, opset, static_hw, shared_pooling)
    meta = build_metadata(info, stages, opset, static_hw, command, precision, shared_pooling)
    budget = None
    if precision == "fp16":
        proto, fp32_nodes, clamped = to_fp16(proto, keep_fp32=pooling_nodes(proto))
        meta["fp32_nodes"] = ",".join(fp32_nodes) or "none"
        meta["fp16_clamped_weights"] = str(clamped)
    elif precision == "int8":
        proto, budget = _convert_int8(proto, held_out, int8, min_psnr_db, meta, on_trial)
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.producer_version = "sapnet-export", __version__
    proto.doc_string = "SAPNet derain network: rainy RGB [0,1] NCHW -> derained RGB NCHW"
    with atomic_outputs([output, report_path], force=force) as (tmp, tmp_report):
        onnx.save(proto, str(tmp))
        export_s = time.perf_counter() - start
        runner = profile_runner(int8.profile if int8 else None, tmp)
        probes = evaluate(runner, _probes(reference_runner, static_hw), on_row)
        if shared_pooling:
            probes += _evaluate_tiles(runner, reference_runner, on_row)
        if budget is not None:
            # The chosen variant's graph, already measured on every held-out image; what was written
            # differs only in metadata.
            held = budget.chosen.results
            for row in held if on_row else ():
                on_row(row)
        else:
            held = evaluate(runner, held_out, on_row)
        gated = held if precision == "int8" else probes + held
        failed = [r for r in gated if not r.fidelity.psnr_db >= threshold]
        if failed:
            worst = min(failed, key=lambda r: r.fidelity.psnr_db)
            extra = (f"; even with {', '.join(budget.chosen.float_groups)} kept in float"
                     if budget is not None and budget.chosen.float_groups else "")
            raise CheckFailed(f"{output}: {runner.info.backend} ({precision}) output differs from PyTorch fp32 "
                              f"on {len(failed)} of {len(gated)} inputs (worst {worst.name}: "
                              f"{worst.fidelity.psnr_db:.1f} dB, threshold {threshold:.1f} dB){extra}; "
                              "the file was not written")
        report = _report(meta, probes, held, threshold, export_s, budget, int8)
        report["fidelity_measured"] = bool(held) or precision != "int8"
        report["size_bytes"] = tmp.stat().st_size
        tmp_report.write_text(to_json(report))
    return ExportResult(path=output, report_path=report_path, size_bytes=report["size_bytes"],
                        export_s=export_s, probes=probes, held_out=held, metadata=meta, report=report,
                        budget=budget)
