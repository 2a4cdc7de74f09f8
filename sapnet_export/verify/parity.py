"""Quality parity of deployed models against the PyTorch fp32 reference, with gates (``verify``, ``bench``).

Conventions (docs/design.md section 6): fidelity is the PSNR of a target's output against the reference's
(float, clipped to [0, 1], peak 1) with the largest uint8 difference and the share of changed pixels
(:func:`sapnet_export.measure.fidelity.fidelity`); quality against ground truth is Y-PSNR/Y-SSIM (MPRNet
convention) and RGB PSNR/SSIM (:func:`sapnet_export.measure.quality.quality`). Images are streamed: one is read,
run by the reference and every target, scored, and dropped, so memory does not grow with the folder.

Gates, per target:
- fidelity: mean PSNR over the images >= ``min_psnr`` (default by precision:
  :data:`sapnet_export.export.precision.DEFAULT_MIN_PSNR_DB`, the same table ``onnx`` uses); the worst
  image is reported;
- quality drop (with ground truth): mean Y-PSNR of the target minus that of the reference >=
  ``-max_quality_drop`` (default 0.5 dB); the image with the largest drop is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sapnet_export.errors import InputError, SapnetError
from sapnet_export.export.precision import DEFAULT_MIN_PSNR_DB
from sapnet_export.measure.evaluation import ImageResult, evaluate, load_held_out_image
from sapnet_export.data.images import read_image
from sapnet_export.engine.inspection import ENGINE_SUFFIXES, ONNX_SUFFIXES
from sapnet_export.measure.latency import Latency, measure_latency
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.runners import create_runner
from sapnet_export.runners.base import Runner
from sapnet_export.runners.triton_runner import is_triton_url

#: Backends that run ONNX files (``verify --backend``).
ONNX_BACKENDS = ("onnxruntime", "openvino")
#: Largest allowed drop of mean Y-PSNR (dB) against ground truth, target vs reference.
DEFAULT_MAX_QUALITY_DROP_DB = 0.5
QUALITY_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


@dataclass
class Target:
    """One form of the model under test.

    Attributes:
        name: label for tables (e.g. ``onnxruntime int8 (sapnet_int8.onnx)``).
        runner: its Runner; None once it failed.
        file: the model file (None for ``torch``); ``size_bytes`` its size.
        status: ``ok``, ``failed_gate`` or ``failed``; ``reason`` says why when not ok.
        rows: per-image results (see :func:`verify_targets`).
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
    latency: list[Latency] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    is_reference: bool = False
    device: str | None = None
    threads: int | None = None
    versions: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runner is not None:
            info = self.runner.info
            self.backend = self.backend or info.backend
            self.precision = self.precision or info.precision
            self.device, self.threads, self.versions = info.device, info.threads, dict(info.versions)
            self.settings = dict(info.settings)

    def fail(self, reason: str) -> None:
        """Mark the target failed (it is not run again)."""
        self.status, self.reason, self.runner = "failed", reason, None


def open_target(spec: str, *, weights: str, stages: int | None, device: str | None = None,
                onnx_backend: str = "onnxruntime", precision: str | None = None,
                force_bf16: bool = False) -> Target:
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
                               force_bf16=force_bf16)
    elif suffix in ENGINE_SUFFIXES:
        runner = create_runner("tensorrt", model=spec, stages=stages, device=device)
    else:
        raise InputError(f"{spec}: a target is 'torch', an ONNX file ({', '.join(ONNX_SUFFIXES)}) or an "
                         f"engine ({', '.join(ENGINE_SUFFIXES)})")
    info = runner.info
    return Target(name=f"{info.backend} {info.precision} ({path.name})", runner=runner, file=path,
                  size_bytes=path.stat().st_size)


