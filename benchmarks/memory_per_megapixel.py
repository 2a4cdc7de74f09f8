"""Peak memory of one inference as a function of frame size, per CPU backend.

Usage:
    python benchmarks/memory_per_megapixel.py [--weights official] [--sizes 500x500,1000x500]

For each backend and size a fresh Python process builds the Runner, runs one tiny warm-up frame,
then one frame of the size; the figure is the rise of the process's peak RSS (``ru_maxrss``) over the
warm-up. The slope between two sizes is the bytes per megapixel the ``--max-megapixels`` guard of
every command rests on (``sapnet_export.data.frame_guard.BYTES_PER_MEGAPIXEL``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, numpy as np
from sapnet_export.runners import create_runner
backend, model, weights, h, w = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
runner = create_runner(backend, model=model or None, weights=weights)
runner.run(np.random.rand(1, 3, 8, 8).astype(np.float32))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
runner.run(np.random.rand(1, 3, h, w).astype(np.float32))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rise_bytes": (peak - base) * 1024}))
"""


def measure(backend: str, model: str, weights: str, height: int, width: int) -> int:
    """Peak-RSS rise in bytes of one ``height`` x ``width`` inference in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, backend, model, weights, str(height), str(width)],
                         check=True, capture_output=True, text=True).stdout
    return int(json.loads(out.strip().splitlines()[-1])["rise_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="official")
    parser.add_argument("--sizes", default="500x500,1000x500")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(Path(tmp) / "m.onnx")
        subprocess.run([sys.executable, "-m", "sapnet_export", "onnx", "--weights", args.weights,
                        "-o", model], check=True, capture_output=True)
        for backend, file in (("onnxruntime", model), ("torch", "")):
            rises = []
            for height, width in sizes:
                rise = measure(backend, file, args.weights, height, width)
                rises.append((height * width / 1e6, rise))
                print(f"{backend:<12} {height}x{width} ({height * width / 1e6:.2f} MP): "
                      f"peak RSS +{rise / 2**20:.0f} MiB", flush=True)
            (mp0, r0), (mp1, r1) = rises[0], rises[-1]
            if mp1 != mp0:
                print(f"{backend:<12} slope {(r1 - r0) / (mp1 - mp0) / 1e9:.2f} GB per megapixel")


if __name__ == "__main__":
    main()
