"""PyTorch -> ONNX export of the derain network (fp32, fp16 or int8), verified against PyTorch before it lands.

:func:`export_onnx` is four named steps, in the spirit of Polygraphy's loaders: export
(:func:`export_graph`: trace, metadata) -> convert (:func:`convert`: fp16, or int8 with its budget) ->
check (:func:`sapnet_export.export.onnx_check.check_fidelity`: ONNX Runtime against PyTorch fp32) ->
write (graph and report renamed into place together); its options are one :class:`ExportOptions`.

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
from pathlib import Path

import onnx
import torch

from sapnet_export import __version__
from sapnet_export.errors import InputError
from sapnet_export.fileio import atomic_outputs, check_output, to_json
from sapnet_export.measure.evaluation import HeldOutImage, ImageResult, prepare_held_out
from sapnet_export.model.checkpoints import WeightsInfo
from sapnet_export.model.network import SAPNet
from sapnet_export.model.onnx_meta import INPUT_NAME, OUTPUT_NAME, POOL_WEIGHTS_NAME, pooling_nodes
from sapnet_export.runners.torch_runner import TorchRunner
from .export_options import (DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ExportOptions, ExportResult, check_options,
                             resolve_options)
from .int8.convert import Int8Options, convert_int8
from .int8.heavy_rain_check import BUILT_IN_SOURCE, heavy_rain_warning, held_out_or_heavy_rain
from .int8.sensitivity import BudgetResult, Trial
from .onnx_check import check_fidelity
from .onnx_report import CONVERSION_REPORT_FORMAT, build_metadata, conversion_report
from .precision import to_fp16

__all__ = ["CONVERSION_REPORT_FORMAT", "DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "ExportOptions",
           "ExportResult", "Int8Options", "convert", "export_graph", "export_onnx", "to_onnx_proto"]



class _StagesWrapper(torch.nn.Module):
    """Fixes the stage count so the exported graph takes only the image (and, for a shared-pooling
    export, the pool weights)."""

    def __init__(self, model: SAPNet, stages: int) -> None:
        super().__init__()
        self.model, self.stages = model, stages

    def forward(self, rainy: torch.Tensor, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(rainy, stages=self.stages, pool_weights=pool_weights)


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


def export_graph(model: SAPNet, info: WeightsInfo, stages: int, options: ExportOptions,
                 command: str | None = None) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Step 1: the fp32 graph (:func:`to_onnx_proto`) and its metadata
    (:func:`~sapnet_export.export.onnx_report.build_metadata`)."""
    proto = to_onnx_proto(model, stages, options.opset, options.static_hw, options.shared_pooling)
    meta = build_metadata(info, stages, options.opset, options.static_hw, command, options.precision,
                          options.shared_pooling)
    return proto, meta


def convert(proto: onnx.ModelProto, meta: dict[str, str], options: ExportOptions,
            held_out: list[HeldOutImage],
            on_trial: Callable[[Trial], None] | None = None) -> tuple[onnx.ModelProto, BudgetResult | None]:
    """Step 2: convert the fp32 graph to ``options.precision`` (fp16: :func:`to_fp16` with the pooling
    nodes kept float; int8: quantized to meet the budget on ``held_out``) and record it in ``meta``.

    Returns:
        (the converted graph, the int8 search or None).
    """
    if options.precision == "fp16":
        proto, fp32_nodes, clamped = to_fp16(proto, keep_fp32=pooling_nodes(proto))
        meta["fp32_nodes"] = ",".join(fp32_nodes) or "none"
        meta["fp16_clamped_weights"] = str(clamped)
    elif options.precision == "int8":
        return convert_int8(proto, held_out, options.int8, options.min_psnr_db, meta, on_trial)
    return proto, None


