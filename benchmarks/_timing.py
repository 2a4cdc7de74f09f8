"""Shared by the benchmark scripts: interleaved timing of several Runners on the same images."""

from __future__ import annotations

import time

import numpy as np

from sapnet_export.data.images import read_image
from sapnet_export.machine import describe_machine as machine  # noqa: F401 - re-exported for the scripts
from sapnet_export.measure.fidelity import fidelity


def interleaved(runners: dict, items: list, reference: str, repeats: int = 1) -> dict:
    """Run every Runner on every image in turn (interleaved, so machine noise hits all alike), after one
    warm-up run each; decode is outside the timed region. Each image is timed ``repeats`` times per
    Runner. Fidelity (PSNR dB) of each Runner's output is taken against ``reference``'s.

    Returns ``{"times": {name: [s...]}, "psnrs": {name: [dB...]}, "megapixels": [MP per timed run]}``.
    """
    first = read_image(items[0][0])[None]
    for runner in runners.values():
        runner.run(first)
    times = {name: [] for name in runners}
    psnrs = {name: [] for name in runners if name != reference}
    megapixels = []
    for index, (path, _) in enumerate(items, 1):
        batch = read_image(path)[None]
        outputs = {}
        for _ in range(repeats):
            megapixels.append(batch.shape[2] * batch.shape[3] / 1e6)
            for name, runner in runners.items():
                start = time.perf_counter()
                outputs[name] = runner.run(batch)
                times[name].append(time.perf_counter() - start)
        for name in psnrs:
            psnrs[name].append(fidelity(outputs[reference], outputs[name]).psnr_db)
        print(f"[{index}/{len(items)}] {path.name}: "
              + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    return {"times": times, "psnrs": psnrs, "megapixels": megapixels}


def table(measured: dict, runners: dict, reference: str) -> dict:
    """Print and return per-Runner median/p90/p99/mean seconds, frames/s, MP/s, speed-up over
    ``reference`` and fidelity against it (mean and min dB)."""
    times, psnrs, megapixels = measured["times"], measured["psnrs"], measured["megapixels"]
    rows = {}
    print(f"{'runner':<16} {'median s':>9} {'p90 s':>8} {'p99 s':>8} {'mean s':>8} {'MP/s':>7} "
          f"{'vs ' + reference:>12} {'PSNR vs ' + reference + ' (min) dB':>28}")
    base = float(np.median(times[reference]))
    for name, values in times.items():
        row = {"median_s": float(np.median(values)), "p90_s": float(np.percentile(values, 90)),
               "p99_s": float(np.percentile(values, 99)), "mean_s": float(np.mean(values)),
               "frames_per_s": len(values) / sum(values),
               "megapixels_per_s": sum(megapixels) / sum(values),
               "speedup_vs_reference": base / float(np.median(values)), "timed_runs": len(values),
               "runner_info": vars(runners[name].info)}
        if name in psnrs:
            row["fidelity_psnr_db_mean"] = float(np.mean(psnrs[name]))
            row["fidelity_psnr_db_min"] = float(np.min(psnrs[name]))
        rows[name] = row
        fid = (f"{row['fidelity_psnr_db_mean']:.1f} ({row['fidelity_psnr_db_min']:.1f})"
               if name in psnrs else "reference")
        print(f"{name:<16} {row['median_s']:9.3f} {row['p90_s']:8.3f} {row['p99_s']:8.3f} "
              f"{row['mean_s']:8.3f} {row['megapixels_per_s']:7.3f} "
              f"{row['speedup_vs_reference']:11.2f}x {fid:>28}")
    return rows
