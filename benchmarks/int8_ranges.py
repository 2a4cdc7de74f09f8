"""Activation ranges per stage: calibration frames against held-out sets (where INT8 clips in heavy rain).

Usage:
    python benchmarks/int8_ranges.py --weights ../shared/weights/sapnet_official_model11.pth \
        --calib calibration/real-rain-320x480 --set heavy=engines/heavy-rain/input \
        [--set light=../shared/data/rain100l/input] [--limit 8] [--calib-limit 20] [--json OUT]

The fp32 graph is run by ONNX Runtime on the calibration frames and on ``--limit`` evenly spaced
images of each set, recording every float tensor's minimum and maximum
(:func:`sapnet_export.export.int8.coverage.observed_ranges`: raw ranges, as minmax calibration would
take them). Tensors are sorted into the kinds the recurrent network has, per stage:

- ``c``: the LSTM cell state (the Add of ``f * c + i * g``);
- ``h``: the hidden state ``o * tanh(c)``, the input of the residual blocks;
- ``residual sum``: the Add of each residual block (before its ReLU);
- ``CRA input``: what each channel attention (GlobalAveragePool) averages;
- ``stage output x``: the output conv plus the input image (``x`` fed to the next stage);
- ``conv output``: every other Conv output.

For each kind and stage it prints the largest magnitude seen in calibration and in each set, and the
largest ``excess`` of a tensor of that kind (how far the set's values go beyond the calibration range,
as a share of its width; :func:`sapnet_export.export.int8.coverage.compare_ranges`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import onnx

from _timing import machine
from sapnet_export.data.images import discover_images, evenly_spaced, read_image
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.export.int8.coverage import compare_ranges, node_stages, observed_ranges
from sapnet_export.export.int8.quantize import node_groups
from sapnet_export.export.onnx_export import DEFAULT_OPSET, to_onnx_proto
from sapnet_export.model.checkpoints import load_weights

KINDS = ("c", "h", "residual sum", "CRA input", "stage output x", "conv output")


def tensor_kinds(model: onnx.ModelProto) -> dict[str, str]:
    """Kind (:data:`KINDS`) of every tensor produced by a node of the exported graph."""
    groups = node_groups(model)
    producer = {out: node for node in model.graph.node for out in node.output}
    kinds = {}
    for node in model.graph.node:
        group, out = groups[node.name], node.output[0]
        inputs = [producer.get(i) for i in node.input]
        if node.op_type == "Add" and group == "lstm_cell" and all(p is not None and p.op_type == "Mul"
                                                                 for p in inputs):
            kinds[out] = "c"
        elif node.op_type == "Mul" and group == "lstm_cell" and any(p is not None and p.op_type == "Tanh"
                                                                   for p in inputs):
            kinds[out] = "h"
        elif node.op_type == "Add" and group.startswith("res_conv"):
            kinds[out] = "residual sum"
        elif node.op_type == "Add" and group == "conv":
            kinds[out] = "stage output x"
        elif node.op_type == "Conv":
            kinds[out] = "conv output"
        if node.op_type == "GlobalAveragePool":
            kinds[node.input[0]] = "CRA input"
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="official")
    parser.add_argument("--calib", required=True, type=Path)
    parser.add_argument("--set", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--calib-limit", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model, info = load_weights(args.weights)
    proto = to_onnx_proto(model, model.resolve_stages(None), DEFAULT_OPSET, None)
    frames = load_calibration(args.calib).frames
    frames = evenly_spaced(list(frames), args.calib_limit) if args.calib_limit else list(frames)
    kinds, stages = tensor_kinds(proto), node_stages(proto)
    producer = {out: node.name for node in proto.graph.node for out in node.output}
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fp32.onnx"
        onnx.save(proto, str(path))
        ranges = {"calibration": observed_ranges(path, frames, tensors=list(kinds))}
        for spec in args.set:
            name, folder = spec.split("=", 1)
            items = evenly_spaced(discover_images([Path(folder)]), args.limit)
            ranges[name] = observed_ranges(path, (read_image(p) for p, _ in items), tensors=list(kinds))
    rows = []
    for name in ranges:
        if name == "calibration":
            continue
        coverage = compare_ranges(proto, ranges["calibration"], ranges[name], frames=args.limit,
                                  source=name, symmetric=False)
        excess = {t.name: t.excess for t in coverage.tensors}
        for kind in KINDS:
            for stage in sorted(set(stages.values())):
                names = [t for t, k in kinds.items() if k == kind
                         and stages.get(producer.get(t, ""), 0) == stage
                         and t in ranges[name] and t in ranges["calibration"]]
                if not names:
                    continue
                magnitude = {key: max(max(abs(v) for v in r[t]) for t in names) for key, r in
                             (("calibration", ranges["calibration"]), (name, ranges[name]))}
                rows.append({"set": name, "kind": kind, "stage": stage, "tensors": len(names),
                             "calibration_max_abs": magnitude["calibration"],
                             "set_max_abs": magnitude[name],
                             "max_excess": max(excess.get(t, 0.0) for t in names)})
                print(f"{name:>6} {kind:>15} stage {stage}: {len(names):3d} tensors, max |value| "
                      f"calibration {magnitude['calibration']:8.3f}, {name} {magnitude[name]:8.3f}; "
                      f"largest excess {100 * rows[-1]['max_excess']:6.1f} %", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"weights": info.name, "calibration": str(args.calib),
                                         "frames": len(frames), "limit": args.limit, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
