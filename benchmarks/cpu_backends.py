"""Every CPU path side by side in one interleaved run: PyTorch eager, ONNX Runtime fp32/int8, OpenVINO
fp32/bf16/int8 (the `cpu` QDQ graph, NNCF's, and any other int8 graph), at several frame sizes and thread
counts.

Usage (make the three ONNX files first with the toolkit's own commands):
    sapnet-export calib build ../shared/data/real-rain -o CAL --size 320x480 --count 20
    sapnet-export onnx --weights W -o fp32.onnx
    sapnet-export onnx --weights W -o int8-cpu.onnx --precision int8 --qdq-profile cpu --calib CAL --images IMG
    sapnet-export onnx --weights W -o int8-nncf.onnx --precision int8 --qdq-profile openvino --calib CAL --images IMG
    nice -n 10 python benchmarks/cpu_backends.py --weights W --data ../shared/data/rain100l/input \
        --gt ../shared/data/rain100l/target --fp32 fp32.onnx --int8-cpu int8-cpu.onnx [--int8-nncf int8-nncf.onnx] \
        [--int8 tensorrt=int8-trt.onnx ...] [--bf16-rest] [--images 2] [--sizes 320x480,720x1280] [--threads 1,all] [--repeats 2] [--json OUT] [--markdown OUT]

Frames: the first ``--images`` Rain100L inputs evenly spaced among those of 320x480, resized (bicubic) to
each ``--sizes``; quality (Y-PSNR against the ground truth) at the native 320x480 only. Every path runs
every frame in turn after one warm-up per size. Per path: median and p90 ms, frames/s, speed-up over
ONNX Runtime fp32, fidelity (PSNR dB against ONNX Runtime fp32's output), the Y-PSNR change against
PyTorch fp32, and the share of the machine's GEMM peak of its precision (:mod:`_peaks`) its Conv FLOPs
reach. ``--profile`` adds OpenVINO's per-layer-type times (PERF_COUNT) at the first size.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image

from _peaks import gemm_peaks
from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced, read_image, to_uint8
from sapnet_export.data.pairs import pair_ground_truth
from sapnet_export.export.int8.quantize import conv_macs
from sapnet_export.machine import cpu_features
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.shapes import parse_sizes
from sapnet_export.measure.quality import quality
from sapnet_export.model.checkpoints import load_weights
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.runners.openvino_runner import OpenVinoRunner
from sapnet_export.runners.torch_runner import TorchRunner

REFERENCE = "onnxruntime fp32"
#: path -> the GEMM peak (:func:`_peaks.gemm_peaks` key) that bounds it; an OpenVINO int8 path (``openvino
#: int8 (LABEL)``, with or without ``+ bf16``) is bounded by the int8 peak.
BOUND = {"torch fp32": "torch fp32", "onnxruntime fp32": "onnxruntime fp32", "onnxruntime int8 (cpu)": "onnxruntime int8",
         "openvino fp32": "openvino fp32", "openvino bf16": "openvino bf16"}


def bound(path: str) -> str:
    """The GEMM peak that bounds ``path``."""
    return BOUND.get(path, "openvino int8")


def int8_graphs(args) -> dict[str, str]:  # noqa: ANN001
    """``{label: path}`` of the int8 graphs OpenVINO runs: ``cpu graph`` (``--int8-cpu``), ``nncf``
    (``--int8-nncf``) and every ``--int8 LABEL=PATH``."""
    graphs = {"cpu graph": args.int8_cpu}
    if args.int8_nncf:
        graphs["nncf"] = args.int8_nncf
    for spec in args.int8:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--int8 {spec}: expected LABEL=PATH")
        graphs[label] = path
    return graphs


def make_runners(args, threads: int) -> dict:  # noqa: ANN001
    """Every path, each with ``threads`` threads (PyTorch: torch.set_num_threads): PyTorch fp32, ONNX
    Runtime fp32 and int8 (the ``cpu`` graph), OpenVINO fp32 and bf16, and OpenVINO on each int8 graph
    of :func:`int8_graphs` (f32 for the rest; with ``--bf16-rest`` also bf16 for the rest)."""
    torch.set_num_threads(threads)
    model, info = load_weights(args.weights)
    ov = {"cache_dir": ""}  # compile here, every time: no blob from another run
    runners = {"torch fp32": TorchRunner(model, info),
               REFERENCE: OnnxRuntimeRunner(args.fp32, threads=threads),
               "onnxruntime int8 (cpu)": OnnxRuntimeRunner(args.int8_cpu, threads=threads),
               "openvino fp32": OpenVinoRunner(args.fp32, threads=threads, **ov),
               "openvino bf16": OpenVinoRunner(args.fp32, precision="bf16", threads=threads, **ov)}
    for label, path in int8_graphs(args).items():
        runners[f"openvino int8 ({label})"] = OpenVinoRunner(path, threads=threads, **ov)
        if args.bf16_rest or label == "nncf":
            runners[f"openvino int8 ({label}) + bf16"] = OpenVinoRunner(path, precision="bf16",
                                                                         threads=threads, **ov)
    return runners


def frames(args) -> list[tuple[str, np.ndarray, np.ndarray | None]]:  # noqa: ANN001
    """(name, float32 [1, 3, 320, 480], ground truth float32 [3, 320, 480] or None) of the chosen images."""
    items = [(p, r) for p, r in discover_images([args.data]) if read_image(p).shape[1:] == (320, 480)]
    items = evenly_spaced(items, args.images)
    gt = {path: g for path, _, g in pair_ground_truth(items, Path(args.gt)).pairs} if args.gt else {}
    return [(p.name, read_image(p)[None], read_image(gt[p]) if p in gt else None) for p, _ in items]


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` float32 [1, 3, h, w] resized to ``size`` (H, W) with PIL's bicubic filter."""
    if image.shape[2:] == size:
        return image
    pil = Image.fromarray(to_uint8(image[0]))
    out = np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BICUBIC), np.float32) / 255.0
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])


