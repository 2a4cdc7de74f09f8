"""Latency of a Runner at a given frame size (docs/design.md section 6).

Warm-up runs first (not timed), then at least ``runs`` timed runs, or as many as fit in ``duration_s``.
Each run is timed by the Runner's :meth:`~sapnet_export.runners.base.Runner.timed_run`: the wall clock
around ``run()`` on the CPU, CUDA events on the engine's stream for TensorRT. The input is a fixed
random frame (this network's cost does not depend on the content). Reported: median (p50), p90, p99
and mean in milliseconds, frames/s (1 / mean) and megapixels/s.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.runners.base import Runner

#: Timed runs when no duration is given (docs/design.md section 6: at least 20).
DEFAULT_RUNS = 20
DEFAULT_WARMUP = 2


@dataclass(frozen=True)
class Latency:
    """Latency of one Runner at one size.

    Attributes:
        size: ``HxW`` of the frame (batch 1).
        runs, warmup: timed and untimed runs.
        p50, p90, p99, mean: milliseconds per frame.
        frames_per_s: 1000 / mean; ``megapixels_per_s``: H * W / 1e6 * frames_per_s.
        clock: how the runs were timed.
        samples_ms: every timed run, in order.
    """

    size: str
    runs: int
    warmup: int
    p50: float
    p90: float
    p99: float
    mean: float
    frames_per_s: float
    megapixels_per_s: float
    clock: str
    samples_ms: list[float]

    def to_json(self) -> dict:
        """The report's ``latency_ms`` object (the issue's keys plus the rest)."""
        return asdict(self)


def measure_latency(runner: Runner, size: tuple[int, int], *, runs: int = DEFAULT_RUNS,
                    warmup: int = DEFAULT_WARMUP, duration_s: float | None = None,
                    seed: int = 0) -> Latency:
    """Time ``runner`` on a random float32 [1, 3, H, W] frame in [0, 1].

    Args:
        size: (H, W).
        runs: timed runs (>= 1) when ``duration_s`` is None.
        warmup: untimed runs first (>= 0).
        duration_s: keep timing until this many seconds of timed runs have passed (at least one run).

    Raises:
        InputError: ``runs`` < 1, ``warmup`` < 0 or ``duration_s`` <= 0; the Runner's own errors (e.g. a
            size outside an engine's profile).
    """
    if runs < 1 or warmup < 0 or (duration_s is not None and duration_s <= 0):
        raise InputError(f"latency: need runs >= 1, warmup >= 0, duration > 0 (got {runs}, {warmup}, "
                         f"{duration_s})")
    frame = np.random.default_rng(seed).random((1, 3, *size), dtype=np.float32)
    for _ in range(warmup):
        runner.run(frame)
    samples = []
    started = time.perf_counter()
    while True:
        samples.append(runner.timed_run(frame))
        if duration_s is None and len(samples) >= runs:
            break
        if duration_s is not None and time.perf_counter() - started >= duration_s:
            break
    ms = np.asarray(samples) * 1000.0
    mean = float(ms.mean())
    return Latency(size=f"{size[0]}x{size[1]}", runs=len(samples), warmup=warmup,
                   p50=float(np.percentile(ms, 50)), p90=float(np.percentile(ms, 90)),
                   p99=float(np.percentile(ms, 99)), mean=mean, frames_per_s=1000.0 / mean,
                   megapixels_per_s=size[0] * size[1] / 1e6 * 1000.0 / mean,
                   clock=runner.latency_clock, samples_ms=[float(v) for v in ms])
