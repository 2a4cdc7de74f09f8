"""Latency of the precision variants on ONNX Runtime CPU, same images, one run: fp32 vs int8 vs fp16.

Usage:
    python benchmarks/precision_latency.py --data ../shared/data/rain100l/input \
        fp32=engines/sapnet.onnx int8-cpu=engines/sapnet_int8_cpu.onnx fp16=engines/sapnet_fp16.onnx \
        [int8-tensorrt=engines/sapnet_int8.onnx] [--limit N] [--repeats R] [--threads T] [--json OUT]

The first NAME=MODEL is the reference for speed-up and fidelity. Every model is run on every image in
turn (interleaved), after one warm-up each, ``--repeats`` times per image (DESIGN.md section 6 asks for at
least 20 timed runs per model: images x repeats). Prints median/p90/p99/mean seconds, megapixels/s,
speed-up over the reference and fidelity (PSNR dB) against the reference's output.
"""

from __future__ import annotations

import argparse
import json
import sys

from _timing import interleaved, machine, table
from sapnet_export.data.images import discover_images
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL", help="ONNX files to compare")
    parser.add_argument("--data", required=True, help="folder of images")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per image and model")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    pairs = [m.split("=", 1) for m in args.models]
    if any(len(p) != 2 for p in pairs):
        sys.exit("models are NAME=PATH, e.g. fp32=engines/sapnet.onnx")
    runners = {name: OnnxRuntimeRunner(path, device="cpu", threads=args.threads) for name, path in pairs}
    items = discover_images([args.data])
    if args.limit:
        items = items[: args.limit]
    reference = pairs[0][0]
    measured = interleaved(runners, items, reference=reference, repeats=args.repeats)
    print(f"\nmachine: {machine()}; ONNX Runtime CPU; {len(items)} images x {args.repeats} from {args.data}")
    rows = table(measured, runners, reference=reference)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine(), "images": len(items), "repeats": args.repeats,
                       "data": args.data, "runners": rows}, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