def measure(runners: dict, images: list, size: tuple[int, int], repeats: int) -> dict:
    """Interleaved timing, fidelity against :data:`REFERENCE` and Y-PSNR of every path at ``size``."""
    batch = resized(images[0][1], size)
    for runner in runners.values():
        runner.run(batch)  # warm-up: compiles, allocates
    times = {n: [] for n in runners}
    psnr = {n: [] for n in runners}
    ypsnr = {n: [] for n in runners}
    for name, image, gt in images:
        batch = resized(image, size)
        outputs = {}
        for _ in range(repeats):
            for path, runner in runners.items():
                start = time.perf_counter()
                outputs[path] = runner.run(batch)
                times[path].append(time.perf_counter() - start)
        reference = np.clip(outputs[REFERENCE], 0, 1)
        for path, out in outputs.items():
            psnr[path].append(fidelity(reference, np.clip(out, 0, 1)).psnr_db)
            if gt is not None and size == image.shape[2:]:
                ypsnr[path].append(quality(np.clip(out[0], 0, 1), gt).y_psnr_db)
        print(f"  {size[0]}x{size[1]} {name}: " + ", ".join(f"{p} {t[-1] * 1e3:.0f}" for p, t in times.items()),
              flush=True)
    return {"times": times, "psnr": psnr, "ypsnr": ypsnr}


def rows(measured: dict, flop: float, peaks: dict) -> dict:
    """Per path: median/p90 ms, frames/s, speed-up, fidelity, Y-PSNR change, share of its GEMM peak."""
    times = measured["times"]
    base = float(np.median(times[REFERENCE]))
    torch_y = measured["ypsnr"]["torch fp32"]
    table = {}
    for path, values in times.items():
        median = float(np.median(values))
        ypsnr = measured["ypsnr"][path]
        table[path] = {
            "median_ms": median * 1e3, "p90_ms": float(np.percentile(values, 90)) * 1e3,
            "frames_per_s": 1.0 / median, "speedup": base / median, "runs": len(values),
            "fidelity_db": float(np.mean(measured["psnr"][path])) if path != REFERENCE else None,
            "ypsnr_change_db": float(np.mean(np.subtract(ypsnr, torch_y))) if ypsnr else None,
            "gflops": flop / median / 1e9, "bound": bound(path),
            "share_of_peak": flop / median / 1e9 / peaks[bound(path)]}
    return table