def _quality_row(prefix: str, score) -> dict:  # noqa: ANN001 - Quality | None
    keys = ("y_psnr_db", "y_ssim", "rgb_psnr_db", "rgb_ssim")
    return {f"{prefix}{name}": (getattr(score, key) if score is not None else None)
            for name, key in zip(QUALITY_KEYS, keys)}


def verify_targets(reference: Runner, targets: Sequence[Target],
                   items: Sequence[tuple[Path, Path | None]],
                   on_image: Callable[[int, str], None] | None = None) -> None:
    """Run the reference and every target on every image and append per-image rows to each target.

    Args:
        reference: the PyTorch fp32 Runner.
        targets: the forms under test (a target may share the reference's Runner: its outputs are then
            the reference's, not run twice); a target whose Runner raises or outputs NaN/Inf is marked
            ``failed`` with the image and the error, and skipped afterwards.
        items: ``(image path, ground-truth path or None)``.
        on_image: called with (index, image name) after each image.

    Raises:
        InputError: an image or ground truth cannot be read, or their sizes differ.
    """
    for index, (path, gt_path) in enumerate(items, 1):
        item = load_held_out_image(reference, path, gt_path)
        for target in targets:
            if target.runner is None:
                continue
            if target.runner is reference:  # the reference itself: nothing to run or score again
                result = ImageResult(name=item.name, shape=item.image.shape,
                                     fidelity=fidelity(item.reference, item.reference), seconds=0.0,
                                     quality=item.reference_quality,
                                     reference_quality=item.reference_quality)
            else:
                try:
                    (result,) = evaluate(target.runner, [item])
                except (SapnetError, RuntimeError, ValueError) as exc:
                    target.fail(f"{path.name}: {exc}")
                    continue
            target.rows.append(_row(result, gt_path))
        if on_image:
            on_image(index, str(path))


def _row(result: ImageResult, gt_path: Path | None) -> dict:
    """A report's ``per_image`` entry from an :class:`~sapnet_export.measure.evaluation.ImageResult`."""
    row = {"name": result.name, "shape": list(result.shape), "fidelity_psnr_db": result.fidelity.psnr_db,
           "max_abs_u8": result.fidelity.max_abs_u8, "changed_pixels": result.fidelity.changed_pixels,
           "ground_truth": str(gt_path) if gt_path is not None else None}
    row.update(_quality_row("", result.quality))
    row.update(_quality_row("reference_", result.reference_quality))
    return row


def summarize_target(target: Target) -> dict:
    """``fidelity``, ``quality`` and ``reference_quality`` of the report (means over images; quality
    over the images that have ground truth, None when none do)."""
    rows = target.rows
    if not rows:
        return {"fidelity": None, "quality": None, "reference_quality": None}
    psnrs = [r["fidelity_psnr_db"] for r in rows]
    summary = {"fidelity": {"psnr_mean_db": statistics.fmean(psnrs), "psnr_min_db": min(psnrs),
                            "max_abs_u8": max(r["max_abs_u8"] for r in rows),
                            "changed_pixels": statistics.fmean(r["changed_pixels"] for r in rows)}}
    scored = [r for r in rows if r["psnr_y"] is not None]
    for prefix, key in (("", "quality"), ("reference_", "reference_quality")):
        summary[key] = ({name: statistics.fmean(r[f"{prefix}{name}"] for r in scored)
                         for name in QUALITY_KEYS} if scored else None)
    summary["images_with_ground_truth"] = len(scored)
    return summary


