"""Seam error of tiled inference against untiled, as a function of the overlap (for choosing the default).

Usage:
    python benchmarks/tiling_seams.py --model engines/sapnet.onnx --data ../shared/data/rain100l/input \
        [--limit 5] [--tile 160] [--overlaps 0,16,32,48,64,96] [--json OUT]

For each image (evenly spaced ``--limit`` of them), the untiled ONNX Runtime output is the reference; the
same model is run on ``--tile`` x ``--tile`` tiles overlapping by each overlap and blended. Tiles run
alone (:func:`sapnet_export.model.tiling.run_tiled`); with a shared-pooling export (``sapnet-export onnx
--shared-pooling``) they also run as one batch sharing the frame's pooling
(:func:`sapnet_export.model.tiling.run_tiled_shared_pooling`, what ``run --tile`` does with it). Prints, per
overlap, the fidelity PSNR (dB, peak 1, clipped) of tiled against untiled (mean and min over images), the
largest uint8 difference, the number of tiles, the smallest overlap actually used (tiles are spread
evenly over the frame, so often more than asked) and the median seconds per frame of each way (one run
each, after the untiled run warmed the session; wall clock). ``--reference F.onnx`` (e.g. the fp32 export
for an int8 model) adds the fidelity of the untiled and of each tiled output against that model's
untiled output: whether tiling adds error to what the model's precision already costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced, read_image
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.model.tiling import axis_starts, run_tiled, run_tiled_shared_pooling, tile_count


def effective_overlap(height: int, width: int, tile: int, overlap: int) -> int | None:
    """The smallest overlap between neighbouring tiles actually used (tiles are spread evenly, so it
    is often more than asked); None for a single tile."""
    shared = []
    for length in (height, width):
        starts = axis_starts(length, tile, overlap)
        size = min(tile, length)
        shared += [a + size - b for a, b in zip(starts, starts[1:])]
    return min(shared) if shared else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="ONNX file (fp32 recommended)")
    parser.add_argument("--data", required=True, help="folder of images")
    parser.add_argument("--limit", type=int, default=5, help="images, evenly spaced")
    parser.add_argument("--tile", type=int, default=160, help="square tile size in pixels")
    parser.add_argument("--overlaps", default="0,16,32,48,64,96", help="comma-separated pixels")
    parser.add_argument("--reference", help="ONNX file whose untiled output the tiled ones are also "
                        "compared with (e.g. the fp32 export for an int8 model)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    runner = OnnxRuntimeRunner(args.model)
    overlaps = [int(v) for v in args.overlaps.split(",")]
    items = evenly_spaced(discover_images([args.data]), args.limit)
    tile = (args.tile, args.tile)
    ways = {"alone": lambda image, ov: run_tiled(runner.run, image, tile, ov)}
    if runner.shared_pooling:
        ways["shared"] = lambda image, ov: run_tiled_shared_pooling(runner.run_tiles, image, tile, ov)
    results = {(way, ov): [] for way in ways for ov in overlaps}
    whole_s = []
    reference = OnnxRuntimeRunner(args.reference) if args.reference else None
    untiled_vs_reference = []
    for index, (path, _) in enumerate(items, 1):
        image = read_image(path)[None]
        start = time.perf_counter()
        whole = runner.run(image)
        whole_s.append(time.perf_counter() - start)
        ref = reference.run(image) if reference else None
        if reference:
            untiled_vs_reference.append(fidelity(ref, whole).psnr_db)
        for (way, ov), values in results.items():
            start = time.perf_counter()
            tiled = ways[way](image, ov)
            seconds = time.perf_counter() - start
            fid = fidelity(whole, tiled)
            values.append((fid.psnr_db, fid.max_abs_u8, tile_count(*image.shape[2:], tile, ov),
                           effective_overlap(*image.shape[2:], args.tile, ov), seconds,
                           fidelity(ref, tiled).psnr_db if reference else None))
        print(f"[{index}/{len(items)}] {path.name}: " + ", ".join(
            f"{way} ov {ov}: {values[-1][0]:.1f} dB" for (way, ov), values in results.items()), flush=True)
    print(f"\n{runner.info.stages} stages, tile {args.tile}x{args.tile}, {len(items)} images, "
          f"{runner.info.model} ({runner.info.precision}), {machine()}; untiled: median "
          f"{statistics.median(whole_s):.2f} s per frame")
    if reference:
        print(f"untiled vs {args.reference} untiled: {statistics.fmean(untiled_vs_reference):.2f} / "
              f"{min(untiled_vs_reference):.2f} dB (mean / min)")
    extra = " tiled vs reference untiled dB (mean / min) |" if reference else ""
    print("| tiles | overlap asked px | smallest overlap used px | tiles per frame | tiled vs untiled dB "
          f"(mean / min) | max diff u8 | s per frame |{extra}")
    print("| --- " * (8 if reference else 7) + "|")
    rows = {}
    for (way, ov), values in results.items():
        psnrs = [v[0] for v in values]
        row = {"psnr_mean_db": statistics.fmean(psnrs), "psnr_min_db": min(psnrs),
               "max_abs_u8": max(v[1] for v in values), "tiles": sorted({v[2] for v in values}),
               "overlap_used": sorted({v[3] for v in values if v[3] is not None}),
               "seconds_median": statistics.median(v[4] for v in values)}
        if reference:
            row["vs_reference_mean_db"] = statistics.fmean(v[5] for v in values)
            row["vs_reference_min_db"] = min(v[5] for v in values)
        rows.setdefault(way, {})[ov] = row
        print(f"| {way} | {ov} | {'/'.join(map(str, row['overlap_used']))} | "
              f"{'/'.join(map(str, row['tiles']))} | {row['psnr_mean_db']:.2f} / "
              f"{row['psnr_min_db']:.2f} | {row['max_abs_u8']} | {row['seconds_median']:.2f} |"
              + (f" {row['vs_reference_mean_db']:.2f} / {row['vs_reference_min_db']:.2f} |" if reference else ""))
    if args.json:
        args.json.write_text(json.dumps({"tile": args.tile, "model": runner.info.model,
                                         "precision": runner.info.precision,
                                         "images": [str(p) for p, _ in items], "machine": machine(),
                                         "untiled_seconds_median": statistics.median(whole_s),
                                         "reference": args.reference,
                                         "untiled_vs_reference_db": untiled_vs_reference,
                                         "results": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