def _stamp_graph(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Write ``meta`` into the graph's ``metadata_props``, with the producer and a one-line description."""
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.producer_version = "sapnet-export", __version__
    proto.doc_string = "SAPNet derain network: rainy RGB [0,1] NCHW -> derained RGB NCHW"


def export_onnx(model: SAPNet, info: WeightsInfo, output: str | os.PathLike,
                options: ExportOptions | None = None, *,
                images: Sequence[Path | tuple[Path, Path]] = (), gt_dir: Path | None = None,
                force: bool = False, command: str | None = None,
                on_row: Callable[[ImageResult], None] | None = None,
                on_trial: Callable[[Trial], None] | None = None, **option_fields) -> ExportResult:
    """Export ``model`` to ONNX at ``output`` (fp32, fp16 or int8), verify it, then move it into place
    with its JSON report ``<output>.json``: :func:`export_graph` -> :func:`convert` -> check
    (:func:`~sapnet_export.export.onnx_check.check_fidelity`) -> write.

    The graph and the report are written to temporary names beside ``output``. ONNX Runtime (CPU;
    OpenVINO for the ``openvino`` QDQ profile) runs the graph on random probes and on the held-out ``images``; PyTorch fp32 is the reference. fp32 and
    fp16: every input must reach the threshold. int8: the held-out images must (the probes, random
    noise, are reported only); with ``min_psnr_db`` given, groups are kept in float until they do
    (:func:`sapnet_export.export.int8.sensitivity.meet_budget`). Only then are both files renamed into place.

    Args:
        model, info: the network and its weights' provenance (:func:`~sapnet_export.model.checkpoints.load_weights`).
        output: destination ``.onnx`` path.
        options: :class:`ExportOptions`; its fields may also be given as keyword arguments
            (``precision="fp16"``), which replace those of ``options``.
        images: held-out image files (or ``(path, relative)`` pairs from
            :func:`~sapnet_export.data.images.discover_images`); never calibration sources.
        gt_dir: ground-truth folder for Y-PSNR/SSIM (matched by relative path or file name).
        force: replace an existing ``output``.
        command: the command line recorded in the metadata (default: this process's argv).
        on_row: called with each measured :class:`~sapnet_export.measure.evaluation.ImageResult`.
        on_trial: called with each int8 variant measured.

    Raises:
        InputError: ``output`` exists without ``force``, bad options, unreadable image, an image that
            is a calibration source, missing ground truth, an unknown keyword argument.
        CheckFailed: fidelity below the threshold, NaN/Inf in an output, or an int8 graph breaking
            TensorRT's QDQ rules; nothing is left at ``output``.
    """
    options, stages, items = resolve_options(model, info, options, option_fields, images)
    built_in = options.precision == "int8" and options.int8 is not None and options.heavy_rain_check
    size = (options.static_hw or tuple(int(v) for v in options.int8.calibration.frames.shape[2:])) if built_in else None
    with held_out_or_heavy_rain(items, gt_dir, size) as held:
        check_options(options, held[0])
        return _export_checked(model, info, output, options, stages, held, force, command, on_row, on_trial)


def _export_checked(model: SAPNet, info: WeightsInfo, output: str | os.PathLike, options: ExportOptions,  # noqa: PLR0913
                    stages: int, held: tuple, force: bool, command: str | None,
                    on_row: Callable[[ImageResult], None] | None,
                    on_trial: Callable[[Trial], None] | None) -> ExportResult:
    """:func:`export_onnx` once its held-out images are known: ``held`` is ``(items, gt_dir, source)``
    (:func:`~sapnet_export.export.int8.heavy_rain_check.held_out_or_heavy_rain`)."""
    items, gt_dir, source = held
    gate = source != BUILT_IN_SOURCE or options.min_psnr_db is not None
    output = Path(output)
    report_path = output.with_name(output.name + ".json")
    check_output(output, force=force)
    check_output(report_path)  # a companion: replaced with its model, never a directory
    reference_runner = TorchRunner(model, info, stages=stages, device="cpu")
    exclude = options.int8.calibration.source_sha256 if options.int8 else frozenset()
    held_out = prepare_held_out(reference_runner, items, gt_dir, exclude_sha256=exclude,
                                required_hw=options.static_hw)
    start = time.perf_counter()
    proto, meta = export_graph(model, info, stages, options, command)
    proto, budget = convert(proto, meta, options, held_out, on_trial)
    _stamp_graph(proto, meta)
    with atomic_outputs([output, report_path], force=force) as (tmp, tmp_report):
        onnx.save(proto, str(tmp))
        export_s = time.perf_counter() - start
        probes, held = check_fidelity(tmp, reference_runner, held_out, precision=options.precision,
                                      profile=options.int8.profile if options.int8 else None,
                                      threshold=options.threshold_db, static_hw=options.static_hw,
                                      shared_pooling=options.shared_pooling, budget=budget, output=output,
                                      on_row=on_row, gate_held_out=gate)
        report = conversion_report(meta, probes, held, options.threshold_db, export_s, budget, options.int8)
        report["fidelity_measured"] = bool(held) or options.precision != "int8"
        report["held_out"]["source"] = source
        if not gate:
            report["held_out"]["warning"] = heavy_rain_warning(held, options.threshold_db)
        report["size_bytes"] = tmp.stat().st_size
        tmp_report.write_text(to_json(report))
    return ExportResult(path=output, report_path=report_path, size_bytes=report["size_bytes"],
                        export_s=export_s, probes=probes, held_out=held, metadata=meta, report=report,
                        budget=budget)