def apply_gates(target: Target, summary: dict, min_psnr_db: float | None,
                max_quality_drop_db: float) -> None:
    """Evaluate the fidelity and quality-drop gates; set ``target.gates`` and, on a miss,
    ``status = "failed_gate"`` with the reason naming the gate and the worst image."""
    if target.status == "failed" or summary["fidelity"] is None:
        return
    threshold = min_psnr_db if min_psnr_db is not None else DEFAULT_MIN_PSNR_DB.get(target.precision, 80.0)
    worst = min(target.rows, key=lambda r: r["fidelity_psnr_db"])
    mean = summary["fidelity"]["psnr_mean_db"]
    target.gates.append({"gate": "fidelity", "threshold_db": threshold, "value_db": mean,
                         "passed": mean >= threshold, "worst_image": worst["name"],
                         "worst_value_db": worst["fidelity_psnr_db"]})
    if summary["quality"] is not None:
        scored = [r for r in target.rows if r["psnr_y"] is not None]
        drop = summary["quality"]["psnr_y"] - summary["reference_quality"]["psnr_y"]
        worst_q = min(scored, key=lambda r: r["psnr_y"] - r["reference_psnr_y"])
        target.gates.append({"gate": "quality_drop", "threshold_db": -max_quality_drop_db,
                             "value_db": drop, "passed": drop >= -max_quality_drop_db,
                             "worst_image": worst_q["name"],
                             "worst_value_db": worst_q["psnr_y"] - worst_q["reference_psnr_y"]})
    failed = [g for g in target.gates if not g["passed"]]
    if failed:
        target.status = "failed_gate"
        target.reason = "; ".join(_describe_gate(g) for g in failed)


def _describe_gate(gate: dict) -> str:
    if gate["gate"] == "fidelity":
        return (f"fidelity mean {gate['value_db']:.2f} dB < {gate['threshold_db']:.1f} dB (worst "
                f"{Path(gate['worst_image']).name}: {gate['worst_value_db']:.2f} dB)")
    return (f"Y-PSNR drop {gate['value_db']:+.3f} dB beyond {gate['threshold_db']:+.2f} dB (worst "
            f"{Path(gate['worst_image']).name}: {gate['worst_value_db']:+.3f} dB)")


def measure_targets(reference: Runner | None, targets: Sequence[Target], sizes: Sequence[tuple[int, int]],
                    *, runs: int, duration_s: float | None,
                    on_done: Callable[[str, Latency], None] | None = None) -> list[Latency]:
    """Latency of the reference (returned) and of every target still running (stored on it), per size.
    A target whose Runner fails here (e.g. a size outside an engine's profile) is marked failed."""
    reference_latency = []
    for size in sizes:
        if reference is not None:
            reference_latency.append(measure_latency(reference, size, runs=runs, duration_s=duration_s))
            if on_done:
                on_done("reference", reference_latency[-1])
        for target in targets:
            if target.runner is None:
                continue
            if target.runner is reference and reference_latency:
                target.latency.append(reference_latency[-1])  # the same Runner: measured once
                continue
            try:
                target.latency.append(measure_latency(target.runner, size, runs=runs,
                                                      duration_s=duration_s))
            except (SapnetError, RuntimeError) as exc:
                target.fail(f"latency at {size[0]}x{size[1]}: {exc}")
                continue
            if on_done:
                on_done(target.name, target.latency[-1])
    return reference_latency


def target_json(target: Target, summary: dict) -> dict:
    """One entry of the report's ``targets`` list (the documented schema, plus ``gates``,
    ``latency_by_size`` and ``images_with_ground_truth``)."""
    latency = [lat.to_json() for lat in target.latency]
    return {
        "name": target.name, "backend": target.backend, "precision": target.precision,
        "device": target.device, "threads": target.threads, "versions": target.versions,
        "settings": target.settings,
        "file": str(target.file) if target.file else None,
        "size_mb": target.size_bytes / 1e6 if target.size_bytes is not None else None,
        "status": target.status, "reason": target.reason, "is_reference": target.is_reference,
        "fidelity": summary["fidelity"], "quality": summary["quality"],
        "reference_quality": summary["reference_quality"],
        "images_with_ground_truth": summary.get("images_with_ground_truth", 0),
        "gates": target.gates,
        "latency_ms": latency[0] if latency else None, "latency_by_size": latency,
        "per_image": target.rows,
    }


