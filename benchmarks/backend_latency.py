"""Latency per image of every CPU backend on the same images, in one run (torch vs onnxruntime).

Usage:
    python benchmarks/backend_latency.py --data ../shared/data/rain100l/input \
        --model engines/sapnet.onnx [--weights official] [--limit N] [--json OUT.json]

Each image is run by every backend in turn (interleaved, so machine noise hits both alike) after one
warm-up run per backend; decode and encode are outside the timed region. Prints per-backend median,
p90, mean seconds per image, megapixels per second, the speed-up of each backend over torch, and the
fidelity (PSNR, dB) of each backend's output against the torch output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from sapnet_export.images import discover_images, read_image
from sapnet_export.metrics import fidelity
from sapnet_export.runners import create_runner


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of images")
    parser.add_argument("--model", required=True, help="fp32 ONNX export for onnxruntime")
    parser.add_argument("--weights", default="official")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    items = discover_images([args.data])
    if args.limit:
        items = items[: args.limit]
    runners = {"torch": create_runner("torch", weights=args.weights),
               "onnxruntime": create_runner("onnxruntime", model=args.model)}
    first = read_image(items[0][0])[None]
    for runner in runners.values():
        runner.run(first)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runners}
    psnrs: dict[str, list[float]] = {name: [] for name in runners if name != "torch"}
    megapixels = []
    for index, (path, _) in enumerate(items, 1):
        batch = read_image(path)[None]
        megapixels.append(batch.shape[2] * batch.shape[3] / 1e6)
        outputs = {}
        for name, runner in runners.items():
            start = time.perf_counter()
            outputs[name] = runner.run(batch)
            times[name].append(time.perf_counter() - start)
        for name in psnrs:
            psnrs[name].append(fidelity(outputs["torch"], outputs[name]).psnr_db)
        print(f"[{index}/{len(items)}] {path.name}: "
              + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)

    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs"
    report = {"machine": machine, "images": len(items), "data": args.data, "backends": {}}
    print(f"\nmachine: {machine}; {len(items)} images from {args.data}")
    print(f"{'backend':<12} {'median s':>9} {'p90 s':>8} {'mean s':>8} {'MP/s':>7} {'vs torch':>9} "
          f"{'PSNR vs torch (min) dB':>23}")
    torch_median = float(np.median(times["torch"]))
    for name, values in times.items():
        row = {"median_s": float(np.median(values)), "p90_s": float(np.percentile(values, 90)),
               "mean_s": float(np.mean(values)), "megapixels_per_s": sum(megapixels) / sum(values),
               "speedup_vs_torch": torch_median / float(np.median(values)),
               "runners_info": vars(runners[name].info)}
        if name in psnrs:
            row["fidelity_psnr_db_mean"] = float(np.mean(psnrs[name]))
            row["fidelity_psnr_db_min"] = float(np.min(psnrs[name]))
        report["backends"][name] = row
        fid = (f"{row['fidelity_psnr_db_mean']:.1f} ({row['fidelity_psnr_db_min']:.1f})"
               if name in psnrs else "reference")
        print(f"{name:<12} {row['median_s']:9.3f} {row['p90_s']:8.3f} {row['mean_s']:8.3f} "
              f"{row['megapixels_per_s']:7.3f} {row['speedup_vs_torch']:8.2f}x {fid:>23}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
