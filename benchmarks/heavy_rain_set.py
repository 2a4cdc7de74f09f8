"""A heavy-rain held-out set with ground truth: the toolkit's renderer over Rain100L's clean targets.

Usage:
    python benchmarks/heavy_rain_set.py [--clean ../shared/data/rain100l/target] [-o engines/heavy-rain]
        [--count 100] [--preset heavy] [--seed 17] [--force]

Writes ``OUT/input/N.png`` (rainy) and ``OUT/target/N.png`` (the clean image, copied bit for bit as PNG)
for ``--count`` clean images evenly spaced over the folder (natural order), and ``OUT/SOURCES.json``
(every source's sha256, the preset's ranges, the seed, each image's sampled rain parameters and the
command). Image N gets rain from ``numpy.random.default_rng((seed, N_index))``
(:func:`sapnet_export.data.synthetic_rain.make_rainy`), so one seed gives the same set on any machine.
The default output is under ``engines/``, which git ignores: no image is committed.

Use it as ``verify ... --data OUT/input --gt OUT/target``. Calibration must not use these clean images
(build synthetic-rain calibration sets over other clean frames, e.g. ``sapnet-train photos``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sapnet_export.provenance import stamp
from sapnet_export.data.images import discover_images, evenly_spaced, read_image, write_png
from sapnet_export.data.synthetic_rain import PRESETS, make_rainy
from sapnet_export.fileio import sha256_file, write_json


def build_set(clean_dir: Path, output: Path, *, count: int, preset: str, seed: int,
              force: bool) -> dict:
    """Render ``preset`` rain on ``count`` evenly spaced clean images of ``clean_dir`` into ``output``
    (assembled in a temporary folder, then renamed into place). Returns the SOURCES.json record."""
    if output.exists() and not force:
        sys.exit(f"{output}: already exists; pass --force to replace it")
    items = evenly_spaced(discover_images([clean_dir]), count)
    ranges = PRESETS[preset]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    records = []
    try:
        for index, (path, relative) in enumerate(items):
            clean = read_image(path)
            rainy, params = make_rainy(clean, (seed, index), ranges)
            write_png(tmp / "input" / relative, rainy)
            write_png(tmp / "target" / relative, clean)
            records.append({"image": str(relative), "clean": str(path), "clean_sha256": sha256_file(path),
                            "seed": [seed, index], "mean_rain": float(np.mean(rainy - clean)),
                            "params": params.as_dict()})
        record = {"format": "sapnet-export/synthetic-rain-set-v1", "preset": preset,
                  "ranges": asdict(ranges), "seed": seed, "count": len(records),
                  "renderer": "sapnet_export.data.synthetic_rain.make_rainy",
                  **stamp(), "images": records}
        write_json(tmp / "SOURCES.json", record)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=Path, default=Path("../shared/data/rain100l/target"),
                        help="folder of clean images (default: Rain100L's targets)")
    parser.add_argument("-o", "--output", type=Path, default=Path("engines/heavy-rain"))
    parser.add_argument("--count", type=int, default=100, help="images, evenly spaced over the folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="heavy")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.count < 1:
        sys.exit(f"--count {args.count}: need at least 1 image")
    if not args.clean.is_dir():
        sys.exit(f"{args.clean}: no such folder of clean images")
    record = build_set(args.clean, args.output, count=args.count, preset=args.preset, seed=args.seed,
                       force=args.force)
    rain = [r["mean_rain"] for r in record["images"]]
    print(f"wrote {record['count']} {args.preset} rainy/clean pairs to {args.output} "
          f"(mean rainy - clean {np.mean(rain):.3f}, min {min(rain):.3f}, max {max(rain):.3f})")


if __name__ == "__main__":
    main()
