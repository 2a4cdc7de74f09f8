"""Fidelity (and quality, with ground truth) of a converted model on held-out images, and its report.

Held-out images are deployment-like frames that were *not* used for calibration. Each is run once by the
PyTorch fp32 reference; any Runner is then compared with those references (docs/design.md section 6):
fidelity PSNR against the reference (:func:`sapnet_export.measure.fidelity.fidelity`) and, when a ground-truth
folder is given, Y-PSNR/SSIM of reference and converted model (:mod:`sapnet_export.measure.quality`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.data.images import read_image
from .fidelity import Fidelity, fidelity
from sapnet_export.data.pairs import match_ground_truth
from .quality import Quality, quality
from sapnet_export.runners.base import Runner


@dataclass(frozen=True)
class HeldOutImage:
    """One held-out image with its reference output.

    Attributes:
        path: the image file; ``name``: its path as given (for tables).
        image: float32 [1, 3, H, W] in [0, 1]; ``reference``: the PyTorch fp32 output, same shape.
        ground_truth: float32 [3, H, W] or None; ``reference_quality``: the reference against it.
    """

    path: Path
    name: str
    image: np.ndarray
    reference: np.ndarray
    ground_truth: np.ndarray | None = None
    reference_quality: Quality | None = None


@dataclass(frozen=True)
class ImageResult:
    """A Runner's output on one held-out image: its [N, 3, H, W] shape, fidelity to the reference,
    seconds of :meth:`Runner.run`, and quality against ground truth (with the reference's)."""

    name: str
    shape: tuple[int, ...]
    fidelity: Fidelity
    seconds: float
    quality: Quality | None = None
    reference_quality: Quality | None = None


def _match_ground_truth(path: Path, relative: Path, gt_dir: Path) -> Path:
    found = match_ground_truth(path, relative, gt_dir)
    if found is None:
        raise InputError(f"{path}: no ground truth {gt_dir / relative} (or another name the pairing "
                         f"rules allow) in --gt {gt_dir}")
    return found


def load_held_out_image(reference_runner: Runner, path: Path, gt_path: Path | None = None) -> HeldOutImage:
    """Read one image (and its ground truth), run the reference on it and score the reference.

    Raises:
        InputError: an unreadable image or ground truth, or their sizes differ.
    """
    image = read_image(path)[None]
    gt = gt_quality = None
    if gt_path is not None:
        gt = read_image(gt_path)
        if gt.shape != image.shape[1:]:
            raise InputError(f"{gt_path}: ground truth is {gt.shape[1]}x{gt.shape[2]}, "
                             f"{path} is {image.shape[2]}x{image.shape[3]}")
    reference = reference_runner.run(image)
    if gt is not None:
        gt_quality = quality(reference[0], gt)
    return HeldOutImage(path=path, name=str(path), image=image, reference=reference,
                        ground_truth=gt, reference_quality=gt_quality)


def prepare_held_out(reference_runner: Runner, items: Sequence[tuple[Path, Path]],
                     gt_dir: Path | None = None, exclude_sha256: frozenset[str] = frozenset(),
                     required_hw: tuple[int, int] | None = None,
                     on_image: Callable[[str], None] | None = None) -> list[HeldOutImage]:
    """Read the held-out images, run the reference on each, and pair them with ground truth.

    Args:
        reference_runner: the PyTorch fp32 Runner.
        items: ``(path, relative)`` pairs from :func:`sapnet_export.data.images.discover_images`.
        gt_dir: folder of ground-truth images (:func:`sapnet_export.data.pairs.match_ground_truth`).
        exclude_sha256: sha256 of the calibration sources; an image among them is refused.
        required_hw: (H, W) every image must have (a static export), or None.
        on_image: called with each image's name once its reference is computed.

    Raises:
        InputError: an image is unreadable, is a calibration source, has the wrong size or no
            ground truth.
    """
    held_out = []
    for path, relative in items:
        if exclude_sha256 and sha256_file(path) in exclude_sha256:
            raise InputError(f"{path}: this image is in the calibration set; fidelity must be measured "
                             "on held-out images, never the calibration frames")
        gt_path = _match_ground_truth(path, relative, gt_dir) if gt_dir is not None else None
        item = load_held_out_image(reference_runner, path, gt_path)
        if required_hw and item.image.shape[2:] != required_hw:
            raise InputError(f"{path}: {item.image.shape[2]}x{item.image.shape[3]} image, but the export "
                             f"is static {required_hw[0]}x{required_hw[1]}")
        held_out.append(item)
        if on_image:
            on_image(str(path))
    return held_out


def evaluate(runner: Runner, held_out: Sequence[HeldOutImage],
             on_result: Callable[[ImageResult], None] | None = None) -> list[ImageResult]:
    """Run ``runner`` on every held-out image and compare with the references.

    Raises:
        CheckFailed: an output holds NaN or Inf (the message names the image and the runner).
    """
    results = []
    for item in held_out:
        start = time.perf_counter()
        output = runner.run(item.image)
        seconds = time.perf_counter() - start
        if not np.all(np.isfinite(output)):
            bad = int(np.size(output) - np.count_nonzero(np.isfinite(output)))
            raise CheckFailed(f"{item.name}: {runner.info.backend} {runner.info.precision} output holds "
                              f"{bad} NaN/Inf values ({runner.info.model})")
        result = ImageResult(
            name=item.name, shape=tuple(output.shape), fidelity=fidelity(item.reference, output),
            seconds=seconds,
            quality=quality(output[0], item.ground_truth) if item.ground_truth is not None else None,
            reference_quality=item.reference_quality)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def summarize(results: Sequence[ImageResult]) -> dict:
    """Aggregate fidelity (mean/min PSNR dB, max uint8 difference, share of changed pixels) and, when
    every image had ground truth, mean Y-PSNR/SSIM and RGB PSNR/SSIM of reference and converted model
    with their differences (converted minus reference). Empty dict for no results."""
    if not results:
        return {}
    psnrs = [r.fidelity.psnr_db for r in results]
    summary: dict = {
        "images": len(results),
        "fidelity_psnr_db_mean": statistics.fmean(psnrs),  # inf when an output is identical
        "fidelity_psnr_db_min": min(psnrs),
        "max_abs_u8": max(r.fidelity.max_abs_u8 for r in results),
        "changed_pixels_mean": statistics.fmean(r.fidelity.changed_pixels for r in results),
        "changed_pixels_max": max(r.fidelity.changed_pixels for r in results),
        "seconds_median": statistics.median(r.seconds for r in results),
    }
    if all(r.quality is not None for r in results):
        for key in ("y_psnr_db", "y_ssim", "rgb_psnr_db", "rgb_ssim"):
            reference = statistics.fmean(getattr(r.reference_quality, key) for r in results)
            converted = statistics.fmean(getattr(r.quality, key) for r in results)
            summary[f"gt_{key}_reference"] = reference
            summary[f"gt_{key}_converted"] = converted
            summary[f"gt_{key}_delta"] = converted - reference
    return summary


def result_rows(results: Sequence[ImageResult]) -> list[dict]:
    """Per-image dicts for a JSON report (fidelity, seconds, quality when measured)."""
    rows = []
    for r in results:
        row = {"image": r.name, "shape": list(r.shape), **asdict(r.fidelity), "seconds": r.seconds}
        if r.quality is not None:
            row["gt_converted"] = asdict(r.quality)
            row["gt_reference"] = asdict(r.reference_quality)
        rows.append(row)
    return rows
