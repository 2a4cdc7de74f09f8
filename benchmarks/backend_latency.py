"""Latency per image of every CPU backend on the same images, in one run (torch vs onnxruntime).

Usage:
    python benchmarks/backend_latency.py --data ../shared/data/rain100l/input \
        --model engines/sapnet.onnx [--weights official] [--limit N] [--json OUT.json]

Each image is run by every backend in turn (interleaved, so machine noise hits both alike) after one
warm-up run per backend; decode and encode are outside the timed region. Prints per-backend median,
p90, p99, mean seconds per image, megapixels per second, the speed-up of each backend over torch, and
the fidelity (PSNR, dB) of each backend's output against the torch output.
"""

from __future__ import annotations

import argparse
import json

from _timing import interleaved, machine, table
from sapnet_export.data.images import discover_images
from sapnet_export.runners import create_runner


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
    measured = interleaved(runners, items, reference="torch")
    print(f"\nmachine: {machine()}; {len(items)} images from {args.data}")
    rows = table(measured, runners, reference="torch")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine(), "images": len(items), "data": args.data, "runners": rows},
                      handle, indent=2, default=str)


if __name__ == "__main__":
    main()
