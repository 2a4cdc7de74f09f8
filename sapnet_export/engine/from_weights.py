"""Weights -> ONNX -> engine in one call: what ``sapnet-export trt --weights`` does.

The ONNX is exported (and converted, and checked against PyTorch fp32) beside the engine as
``OUTPUT.onnx`` by :func:`~sapnet_export.export.onnx_export.export_onnx`, then built by
:func:`~sapnet_export.engine.build.build_engine`; the sidecar records the checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.export.onnx_export import ExportOptions, ExportResult, export_onnx
from sapnet_export.fileio import check_output
from sapnet_export.model.checkpoints import WeightsInfo
from sapnet_export.model.network import SAPNet
from .build import BuildOptions, EngineResult, build_engine
from .sidecar import sidecar_path


def exported_onnx_path(output: str | os.PathLike) -> Path:
    """Where :func:`export_and_build` puts the ONNX of engine ``output``: ``OUTPUT.onnx``."""
    return Path(output).with_suffix(".onnx")


def check_outputs(output: str | os.PathLike, options: BuildOptions, *, force: bool = False) -> None:
    """Refuse, before any work, outputs of :func:`export_and_build` that cannot be written: the engine,
    its sidecar, the timing cache, the ONNX and its report.

    Raises:
        InputError: naming the file; an existing ONNX without ``force`` says to build from it.
    """
    output = Path(output)
    check_output(output, force=force, option="--output")
    check_output(sidecar_path(output), option="--output (its sidecar)")
    if options.timing_cache is not None:
        check_output(options.timing_cache, option="--timing-cache")
    onnx_path = exported_onnx_path(output)
    if onnx_path.exists() and not force:
        raise InputError(f"{onnx_path}: the ONNX this command exports already exists; build from it "
                         "with --onnx, or pass --force to export again")
    check_output(onnx_path, force=force, option="--output (the ONNX exported first)")
    check_output(onnx_path.with_suffix(".onnx.json"), option="--output (the ONNX's report)")


def export_and_build(model: SAPNet, info: WeightsInfo, output: str | os.PathLike, export: ExportOptions,
                     build: BuildOptions, *, images: Sequence[Path | tuple[Path, Path]] = (),
                     force: bool = False,
                     on_exported: Callable[[ExportResult], None] | None = None) -> tuple[ExportResult, EngineResult]:
    """Export ``model`` at ``export.precision`` (fp32, fp16, int8 with ``export.int8``) to
    ``OUTPUT.onnx``, checked against PyTorch fp32 on random probes and the held-out ``images``, then
    build the engine ``output`` from it with ``build`` (the graph must keep the precision and stages
    asked for). ``on_exported`` is called between the two steps.

    Returns:
        (the export's :class:`~sapnet_export.export.onnx_export.ExportResult`, the build's
        :class:`~sapnet_export.engine.build.EngineResult`).

    Raises:
        InputError: see :func:`check_outputs`, :func:`~sapnet_export.export.onnx_export.export_onnx`
            and :func:`~sapnet_export.engine.build.build_engine`.
        CheckFailed: the ONNX misses its fidelity threshold (nothing is built), or
            :class:`~sapnet_export.engine.build.BuildFailed`.
    """
    check_outputs(output, build, force=force)
    exported = export_onnx(model, info, exported_onnx_path(output), export, images=images, force=force)
    if on_exported is not None:
        on_exported(exported)
    engine = build_engine(exported.path, output, build, force=force,
                          checkpoint={"name": info.name, "path": str(info.path), "sha256": info.sha256},
                          expect_precision=export.precision if export.precision != "fp32" else None,
                          expect_stages=export.stages)
    return exported, engine
