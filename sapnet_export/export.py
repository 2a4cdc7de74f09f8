"""PyTorch -> ONNX export of the derain network (fp32 or fp16), verified against PyTorch before it lands.

The exporter is PyTorch's TorchScript-based ``torch.onnx.export(dynamo=False)``. Measured here with the
published checkpoint (torch 2.13): it exports in about a second to one file (0.87 MB of graph and
weights; 0.96 MB once shapes and metadata are added) at exactly the opset asked, with ``GlobalAveragePool`` for CRA and the 62 weights shared by the 276 Conv nodes; the
dynamo exporter took 12 s, wrote 1.7 MB and bumped opset 17 to 18.
"""

from __future__ import annotations

import io
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from .errors import CheckFailed, InputError
from .fileio import atomic_output
from .images import read_image
from .metrics import fidelity
from .model import SAPNet
from .onnx_meta import INPUT_NAME, OUTPUT_NAME
from .precision import DEFAULT_MIN_PSNR_DB, PRECISIONS, to_fp16
from .weights import WeightsInfo

#: Lowest opset accepted (what TensorRT and TensorRT-RTX parse; see DESIGN.md section 3).
MIN_OPSET = 17
#: Highest opset the TorchScript exporter writes.
MAX_OPSET = 20
DEFAULT_OPSET = 17


class _StagesWrapper(torch.nn.Module):
    """Fixes the stage count so the exported graph takes only the image."""

    def __init__(self, model: SAPNet, stages: int) -> None:
        super().__init__()
        self.model, self.stages = model, stages

    def forward(self, rainy: torch.Tensor) -> torch.Tensor:
        return self.model(rainy, stages=self.stages)