def profile(runner: OpenVinoRunner, batch: np.ndarray, top: int = 6) -> list[dict]:
    """OpenVINO's per-layer-type execution times (PERF_COUNT) for one run of ``batch``, largest first."""
    compiled = runner.core.compile_model(runner.model, "CPU", {**runner.config, "PERFORMANCE_HINT": "LATENCY",
                                                               "PERF_COUNT": True})
    request = compiled.create_infer_request()
    request.infer({"rainy": batch})
    request.infer({"rainy": batch})
    by_type: dict[str, list] = {}
    for info in request.get_profiling_info():
        entry = by_type.setdefault(info.node_type, [0.0, set()])
        entry[0] += info.real_time.total_seconds() * 1e3
        entry[1].add(info.exec_type)
    total = sum(v[0] for v in by_type.values())
    ranked = sorted(by_type.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"type": t, "ms": ms, "share": ms / total, "kernels": sorted(k)[:3]} for t, (ms, k) in ranked]


def markdown(results: list[dict]) -> str:
    """The results as one Markdown table."""
    lines = ["| size | threads | path | median ms | p90 ms | frames/s | vs ORT fp32 | fidelity dB | "
             "Y-PSNR change dB | GFLOP/s | share of its GEMM peak |", "|" + " --- |" * 11]
    for result in results:
        for path, r in result["rows"].items():
            fid = f"{r['fidelity_db']:.1f}" if r["fidelity_db"] is not None else "-"
            dy = f"{r['ypsnr_change_db']:+.3f}" if r["ypsnr_change_db"] is not None else "-"
            lines.append(f"| {result['size']} | {result['threads']} | {path} | {r['median_ms']:.0f} | "
                         f"{r['p90_ms']:.0f} | {r['frames_per_s']:.2f} | {r['speedup']:.2f}x | {fid} | {dy} | "
                         f"{r['gflops']:.0f} | {100 * r['share_of_peak']:.0f} % of {r['bound']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--weights", "--data", "--fp32", "--int8-cpu"):
        parser.add_argument(name, required=True)
    parser.add_argument("--int8-nncf", help="the openvino profile's graph (run with f32 and bf16 for the rest)")
    parser.add_argument("--int8", action="append", default=[], metavar="LABEL=PATH",
                        help="another int8 QDQ graph for OpenVINO; repeatable")
    parser.add_argument("--bf16-rest", action="store_true",
                        help="run every int8 graph also with bf16 for what stays float")
    parser.add_argument("--gt", help="ground-truth folder (Y-PSNR at 320x480)")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--sizes", default="320x480,720x1280")
    parser.add_argument("--threads", default="1,all", help="comma-separated counts; 'all' = every logical CPU")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per frame and path")
    parser.add_argument("--peak-size", type=int, default=2048, help="GEMM size for the peaks")
    parser.add_argument("--profile", action="store_true", help="OpenVINO per-layer-type times")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args()

    images = frames(args)
    sizes = parse_sizes(args.sizes)
    thread_counts = [os.cpu_count() if t == "all" else int(t) for t in args.threads.split(",")]
    macs = {size: sum(conv_macs(onnx.load(args.fp32), *size).values()) for size in sizes}
    results, peaks, profiles = [], {}, {}
    for threads in thread_counts:
        peaks[threads] = gemm_peaks(threads, size=args.peak_size)
        print(f"GEMM peaks, {threads} threads (GFLOP/s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in peaks[threads].items()), flush=True)
        runners = make_runners(args, threads)
        infos = {p: vars(r.info) for p, r in runners.items()}
        for size in sizes:
            measured = measure(runners, images, size, args.repeats)
            results.append({"size": f"{size[0]}x{size[1]}", "threads": threads,
                            "rows": rows(measured, 2.0 * macs[size], peaks[threads])})
            write(args, images, macs, peaks, results, profiles, infos)  # a later size may not finish
        if args.profile:
            batch = resized(images[0][1], sizes[0])
            profiles[threads] = {p: profile(r, batch) for p, r in runners.items() if isinstance(r, OpenVinoRunner)}
        del runners  # every compiled model of this thread count: free it before the next is compiled
        gc.collect()
    write(args, images, macs, peaks, results, profiles, infos)
    print(markdown(results))
    print(f"machine: {machine()}")


def write(args, images, macs, peaks, results, profiles, infos) -> None:  # noqa: ANN001
    """Write ``--json`` and ``--markdown`` with what has been measured so far."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    payload = {"machine": machine(), "cpu_features": cpu_features(), "uptime_after": uptime,
               "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "images": [n for n, _, _ in images], "repeats": args.repeats,
               "conv_macs": {f"{h}x{w}": m for (h, w), m in macs.items()},
               "gemm_peaks_gflops": peaks, "results": results, "openvino_profile": profiles,
               "runner_info": infos}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=2, default=str)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(markdown(results) + "\n")


if __name__ == "__main__":
    main()
