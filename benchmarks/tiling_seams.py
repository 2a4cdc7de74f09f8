"""Seam error of tiled inference against untiled, as a function of the overlap (for choosing the default).

Usage:
    python benchmarks/tiling_seams.py --model engines/sapnet.onnx --data ../shared/data/rain100l/input \
        [--limit 5] [--tile 160] [--overlaps 0,16,32,48,64,96] [--json OUT]

For each image (evenly spaced ``--limit`` of them), the untiled ONNX Runtime output is the reference; the
same model is run on ``--tile`` x ``--tile`` tiles overlapping by each overlap and blended
(:func:`sapnet_export.tiling.run_tiled`). Prints, per overlap, the fidelity PSNR (dB, peak 1, clipped) of
tiled against untiled (mean and min over images), the largest uint8 difference, the number of tiles and
the smallest overlap actually used (tiles are spread evenly over the frame, so often more than asked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _timing import machine
from sapnet_export.images import discover_images, evenly_spaced, read_image
from sapnet_export.metrics import fidelity
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.tiling import axis_starts, run_tiled, tile_count


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
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    runner = OnnxRuntimeRunner(args.model)
    overlaps = [int(v) for v in args.overlaps.split(",")]
    items = evenly_spaced(discover_images([args.data]), args.limit)
    results = {ov: [] for ov in overlaps}
    for index, (path, _) in enumerate(items, 1):
        image = read_image(path)[None]
        whole = runner.run(image)
        for ov in overlaps:
            fid = fidelity(whole, run_tiled(runner.run, image, (args.tile, args.tile), ov))
            results[ov].append((fid.psnr_db, fid.max_abs_u8,
                                tile_count(*image.shape[2:], (args.tile, args.tile), ov),
                                effective_overlap(*image.shape[2:], args.tile, ov)))
        print(f"[{index}/{len(items)}] {path.name}: " + ", ".join(
            f"ov {ov}: {results[ov][-1][0]:.1f} dB" for ov in overlaps), flush=True)
    print(f"\n{runner.info.stages} stages, tile {args.tile}x{args.tile}, {len(items)} images, {machine()}")
    print("| overlap asked px | smallest overlap used px | tiles per frame | tiled vs untiled dB (mean / min) "
          "| max diff u8 |")
    print("| --- | --- | --- | --- | --- |")
    rows = {}
    for ov, values in results.items():
        psnrs = [v[0] for v in values]
        rows[ov] = {"psnr_mean_db": statistics.fmean(psnrs), "psnr_min_db": min(psnrs),
                    "max_abs_u8": max(v[1] for v in values), "tiles": sorted({v[2] for v in values}),
                    "overlap_used": sorted({v[3] for v in values if v[3] is not None})}
        print(f"| {ov} | {'/'.join(map(str, rows[ov]['overlap_used']))} | "
              f"{'/'.join(map(str, rows[ov]['tiles']))} | {rows[ov]['psnr_mean_db']:.2f} / "
              f"{rows[ov]['psnr_min_db']:.2f} | {rows[ov]['max_abs_u8']} |")
    if args.json:
        args.json.write_text(json.dumps({"tile": args.tile, "images": [str(p) for p, _ in items],
                                         "machine": machine(), "results": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
