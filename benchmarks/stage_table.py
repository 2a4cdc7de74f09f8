"""Quality and latency of SAPNet's stage early exit: stages 1..6 of one checkpoint.

Usage:
    python benchmarks/stage_table.py --weights official --data ../shared/data/rain100l \
        [--limit N] [--size 320x480] [--runs 5] [--onnx-dir engines/stages] [--json OUT]

Quality: every image of the paired folder is run once through all stages
(``SAPNet.forward_stages``) and each stage's output is scored against ground truth (Y-PSNR/SSIM,
the toolkit's convention); the rainy input is the baseline. Latency: PyTorch (CPU) with ``stages=K``,
and ONNX Runtime (CPU) on a ``K``-stage fp32 export (written to ``--onnx-dir``), at ``--size``,
interleaved over K so that machine drift spreads over all rows. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from _timing import machine
from sapnet_export.export.onnx_export import export_onnx
from sapnet_export.measure.latency import measure_latency
from sapnet_export.shapes import parse_sizes
from sapnet_export.measure.quality import quality
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights
from training.data import load_paired_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="official")
    parser.add_argument("--data", required=True, help="paired folder (input/ + target/)")
    parser.add_argument("--limit", type=int, help="first N images only")
    parser.add_argument("--size", default="320x480", help="latency frame HxW")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--onnx-dir", type=Path, default=Path("engines/stages"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model, info = load_weights(args.weights)
    pairs = load_paired_folder(args.data)[: args.limit]
    scores = {k: [] for k in range(1, model.stages + 1)}
    baseline = []
    with torch.inference_mode():
        for index, pair in enumerate(pairs, 1):
            outputs = model.forward_stages(torch.from_numpy(pair.rainy)[None])
            for k, out in enumerate(outputs, 1):
                scores[k].append(quality(out[0].numpy(), pair.clean))
            baseline.append(quality(pair.rainy, pair.clean))
            print(f"[{index}/{len(pairs)}] {pair.name}", file=sys.stderr, flush=True)

    size = parse_sizes(args.size)[0]
    runners = {}
    for k in scores:
        onnx_path = args.onnx_dir / f"sapnet_{k}stages.onnx"
        if not onnx_path.exists():
            export_onnx(model, info, onnx_path, stages=k)
        runners[k] = (TorchRunner(model, info, stages=k), OnnxRuntimeRunner(onnx_path))
    torch_ms = {k: [] for k in scores}
    ort_ms = {k: [] for k in scores}
    for _ in range(args.runs):  # interleaved: one run of each configuration per round
        for k, (torch_runner, ort_runner) in runners.items():
            torch_ms[k] += measure_latency(torch_runner, size, runs=1, warmup=1).samples_ms
            ort_ms[k] += measure_latency(ort_runner, size, runs=1, warmup=1).samples_ms

    def mean(values, attr):  # noqa: ANN001, ANN202
        return statistics.fmean(getattr(v, attr) for v in values)

    rows = [{"stages": 0, "y_psnr_db": mean(baseline, "y_psnr_db"), "y_ssim": mean(baseline, "y_ssim")}]
    for k in scores:
        rows.append({"stages": k, "y_psnr_db": mean(scores[k], "y_psnr_db"),
                     "y_ssim": mean(scores[k], "y_ssim"),
                     "torch_ms_p50": statistics.median(torch_ms[k]),
                     "onnxruntime_ms_p50": statistics.median(ort_ms[k])})
    print(f"\n{info.name} ({info.sha256[:12]}), {len(pairs)} images of {args.data}, latency at "
          f"{size[0]}x{size[1]}, {args.runs} interleaved runs, {machine()}")
    print("| stages | Y-PSNR (dB) | Y-SSIM | PyTorch p50 (ms) | ONNX Runtime p50 (ms) | ONNX Runtime fps |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        if row["stages"] == 0:
            print(f"| rainy input | {row['y_psnr_db']:.2f} | {row['y_ssim']:.4f} | | | |")
        else:
            print(f"| {row['stages']} | {row['y_psnr_db']:.2f} | {row['y_ssim']:.4f} | "
                  f"{row['torch_ms_p50']:.0f} | {row['onnxruntime_ms_p50']:.0f} | "
                  f"{1e3 / row['onnxruntime_ms_p50']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"weights": info.name, "sha256": info.sha256,
                                         "data": str(args.data), "images": len(pairs),
                                         "size": list(size), "runs": args.runs, "machine": machine(),
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
