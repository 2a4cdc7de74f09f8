"""INT8 recipes (calibration set x method x QDQ profile) measured on light and heavy rain.

Usage:
    python benchmarks/int8_recipes.py --weights ../shared/weights/sapnet_official_model11.pth \
        --calib calibration/real-rain-320x480 [--calib calibration/mixed-64 ...] \
        --methods percentile,minmax --profiles tensorrt,cpu [--keep-fp32 conv0 ...] \
        --set light=../shared/data/rain100l/input:../shared/data/rain100l/target \
        --set heavy=engines/heavy-rain/input:engines/heavy-rain/target --limit 10 \
        [--float-precision fp32|fp16] [--work /tmp/int8-recipes] [--json OUT.jsonl]

The ``openvino`` profile takes ``--methods minmax,mean-minmax`` (NNCF's range estimators).
For every recipe, the graph is calibrated once (ONNX Runtime on the CPU; the ranges are cached under
``--work`` per set, profile and method, so a rerun only measures) and fully quantized (minus
``--keep-fp32`` groups; with ``--float-precision fp16`` what stays float is then converted to fp16, as
``onnx --float-precision fp16`` does), then run on the CPU (by ONNX Runtime; by OpenVINO for the
``openvino`` profile) over ``--limit`` evenly spaced images of each set. Per set it prints what ``verify`` measures: fidelity PSNR against PyTorch fp32 (mean and worst
image, dB) and the change of Y-PSNR against ground truth (int8 minus fp32; mean and worst image, dB),
and the share of Conv MACs in int8. PyTorch references are computed once per run. One JSON line per
recipe goes to ``--json``. Speed is not measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import onnx
from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.export.int8.mixed_fp16 import float_parts_to_fp16
from sapnet_export.export.int8.quantize import profile_runner, select_nodes
from sapnet_export.export.int8.sensitivity import Int8Session
from sapnet_export.export.onnx_export import DEFAULT_OPSET, to_onnx_proto
from sapnet_export.measure.evaluation import evaluate, prepare_held_out
from sapnet_export.model.checkpoints import load_weights
from sapnet_export.runners.torch_runner import TorchRunner


def score(results) -> dict:  # noqa: ANN001 - list[ImageResult]
    """verify's figures over one set: fidelity mean/worst, Y-PSNR change mean/worst (dB), and the
    images of the worst fidelity and of the worst change."""
    fid = [r.fidelity.psnr_db for r in results]
    delta = [r.quality.y_psnr_db - r.reference_quality.y_psnr_db for r in results]
    worst = min(results, key=lambda r: r.fidelity.psnr_db).name
    worst_change = results[delta.index(min(delta))].name
    return {"images": len(results), "fidelity_mean_db": statistics.fmean(fid),
            "fidelity_worst_db": min(fid), "worst_image": worst, "worst_change_image": worst_change,
            "y_psnr_change_mean_db": statistics.fmean(delta), "y_psnr_change_worst_db": min(delta)}


def cached_references(reference, items, gt: Path, folder: Path, weights_sha: str) -> list:  # noqa: ANN001
    """:func:`prepare_held_out`, with each PyTorch output kept in ``folder`` (keyed by the weights'
    and the image's sha256) so that later runs skip the reference (the slowest part on 2 cores)."""
    import numpy as np

    from sapnet_export.fileio import sha256_file
    from sapnet_export.runners.base import Runner

    class Cached(Runner):  # replays a stored reference output for one image
        def __init__(self, output) -> None:  # noqa: ANN001
            self.output, self.info = output, reference.info

        def _run(self, batch):  # noqa: ANN001, ANN202
            return self.output

    folder.mkdir(parents=True, exist_ok=True)
    held = []
    for path, relative in items:
        stored = folder / f"{weights_sha[:12]}-{sha256_file(path)[:16]}.npy"
        if stored.is_file():
            item = prepare_held_out(Cached(np.load(stored)), [(path, relative)], gt)[0]
        else:
            item = prepare_held_out(reference, [(path, relative)], gt)[0]
            np.save(stored, item.reference)
        held.append(item)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="official")
    parser.add_argument("--calib", action="append", required=True, type=Path)
    parser.add_argument("--methods", default="percentile")
    parser.add_argument("--profiles", default="tensorrt")
    parser.add_argument("--keep-fp32", action="append", default=[],
                        help="groups kept in float, comma-separated; repeat for several variants of "
                        "each calibration ('none': full INT8)")
    parser.add_argument("--set", action="append", required=True, metavar="NAME=INPUT:GT")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("/tmp/int8-recipes"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--float-precision", choices=("fp32", "fp16"), default="fp32")
    args = parser.parse_args()
    model, info = load_weights(args.weights)
    stages = model.resolve_stages(None)
    reference = TorchRunner(model, info, stages=stages, device="cpu")
    held = {}
    for spec in args.set:
        name, paths = spec.split("=", 1)
        data, gt = paths.split(":", 1)
        items = evenly_spaced(discover_images([Path(data)]), args.limit)
        held[name] = cached_references(reference, items, Path(gt), args.work / "references",
                                       info.sha256)
        print(f"{name}: {len(items)} images from {data}", flush=True)
    proto = to_onnx_proto(model, stages, DEFAULT_OPSET, None)
    variants = [[] if v == "none" else v.split(",") for v in (args.keep_fp32 or ["none"])]
    everything = [item for items in held.values() for item in items]
    print(machine(), flush=True)
    for calib_path in args.calib:
        calibration = load_calibration(calib_path)
        for profile in args.profiles.split(","):
            for method in args.methods.split(","):
                work = args.work / f"{calib_path.name}-{profile}-{method}"
                for groups in variants:
                    start = time.perf_counter()
                    keep = select_nodes(proto, groups) if groups else []
                    session = Int8Session(proto, calibration.frames, everything, profile=profile,
                                          calib_method=method, keep_fp32=keep, workdir=work)
                    path, quantized, share = session.quantize(session.quantizable_groups)
                    if args.float_precision == "fp16":
                        path = work / f"fp16-parts-{'-'.join(groups) or 'none'}.onnx"
                        onnx.save(float_parts_to_fp16(quantized)[0], str(path))
                    runner = profile_runner(profile, path)  # OpenVINO for the openvino profile
                    synthetic = calibration.manifest.get("synthetic_rain") or {}
                    row = {"calibration": str(calib_path), "frames": int(calibration.frames.shape[0]),
                           "synthetic_rain": synthetic.get("preset"), "profile": profile,
                           "method": method, "keep_float": groups, "float_precision": args.float_precision,
                           "int8_mac_share": share,
                           "weights": info.name,
                           "sets": {name: score(evaluate(runner, items)) for name, items in held.items()},
                           "seconds": time.perf_counter() - start}
                    print(json.dumps(row), flush=True)
                    if args.json:
                        with args.json.open("a") as out:
                            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