@dataclass(frozen=True)
class ParityRow:
    """One input run by both PyTorch and ONNX Runtime during an export's self-check.

    Attributes:
        name: ``probe NxCxHxW`` or the image path.
        shape: the input's [N, 3, H, W].
        max_abs: largest absolute difference of the raw (unclipped) float32 outputs.
        psnr_db: fidelity PSNR (dB, clipped to [0, 1], peak 1; ``inf`` if identical).
        torch_s, onnxruntime_s: seconds each backend took for this input.
    """

    name: str
    shape: tuple[int, ...]
    max_abs: float
    psnr_db: float
    torch_s: float
    onnxruntime_s: float


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote: the file, its size in bytes, seconds spent exporting and
    converting (without the self-check), the self-check rows and the metadata stored in the model
    (for fp16 it includes ``fp32_nodes`` and ``fp16_clamped_weights``)."""

    path: Path
    size_bytes: int
    export_s: float
    parity: list[ParityRow]
    metadata: dict[str, str]


def parse_hw(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``480x640``) into ``(H, W)``; InputError unless both are positive integers."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"{text!r}: expected HxW with positive integers, e.g. 480x640")
    return int(parts[0]), int(parts[1])


def _probe_inputs(static_hw: tuple[int, int] | None) -> list[tuple[str, np.ndarray]]:
    """Deterministic random probes: two shapes for a dynamic export (to prove N, H, W are free)."""
    rng = np.random.default_rng(0)
    shapes = [(1, 3, *static_hw)] if static_hw else [(1, 3, 64, 64), (2, 3, 37, 53)]
    return [(f"probe {'x'.join(map(str, s))}", rng.random(s, dtype=np.float32)) for s in shapes]


def build_metadata(info: WeightsInfo, stages: int, opset: int, static_hw: tuple[int, int] | None,
                   command: str, precision: str = "fp32") -> dict[str, str]:
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
        "input_layout": "NCHW, RGB",
        "input_range": "float32 in [0, 1]",
        "output_range": "float32, not clipped; clip to [0, 1]",
        "shape": "static " + "x".join(map(str, (1, 3, *static_hw))) if static_hw else "dynamic N, H, W",
        "opset": str(opset),
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "sapnet_export_version": __version__,
        "command": command,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def to_onnx_proto(model: SAPNet, stages: int, opset: int,
                  static_hw: tuple[int, int] | None) -> onnx.ModelProto:
    """Trace ``model`` at ``stages`` into an ONNX model (checked, shapes inferred).

    The graph: input ``rainy`` float32 [N, 3, H, W], output ``derained`` float32 [N, 3, H, W];
    N, H, W are symbolic unless ``static_hw`` fixes [1, 3, H, W].

    Raises:
        InputError: ``opset`` outside ``MIN_OPSET..MAX_OPSET``.
        onnx.checker.ValidationError: the traced graph is invalid (a bug, not a user error).
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"--opset {opset}: choose {MIN_OPSET}..{MAX_OPSET}")
    wrapper = _StagesWrapper(model.eval(), stages)
    example = torch.rand(1, 3, *(static_hw or (64, 64)))
    axes = None if static_hw else {INPUT_NAME: {0: "N", 2: "H", 3: "W"},
                                   OUTPUT_NAME: {0: "N", 2: "H", 3: "W"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(wrapper, (example,), buffer, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset, dynamic_axes=axes,
                          do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_parity(model: SAPNet, info: WeightsInfo, stages: int, onnx_path: Path,
                 images: Sequence[Path], static_hw: tuple[int, int] | None,
                 on_row: Callable[[ParityRow], None] | None = None) -> list[ParityRow]:
    """Run the PyTorch Runner (fp32, CPU) and the ONNX Runtime Runner (CPU provider) on the probes
    and ``images``.

    Raises:
        InputError: an image cannot be read, or does not have the static size of a static export.
    """
    from .runners.onnxruntime_runner import OnnxRuntimeRunner
    from .runners.torch_runner import TorchRunner

    reference_runner = TorchRunner(model, info, stages=stages, device="cpu")
    runner = OnnxRuntimeRunner(onnx_path, device="cpu")
    inputs = _probe_inputs(static_hw)
    for path in images:
        image = read_image(path)[None]
        if static_hw and image.shape[2:] != static_hw:
            raise InputError(f"{path}: {image.shape[2]}x{image.shape[3]} image, but the export is "
                             f"static {static_hw[0]}x{static_hw[1]}")
        inputs.append((str(path), image))
    rows = []
    for name, batch in inputs:
        start = time.perf_counter()
        reference = reference_runner.run(batch)
        middle = time.perf_counter()
        output = runner.run(batch)
        end = time.perf_counter()
        row = ParityRow(name=name, shape=tuple(batch.shape),
                        max_abs=float(np.max(np.abs(reference - output))),
                        psnr_db=fidelity(reference, output).psnr_db,
                        torch_s=middle - start, onnxruntime_s=end - middle)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def export_onnx(model: SAPNet, info: WeightsInfo, output: str | os.PathLike, *,
                stages: int | None = None, opset: int = DEFAULT_OPSET, precision: str = "fp32",
                static_hw: tuple[int, int] | None = None, images: Sequence[Path] = (),
                min_psnr_db: float | None = None, force: bool = False,
                command: str | None = None,
                on_row: Callable[[ParityRow], None] | None = None) -> ExportResult:
    """Export ``model`` to ONNX at ``output``, verify it, and only then move it into place.

    The file is written to a temporary name beside ``output``; :func:`check_parity` runs PyTorch and
    ONNX Runtime on the probes and every image; if every input's PSNR reaches ``min_psnr_db`` the file
    is renamed to ``output``, otherwise it is deleted.

    Args:
        model, info: the network and its weights' provenance (:func:`~sapnet_export.weights.load_weights`).
        output: destination ``.onnx`` path.
        stages: stages to export (1..``model.stages``; None: all).
        opset: ONNX opset, ``MIN_OPSET..MAX_OPSET``.
        precision: ``fp32``, or ``fp16`` (float16 compute, float32 graph I/O;
            :func:`~sapnet_export.precision.to_fp16`).
        static_hw: fix the input to [1, 3, H, W]; None keeps N, H, W dynamic.
        images: image files to check parity on, besides the random probes.
        min_psnr_db: fidelity threshold in dB against PyTorch fp32, applied to every input; None
            takes the precision's default (fp32 80 dB, fp16 60 dB).
        force: replace an existing ``output``.
        command: the command line recorded in the metadata (default: this process's argv).
        on_row: called with each :class:`ParityRow` as it is measured.

    Raises:
        InputError: ``output`` exists without ``force``, bad stages/opset/precision, unreadable image.
        CheckFailed: an input's fidelity is below ``min_psnr_db`` (nothing is left at ``output``).
    """
    try:
        stages = model.resolve_stages(stages)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if min_psnr_db is None:
        min_psnr_db = DEFAULT_MIN_PSNR_DB[precision]
    output = Path(output)
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    start = time.perf_counter()
    proto = to_onnx_proto(model, stages, opset, static_hw)
    meta = build_metadata(info, stages, opset, static_hw, command, precision)
    if precision == "fp16":
        proto, fp32_nodes, clamped = to_fp16(proto)
        meta["fp32_nodes"] = ",".join(fp32_nodes) or "none"
        meta["fp16_clamped_weights"] = str(clamped)
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.producer_version = "sapnet-export", __version__
    proto.doc_string = "SAPNet derain network: rainy RGB [0,1] NCHW -> derained RGB NCHW"
    with atomic_output(output, force=force) as tmp:
        onnx.save(proto, str(tmp))
        export_s = time.perf_counter() - start
        rows = check_parity(model, info, stages, tmp, images, static_hw, on_row)
        failed = [r for r in rows if not r.psnr_db >= min_psnr_db]
        if failed:
            worst = min(failed, key=lambda r: r.psnr_db)
            raise CheckFailed(f"{output}: ONNX Runtime ({precision}) output differs from PyTorch fp32 "
                              f"on {len(failed)} of "
                              f"{len(rows)} inputs (worst {worst.name}: {worst.psnr_db:.1f} dB, "
                              f"threshold {min_psnr_db:.1f} dB); the file was not written")
        size = tmp.stat().st_size
    return ExportResult(path=output, size_bytes=size, export_s=export_s, parity=rows, metadata=meta)

