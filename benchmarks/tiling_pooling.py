"""Tiled against untiled fidelity in PyTorch: tiles alone, tiles sharing the frame's pooling, and why.

Usage:
    python benchmarks/tiling_pooling.py --weights official --data ../shared/data/rain100l/input \
        [--limit 5] [--tile 160] [--overlaps 0,32,64,96] [--json OUT]

Every CRA layer (10 per stage, 60 in all) scales its channels by a function of the global average of
its input (``CRALayer``, official ``Modeling/network.py``), so a tile sees the statistics of the tile,
not of the frame. This script runs PyTorch fp32 per image: whole (the reference), then in tiles three
ways:

- alone: each tile is its own input (:func:`~sapnet_export.model.tiling.run_tiled`, what ONNX Runtime and
  TensorRT do with ``run --tile``);
- shared: the tiles run as one batch whose CRA layers pool over all of them with each pixel's share
  of the blend (:func:`~sapnet_export.model.tiling.run_tiled_shared_pooling`, what ``run --tile`` does with
  the torch backend);
- oracle: each tile is given the whole frame's pooled values, recorded on the whole-frame run by
  forward hooks on ``AdaptiveAvgPool2d`` and replayed in call order; only the receptive-field error is
  left (a diagnostic, it needs the whole-frame run).

Fidelity: PSNR against the whole-frame output (dB, peak 1, clipped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced, read_image
from sapnet_export.measure.fidelity import fidelity
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.tiling import run_tiled, run_tiled_shared_pooling
from sapnet_export.model.checkpoints import load_weights


class PoolingReplay:
    """Forward hooks on every global average pool of ``model``: ``record`` keeps each call's output,
    ``replay`` returns the recorded outputs in the same order (per module), ``off`` leaves them alone."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.pools = [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
        self.recorded = {id(p): [] for p in self.pools}
        self.cursor = {id(p): 0 for p in self.pools}
        self.mode = "off"
        for pool in self.pools:
            pool.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):  # noqa: ANN001, ANN202 - torch hook signature
        if self.mode == "record":
            self.recorded[id(module)].append(output.clone())
        elif self.mode == "replay":
            index = self.cursor[id(module)]
            self.cursor[id(module)] = index + 1
            return self.recorded[id(module)][index]
        return None

    def start(self, mode: str) -> None:
        if mode == "record":
            self.recorded = {id(p): [] for p in self.pools}
        self.cursor = {id(p): 0 for p in self.pools}
        self.mode = mode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="official")
    parser.add_argument("--data", required=True, help="folder of images")
    parser.add_argument("--limit", type=int, default=5, help="images, evenly spaced")
    parser.add_argument("--tile", type=int, default=160, help="square tile size in pixels")
    parser.add_argument("--overlaps", default="0,32,64,96", help="comma-separated pixels")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    model, info = load_weights(args.weights)
    model.eval()
    runner = TorchRunner(model, info, device="cpu")
    hooks = PoolingReplay(model)
    overlaps = [int(v) for v in args.overlaps.split(",")]

    def run(mode: str):  # noqa: ANN202
        def forward(batch):  # noqa: ANN001, ANN202
            hooks.start(mode)
            with torch.inference_mode():
                return model(torch.from_numpy(batch)).numpy()
        return forward

    rows = []
    for path, _ in evenly_spaced(discover_images([args.data]), args.limit):
        image = read_image(path)[None]
        whole = run("record")(image)
        for overlap in overlaps:
            tile = (args.tile, args.tile)
            alone = fidelity(whole, run_tiled(run("off"), image, tile, overlap)).psnr_db
            hooks.start("off")
            shared = fidelity(whole, run_tiled_shared_pooling(runner.run_tiles, image, tile, overlap)).psnr_db
            oracle = fidelity(whole, run_tiled(run("replay"), image, tile, overlap)).psnr_db
            rows.append({"image": str(path), "size": list(image.shape[2:]), "overlap": overlap,
                         "alone_db": alone, "shared_db": shared, "oracle_db": oracle})
            print(f"{path.name} {image.shape[2]}x{image.shape[3]} tile {args.tile} overlap {overlap}: "
                  f"alone {alone:.1f} dB, shared {shared:.1f} dB, oracle {oracle:.1f} dB", flush=True)
    print(f"\n{info.name}, {model.stages} stages, tile {args.tile}x{args.tile}, {machine()}")
    print("| overlap px | tiles alone dB (mean / min) | tiles sharing pooling dB (mean / min) | "
          "oracle dB (mean / min) |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for overlap in overlaps:
        picked = [r for r in rows if r["overlap"] == overlap]
        summary[overlap] = {key: (statistics.fmean(r[key] for r in picked), min(r[key] for r in picked))
                            for key in ("alone_db", "shared_db", "oracle_db")}
        print(f"| {overlap} | " + " | ".join(f"{mean:.2f} / {low:.2f}" for mean, low in summary[overlap].values())
              + " |")
    if args.json:
        args.json.write_text(json.dumps({"weights": info.name, "tile": args.tile, "machine": machine(),
                                         "rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