def default_sizes(items: Sequence[tuple[Path, Path | None]]) -> list[tuple[int, int]]:
    """The first image's size, the latency size when ``--sizes`` is not given."""
    image = read_image(items[0][0])
    return [(int(image.shape[1]), int(image.shape[2]))]


def worst_images(target: Target, count: int = 3) -> list[str]:
    """Names of the ``count`` images with the lowest fidelity (for the report's pictures)."""
    ranked = sorted(target.rows, key=lambda r: r["fidelity_psnr_db"])
    return [r["name"] for r in ranked[:count]]


@dataclass
class Verification:
    """Everything a ``verify``/``bench`` run measured: the JSON ``payload`` (documented schema), the
    ``targets`` (with Runners, for pictures), the ``reference`` Runner and the ``items`` it ran on."""

    payload: dict
    targets: list[Target]
    reference: Runner
    items: list[tuple[Path, Path | None]]

    @property
    def passed(self) -> bool:
        """True when every target is ``ok``."""
        return all(t.status == "ok" for t in self.targets)


def run_verification(reference: Runner, weights_sha256: str, targets: list[Target],
                     items: list[tuple[Path, Path | None]], *, data: Path, gt: Path | None,
                     min_psnr_db: float | None = None,
                     max_quality_drop_db: float = DEFAULT_MAX_QUALITY_DROP_DB,
                     sizes: Sequence[tuple[int, int]] | None = None, runs: int = 20,
                     duration_s: float | None = None, unmatched: dict | None = None,
                     on_image: Callable[[int, str], None] | None = None,
                     on_latency: Callable[[str, Latency], None] | None = None) -> Verification:
    """Fidelity, quality, gates and latency of ``targets`` against ``reference`` on ``items``.

    ``runs=0`` skips latency. Returns the :class:`Verification`; its payload follows the README's schema.

    Raises:
        InputError: unreadable images or ground truth, bad latency options.
    """
    from sapnet_export import __version__
    from sapnet_export.machine import machine_info

    verify_targets(reference, targets, items, on_image)
    summaries = {}
    for target in targets:
        summaries[target.name] = summarize_target(target)
        apply_gates(target, summaries[target.name], min_psnr_db, max_quality_drop_db)
    reference_latency = []
    if runs > 0 or duration_s is not None:
        reference_latency = measure_targets(reference, targets, sizes or default_sizes(items),
                                            runs=max(runs, 1), duration_s=duration_s, on_done=on_latency)
    info = reference.info
    payload = {
        "format": "sapnet-export/verify-v1", "toolkit": f"sapnet-export {__version__}",
        "machine": machine_info(),
        "reference": {"weights_sha256": weights_sha256, "stages": info.stages, "backend": info.backend,
                      "precision": info.precision, "device": info.device, "threads": info.threads,
                      "versions": dict(info.versions), "settings": dict(info.settings),
                      "latency_ms": reference_latency[0].to_json() if reference_latency else None,
                      "latency_by_size": [lat.to_json() for lat in reference_latency]},
        "dataset": {"data": str(data), "gt": str(gt) if gt else None, "images": len(items),
                    "unmatched_inputs": [str(p) for p in (unmatched or {}).get("inputs", [])],
                    "unmatched_ground_truth": [str(p) for p in (unmatched or {}).get("ground_truth", [])]},
        "gates": {"min_psnr_db": min_psnr_db if min_psnr_db is not None else DEFAULT_MIN_PSNR_DB,
                  "max_quality_drop_db": max_quality_drop_db},
        "targets": [target_json(t, summaries[t.name]) for t in targets],
    }
    for entry in payload["targets"]:
        entry["speedup_vs_reference"] = (reference_latency[0].p50 / entry["latency_ms"]["p50"]
                                         if reference_latency and entry["latency_ms"] else None)
    payload["passed"] = all(t.status == "ok" for t in targets)
    return Verification(payload=payload, targets=targets, reference=reference, items=list(items))
