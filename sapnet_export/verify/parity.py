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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.data.images import read_image
from sapnet_export.errors import SapnetError
from sapnet_export.export.precision import DEFAULT_MIN_PSNR_DB
from sapnet_export.measure.evaluation import ImageResult, evaluate, load_held_out_image, summarize
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.measure.latency import Latency, measure_latency
from sapnet_export.runners.base import Runner
from .targets import ONNX_BACKENDS, Target, image_row, open_target, target_json

__all__ = ["DEFAULT_MAX_QUALITY_DROP_DB", "DEFAULT_MIN_PSNR_DB", "ONNX_BACKENDS", "REPORT_FORMAT", "Target", "Verification",
           "apply_gates", "measure_targets", "open_target", "run_verification", "summarize_target",
           "verify_targets", "worst_images"]

#: Largest allowed drop of mean Y-PSNR (dB) against ground truth, target vs reference.
DEFAULT_MAX_QUALITY_DROP_DB = 0.5
#: ``format`` of the reports ``verify`` and ``bench`` write (and ``run --target-fps`` reads). Version 1
#: still: the held-out summary's keys in a target are those it always had, with ``images``,
#: ``changed_pixels_max`` and ``seconds_median`` added.
REPORT_FORMAT = "sapnet-export/verify-v1"


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
            target.results.append(result)
            target.rows.append(image_row(result, gt_path))
        if on_image:
            on_image(index, str(path))


def summarize_target(target: Target) -> dict:
    """The target's held-out summary (:func:`sapnet_export.measure.evaluation.summarize`, the schema the
    conversion report uses too): ``fidelity``, ``quality`` and ``reference_quality`` are None when
    nothing (or no ground truth) was measured."""
    return summarize(target.results)


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

    ``runs=0`` skips latency. Returns the :class:`Verification`; its payload follows docs/formats.md (verify-v1).

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
        "format": REPORT_FORMAT, "toolkit": f"sapnet-export {__version__}",
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
