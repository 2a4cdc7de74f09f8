"""The forms of the model under test (``verify`` arguments, ``bench`` formats): :class:`Target`, how one is
opened, and its entry in the report (format :data:`sapnet_export.verify.parity.REPORT_FORMAT`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sapnet_export.engine.inspection import ENGINE_SUFFIXES, ONNX_SUFFIXES
from sapnet_export.errors import InputError
from sapnet_export.measure.evaluation import QUALITY_KEYS, ImageResult, quality_json
from sapnet_export.measure.latency import Latency
from sapnet_export.runners import create_runner
from sapnet_export.runners.base import Runner
from sapnet_export.runners.triton_runner import is_triton_url

#: Backends that run ONNX files (``verify --backend``).
ONNX_BACKENDS = ("onnxruntime", "openvino")


@dataclass
class Target:
    """One form of the model under test.

    Attributes:
        name: label for tables (e.g. ``onnxruntime int8 (sapnet_int8.onnx)``).
        runner: its Runner; None once it failed.
        file: the model file (None for ``torch``); ``size_bytes`` its size.
        status: ``ok``, ``failed_gate`` or ``failed``; ``reason`` says why when not ok.
        rows: per-image report rows (see :func:`verify_targets`); ``results``: the same as
            :class:`~sapnet_export.measure.evaluation.ImageResult` (what :func:`summarize_target` sums).
        is_reference: the target is the reference Runner itself (bench's ``torch`` row).
        device, threads, versions, settings: from the Runner's info (kept when the Runner is dropped).
        latency: one :class:`~sapnet_export.measure.latency.Latency` per size measured.
    """

    name: str
    runner: Runner | None
    file: Path | None = None
    size_bytes: int | None = None
    status: str = "ok"
    reason: str | None = None
    backend: str = ""
    precision: str = ""
    rows: list[dict] = field(default_factory=list)
    results: list[ImageResult] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    is_reference: bool = False
    device: str | None = None
    threads: int | None = None
    versions: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    foreign_model: str | None = None

    def __post_init__(self) -> None:
        if self.runner is not None:
            info = self.runner.info
            self.backend = self.backend or info.backend
            self.precision = self.precision or info.precision
            self.device, self.threads, self.versions = info.device, info.threads, dict(info.versions)
            self.settings = dict(info.settings)
            self.foreign_model = info.foreign_model

    def fail(self, reason: str) -> None:
        """Mark the target failed (it is not run again)."""
        self.status, self.reason, self.runner = "failed", reason, None


def open_target(spec: str, *, weights: str, stages: int | None, device: str | None = None,
                onnx_backend: str = "onnxruntime", precision: str | None = None,
                force_bf16: bool = False, allow_foreign_model: bool = False) -> Target:
    """A :class:`Target` from a ``verify`` argument: ``torch``, an ONNX file, an engine or a served
    model's URL (``grpc://HOST:PORT/NAME``, ``http://...``: the ``triton`` backend).

    Args:
        onnx_backend: what runs ONNX files, ``onnxruntime`` or ``openvino``.
        precision, force_bf16: for ONNX files (:func:`~sapnet_export.runners.create_runner`), e.g.
            ``bf16`` with OpenVINO.

    Raises:
        InputError: unknown kind of file, or the backend's errors (missing file, no GPU for an
            engine, a sidecar that does not match this runtime).
    """
    if spec == "torch":
        runner = create_runner("torch", weights=weights, stages=stages, device=device)
        return Target(name="torch fp32", runner=runner)
    if is_triton_url(spec):  # a served model: grpc://HOST:PORT/NAME, http://...
        runner = create_runner("triton", model=spec, stages=stages)
        return Target(name=f"triton {runner.info.precision} ({spec})", runner=runner)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        if onnx_backend not in ONNX_BACKENDS:
            raise InputError(f"--backend {onnx_backend}: ONNX targets run with {' or '.join(ONNX_BACKENDS)}")
        runner = create_runner(onnx_backend, model=spec, stages=stages, device=device, precision=precision,
                               force_bf16=force_bf16, allow_foreign_model=allow_foreign_model)
    elif suffix in ENGINE_SUFFIXES:
        runner = create_runner("tensorrt", model=spec, stages=stages, device=device,
                               allow_foreign_model=allow_foreign_model)
    else:
        raise InputError(f"{spec}: a target is 'torch', an ONNX file ({', '.join(ONNX_SUFFIXES)}) or an "
                         f"engine ({', '.join(ENGINE_SUFFIXES)})")
    info = runner.info
    foreign = " FOREIGN MODEL" if info.foreign_model else ""
    return Target(name=f"{info.backend} {info.precision} ({path.name}){foreign}", runner=runner, file=path,
                  size_bytes=path.stat().st_size)


def check_stages(reference: Runner, targets: list[Target]) -> None:
    """Refuse targets whose stage count (ONNX metadata, engine sidecar) differs from the reference's:
    a K-stage model compared with the 6-stage reference fails on stages, not on fidelity.

    Raises:
        InputError: the first mismatch, naming both counts and the ``--stages`` that compares them.
    """
    for target in targets:
        stages = target.runner.info.stages if target.runner is not None else 0
        if stages and stages != reference.info.stages:
            raise InputError(f"{target.file or target.name}: runs {stages} stages (its metadata), the "
                             f"reference runs {reference.info.stages} ({reference.info.model}); compare "
                             f"like with like: pass --stages {stages}")


def check_weights(weights_sha256: str, weights_name: str, targets: list[Target]) -> None:
    """Refuse ONNX targets exported from other weights than the reference's: their ONNX metadata
    records the checkpoint's sha256 (``checkpoint_sha256``, docs/formats.md; the Runner read it when it
    opened the file, :class:`~sapnet_export.runners.onnx_file.OnnxFileRunner`), and a fidelity against
    another network's output measures nothing. Files without that record (not the toolkit's) pass.

    Raises:
        InputError: the first mismatch, naming both checkpoints and the ``--weights`` that matches.
    """
    for target in targets:
        recorded = getattr(target.runner, "checkpoint_sha256", None)
        if recorded and recorded != weights_sha256:
            source = target.runner.checkpoint or "the checkpoint it was exported from"
            raise InputError(f"{target.file or target.name}: exported from {source} (weights sha256 "
                             f"{recorded[:12]}), the reference runs {weights_name} (sha256 "
                             f"{weights_sha256[:12]}); compare like with like: pass --weights {source}")


def _quality_row(prefix: str, score) -> dict:  # noqa: ANN001 - Quality | None
    scores = quality_json(score) or {}
    return {f"{prefix}{name}": scores.get(name) for name in QUALITY_KEYS}


def image_row(result: ImageResult, gt_path: Path | None) -> dict:
    """A report's ``per_image`` entry from an :class:`~sapnet_export.measure.evaluation.ImageResult`."""
    row = {"name": result.name, "shape": list(result.shape), "fidelity_psnr_db": result.fidelity.psnr_db,
           "max_abs_u8": result.fidelity.max_abs_u8, "changed_pixels": result.fidelity.changed_pixels,
           "ground_truth": str(gt_path) if gt_path is not None else None}
    row.update(_quality_row("", result.quality))
    row.update(_quality_row("reference_", result.reference_quality))
    return row


def target_json(target: Target, summary: dict) -> dict:
    """One entry of the report's ``targets`` list: the target, its held-out ``summary``
    (:func:`summarize_target`), ``gates``, ``latency_ms``/``latency_by_size`` and ``per_image``."""
    latency = [lat.to_json() for lat in target.latency]
    return {
        "name": target.name, "backend": target.backend, "precision": target.precision,
        "device": target.device, "threads": target.threads, "versions": target.versions,
        "settings": target.settings,
        "file": str(target.file) if target.file else None,
        "size_mb": target.size_bytes / 1e6 if target.size_bytes is not None else None,
        "status": target.status, "reason": target.reason, "is_reference": target.is_reference,
        "foreign_model": target.foreign_model,
        **summary,
        "gates": target.gates,
        "latency_ms": latency[0] if latency else None, "latency_by_size": latency,
        "per_image": target.rows,
    }
