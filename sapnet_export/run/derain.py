"""Deraining files and folders with any Runner, with a latency summary."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sapnet_export.errors import ImageError, InputError
from sapnet_export.data.frame_guard import (DEFAULT_MAX_MEGAPIXELS, UNMEASURED_BYTES_PER_MEGAPIXEL,
                                            check_frame, image_size)
from sapnet_export.data.images import read_image, write_png
from sapnet_export.runners.base import Runner

#: The guard's figures live in :mod:`sapnet_export.data.frame_guard` (one guard for every command).
BYTES_PER_MEGAPIXEL = UNMEASURED_BYTES_PER_MEGAPIXEL


@dataclass
class DerainSummary:
    """What a derain run did.

    Attributes:
        written: output files, in input order.
        failures: ``(input path, reason)`` for every file that failed.
        latencies_s: seconds of :meth:`Runner.run` per image (decode and encode excluded).
        megapixels: megapixels of each processed image, in the order of ``latencies_s``.
    """

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    megapixels: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        """Median latency per image in seconds (NaN when nothing ran)."""
        return statistics.median(self.latencies_s) if self.latencies_s else float("nan")

    @property
    def p90_s(self) -> float:
        """90th percentile latency per image in seconds (linear interpolation; NaN when nothing ran)."""
        return float(np.percentile(self.latencies_s, 90)) if self.latencies_s else float("nan")

    @property
    def megapixels_per_s(self) -> float:
        """Total megapixels divided by total inference seconds (NaN when nothing ran)."""
        total = sum(self.latencies_s)
        return sum(self.megapixels) / total if total > 0 else float("nan")


def output_path(outdir: Path, relative: Path) -> Path:
    """Where the output of input ``relative`` goes: same relative path under ``outdir``, ``.png``."""
    return outdir / relative.with_suffix(".png")


def derain_files(runner: Runner, items: Sequence[tuple[Path, Path]], outdir: Path, *,
                 fail_fast: bool = False, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 on_done: Callable[[Path], None] | None = None) -> DerainSummary:
    """Derain each image and write ``outdir/<relative>.png``.

    Args:
        runner: any Runner; each image runs as a batch of one at its own size.
        items: ``(path, relative)`` pairs from :func:`~sapnet_export.data.images.discover_images`.
        outdir: output folder (created when missing).
        fail_fast: stop at the first failed file (raising its error) instead of recording it.
        max_megapixels: refuse larger frames (:func:`sapnet_export.data.frame_guard.check_frame`).
        on_done: called with each input path once it is handled (progress).

    Raises:
        InputError: two inputs would write the same output file; with ``fail_fast``, the first
            failure (an :class:`ImageError` or the size refusal).
    """
    targets = [output_path(outdir, rel) for _, rel in items]
    if len(set(targets)) != len(targets):
        clash = next(t for t in targets if targets.count(t) > 1)
        raise InputError(f"{clash}: two inputs would write this output; derain them separately")
    summary = DerainSummary()
    for (path, _), target in zip(items, targets):
        try:
            header = image_size(path)  # refuse before decoding when the header says it is too large
            if header is not None:
                check_frame(*header, max_megapixels=max_megapixels, backends=[runner.info.backend],
                            source=str(path))
            image = read_image(path)
            megapixels = image.shape[1] * image.shape[2] / 1e6
            check_frame(*image.shape[1:], max_megapixels=max_megapixels, backends=[runner.info.backend],
                        source=str(path))
            start = time.perf_counter()
            output = runner.run(image[None])[0]
            summary.latencies_s.append(time.perf_counter() - start)
            summary.megapixels.append(megapixels)
            if not np.all(np.isfinite(output)):
                raise ImageError(f"{path}: the {runner.info.backend} output holds NaN or Inf")
            summary.written.append(write_png(target, output))
        except InputError as exc:
            if fail_fast:
                raise
            summary.failures.append((path, str(exc)))
        finally:
            if on_done:
                on_done(path)
    return summary
