"""Fidelity (and quality, with ground truth) of a converted model on held-out images, and its report.

Held-out images are deployment-like frames that were *not* used for calibration. Each is run once by the
PyTorch fp32 reference; any Runner is then compared with those references (docs/design.md section 6):
fidelity PSNR against the reference (:func:`sapnet_export.measure.fidelity.fidelity`) and, when a ground-truth
folder is given, Y-PSNR/SSIM of reference and converted model (:mod:`sapnet_export.measure.quality`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
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


def refuse_calibration_images(paths: Iterable[Path], source_sha256: frozenset[str],
                              calibration: Path | None = None) -> None:
    """The one check that keeps calibration images out of held-out evaluation (``onnx``, ``trt``,
    ``sensitivity``, ``bench``): fidelity measured on the frames the scales came from would flatter
    the int8 graph.

    Args:
        paths: the held-out image files; source_sha256: sha256 of the calibration set's sources
            (:attr:`~sapnet_export.export.int8.calibration.CalibrationSet.source_sha256`);
            calibration: the set's folder, named in the message when given.

    Raises:
        InputError: naming the first image whose sha256 is a calibration source.
    """
    if not source_sha256:
        return
    for path in paths:
        if sha256_file(path) in source_sha256:
            where = f" {calibration}" if calibration is not None else ""
            raise InputError(f"{path}: this image is in the calibration set{where}; fidelity must be "
                             "measured on held-out images, never the calibration frames")


def prepare_held_out(reference_runner: Runner, items: Sequence[tuple[Path, Path]],
                     gt_dir: Path | None = None, exclude_sha256: frozenset[str] = frozenset(),
                     required_hw: tuple[int, int] | None = None,
                     on_image: Callable[[str], None] | None = None) -> list[HeldOutImage]:
    """Read the held-out images, run the reference on each, and pair them with ground truth.

    Args:
        reference_runner: the PyTorch fp32 Runner.
        items: ``(path, relative)`` pairs from :func:`sapnet_export.data.images.discover_images`.
        gt_dir: folder of ground-truth images (:func:`sapnet_export.data.pairs.match_ground_truth`).
        exclude_sha256: sha256 of the calibration sources; an image among them is refused
            (:func:`refuse_calibration_images`).
        required_hw: (H, W) every image must have (a static export), or None.
        on_image: called with each image's name once its reference is computed.

    Raises:
        InputError: an image is unreadable, is a calibration source, has the wrong size or no
            ground truth.
    """
    refuse_calibration_images((path for path, _ in items), exclude_sha256)
    held_out = []
    for path, relative in items:
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


#: Report names of the quality scores (:class:`~sapnet_export.measure.quality.Quality` fields, in order).
QUALITY_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
_QUALITY_FIELDS = ("y_psnr_db", "y_ssim", "rgb_psnr_db", "rgb_ssim")


def quality_json(score: Quality | None) -> dict | None:
    """A :class:`~sapnet_export.measure.quality.Quality` under the report names :data:`QUALITY_KEYS`."""
    return None if score is None else {key: getattr(score, name) for key, name in zip(QUALITY_KEYS, _QUALITY_FIELDS)}


def summarize(results: Sequence[ImageResult]) -> dict:
    """The held-out summary: one schema for the ``onnx`` conversion report (``held_out.summary``) and
    for every ``verify``/``bench`` target (docs/formats.md).

    Returns:
        ``{"images": int, "images_with_ground_truth": int,
        "fidelity": {"psnr_mean_db", "psnr_min_db", "max_abs_u8", "changed_pixels"} | None,
        "changed_pixels_max": float | None, "seconds_median": float | None,
        "quality": {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"} | None, "reference_quality": same | None}``:
        fidelity against the PyTorch fp32 reference (PSNR in dB, inf when identical; largest uint8
        difference; mean and largest share of changed pixels, 0..1); seconds of ``Runner.run`` per
        image; mean quality of the model and of the reference against ground truth over the images
        that have it. None where nothing was measured (no images, no ground truth).
    """
    scored = [r for r in results if r.quality is not None]
    summary: dict = {"images": len(results), "images_with_ground_truth": len(scored), "fidelity": None,
                     "changed_pixels_max": None, "seconds_median": None, "quality": None,
                     "reference_quality": None}
    if results:
        psnrs = [r.fidelity.psnr_db for r in results]
        summary["fidelity"] = {"psnr_mean_db": statistics.fmean(psnrs),  # inf when an output is identical
                               "psnr_min_db": min(psnrs),
                               "max_abs_u8": max(r.fidelity.max_abs_u8 for r in results),
                               "changed_pixels": statistics.fmean(r.fidelity.changed_pixels for r in results)}
        summary["changed_pixels_max"] = max(r.fidelity.changed_pixels for r in results)
        summary["seconds_median"] = statistics.median(r.seconds for r in results)
    if scored:
        for key, attr in (("quality", "quality"), ("reference_quality", "reference_quality")):
            summary[key] = {name: statistics.fmean(getattr(getattr(r, attr), field) for r in scored)
                            for name, field in zip(QUALITY_KEYS, _QUALITY_FIELDS)}
    return summary


def result_rows(results: Sequence[ImageResult]) -> list[dict]:
    """Per-image dicts for a JSON report: fidelity, seconds, and, when measured, ``quality`` and
    ``reference_quality`` under the summary's names (:data:`QUALITY_KEYS`, :func:`quality_json`)."""
    rows = []
    for r in results:
        row = {"image": r.name, "shape": list(r.shape), **asdict(r.fidelity), "seconds": r.seconds}
        if r.quality is not None:
            row["quality"] = quality_json(r.quality)
            row["reference_quality"] = quality_json(r.reference_quality)
        rows.append(row)
    return rows
