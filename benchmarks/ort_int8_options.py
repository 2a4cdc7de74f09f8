"""ONNX Runtime int8 on x86, measured: what the `cpu` QDQ profile quantizes, and the session options.

Usage:
    nice -n 10 python benchmarks/ort_int8_options.py --fp32 fp32.onnx --int8-cpu int8-cpu.onnx --calib CAL \
        --data ../shared/data/rain100l/input [--calib-frames 8] [--images 1] [--repeats 3] [--threads 2] [--json OUT]

``--int8-cpu`` is the profile's graph as ``sapnet-export onnx --qdq-profile cpu`` makes it (its row
names the calibration method its metadata records). Graph variants, all u8s8 with per-channel int8 weights and minmax calibration on the first
``--calib-frames`` frames of CAL (one calibration, its cache shared; minmax because the percentile
histograms of 20 frames of 320x480 took over 8 GB and 20 minutes on the 2-core machine):
``cpu`` (the profile: Conv and the element-wise ops around it),
``conv-only`` (Conv inputs alone), ``cpu, attention and gates float`` (the profile with each CRA
layer's pooling/sigmoid/scale and the LSTM cell kept in float). Session variants on the ``cpu`` graph:
graph optimization ``all`` (NCHWc layout, the default) / ``extended`` / ``layout``, intra-op spinning
off, and intra-op threads pinned to cores. Every variant runs every frame in turn after one warm-up;
fidelity is PSNR (dB) against the fp32 graph's output in ONNX Runtime.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced, read_image
from sapnet_export.export.int8 import quantize
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.model.onnx_meta import metadata
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner


def graphs(fp32: str, calib: str, count: int, workdir: Path) -> dict[str, Path]:
    """The three QDQ variants of the module docstring, quantized with one calibration cache."""
    frames = load_calibration(Path(calib)).frames[:count]
    cache = workdir / "ranges.json"
    quantize.QDQ_PROFILES["conv-only"] = dataclasses.replace(quantize.QDQ_PROFILES["cpu"], name="conv-only",
                                                             op_types=("Conv",))
    proto = onnx.load(fp32)
    attention = re.compile(r"/res_conv\d/res_conv\d\.[14]/(avg_pool|conv_du|sigmoid|Mul|Add)")
    floats = [n.name for n in proto.graph.node if attention.search(n.name)]
    floats += quantize.select_nodes(proto, ["lstm_cell"])
    out = {}
    for name, profile, exclude in (("cpu", "cpu", ()), ("conv-only", "conv-only", ()),
                                   ("cpu, attention and gates float", "cpu", floats)):
        out[name] = workdir / f"{len(out)}.onnx"
        quantize.quantize_int8(fp32, out[name], profile=profile, frames=None if cache.is_file() else frames,
                               calib_method="minmax", cache_path=cache, exclude=exclude)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--fp32", "--int8-cpu", "--calib", "--data"):
        parser.add_argument(name, required=True)
    parser.add_argument("--calib-frames", type=int, default=8)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    items = [p for p, _ in discover_images([args.data]) if read_image(p).shape[1:] == (320, 480)]
    images = [read_image(p)[None] for p in evenly_spaced(items, args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        made = graphs(args.fp32, args.calib, args.calib_frames, Path(tmp))
        t = args.threads
        runners = {"fp32": OnnxRuntimeRunner(args.fp32, threads=t)}
        cpu = args.int8_cpu
        given = metadata(onnx.load(cpu)).get("calib_method", "calibration unknown")
        runners[f"int8 cpu ({given}, the --int8-cpu file)"] = OnnxRuntimeRunner(cpu, threads=t)
        runners.update({f"int8 {name} (minmax)": OnnxRuntimeRunner(path, threads=t) for name, path in made.items()})
        runners["int8 cpu, optimization extended (no NCHWc)"] = OnnxRuntimeRunner(cpu, threads=t, optimization="extended")
        runners["int8 cpu, optimization layout"] = OnnxRuntimeRunner(cpu, threads=t, optimization="layout")
        runners["int8 cpu, no spinning"] = OnnxRuntimeRunner(cpu, threads=t, session_config={
            "session.intra_op.allow_spinning": "0"})
        runners["int8 cpu, threads pinned"] = OnnxRuntimeRunner(cpu, threads=t, session_config={
            "session.intra_op_thread_affinities": ";".join(str(c + 1) for c in range(1, t))})
        for runner in runners.values():
            runner.run(images[0])
        times = {n: [] for n in runners}
        psnr = {n: [] for n in runners}
        for image in images:
            for _ in range(args.repeats):
                outs = {}
                for name, runner in runners.items():
                    start = time.perf_counter()
                    outs[name] = runner.run(image)
                    times[name].append(time.perf_counter() - start)
                for name, out in outs.items():
                    psnr[name].append(fidelity(np.clip(outs["fp32"], 0, 1), np.clip(out, 0, 1)).psnr_db)
    base = float(np.median(times["fp32"]))
    print("| variant | median ms | p90 ms | vs fp32 | fidelity dB |\n| --- | --- | --- | --- | --- |")
    rows = {}
    for name, values in times.items():
        median = float(np.median(values))
        rows[name] = {"median_ms": median * 1e3, "p90_ms": float(np.percentile(values, 90)) * 1e3,
                      "speedup": base / median, "fidelity_db": float(np.mean(psnr[name]))}
        fid = "-" if name == "fp32" else f"{rows[name]['fidelity_db']:.1f}"
        print(f"| {name} | {median * 1e3:.0f} | {rows[name]['p90_ms']:.0f} | {base / median:.2f}x | {fid} |")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {machine()}; {uptime}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "uptime_after": uptime, "rows": rows,
                                               "threads": args.threads, "repeats": args.repeats}, indent=2))


if __name__ == "__main__":
    main()
