"""Engine build time and size per precision: the same builder, target and profile for every graph.

Usage:
    python benchmarks/engine_build.py fp32=engines/sapnet.onnx fp16=engines/sapnet_fp16.onnx \
        int8=engines/sapnet_int8.onnx [--target sm89] [--shapes MIN:OPT:MAX] [--repeats 3] [--json OUT]

Builds each ONNX ``--repeats`` times in turn (interleaved) with :func:`sapnet_export.engine.build.
build_engine` into a temporary folder and prints the median and range of the seconds spent in
``build_serialized_network``, the engine size and the Conv layers' typed precision. Builder: auto
(TensorRT-RTX without a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import machine
from sapnet_export.engine.build import DEFAULT_PROFILE, BuildOptions, build_engine
from sapnet_export.engine.sidecar import parse_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=ONNX", help="ONNX graphs to build")
    parser.add_argument("--target", action="append", default=None, help="compute capability (repeatable)")
    parser.add_argument("--shapes", default=str(DEFAULT_PROFILE), help="optimization profile MIN:OPT:MAX")
    parser.add_argument("--repeats", type=int, default=3, help="builds per graph")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    models = dict(item.split("=", 1) for item in args.models)
    options = BuildOptions(profile=parse_profile(args.shapes), targets=tuple(args.target or ("sm89",)))
    seconds = {name: [] for name in models}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, onnx_path in models.items():
                result = build_engine(onnx_path, Path(tmp) / f"{name}.engine", options, force=True,
                                      command="benchmarks/engine_build.py")
                seconds[name].append(result.build_s)
                results[name] = result.sidecar
                print(f"[{repeat + 1}/{args.repeats}] {name}: {result.build_s:.2f} s, "
                      f"{result.size_bytes / 1e6:.1f} MB", flush=True)
    first = next(iter(results.values()))
    print(f"\n{first['builder']['name']} {first['builder']['version']}, target "
          f"{', '.join(first['target']['compute_capabilities'])}, profile {args.shapes}; {machine()}")
    print("| graph | build s (median, min-max) | engine MB | Conv layers |")
    print("| --- | --- | --- | --- |")
    rows = {}
    for name, times in seconds.items():
        side = results[name]
        convs = {k: v for k, v in side["layers"]["precisions"].items() if k.startswith("CONVOLUTION")}
        rows[name] = {"build_s": times, "size_bytes": side["size_bytes"], "conv": convs,
                      "onnx": models[name]}
        print(f"| {name} | {statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f}) | "
              f"{side['size_bytes'] / 1e6:.1f} | {', '.join(f'{k.split()[1]} {v}' for k, v in convs.items())} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "builder": first["builder"],
                                         "target": first["target"], "profile": args.shapes,
                                         "results": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
