"""TensorRT's rules for explicitly quantized (QDQ) ONNX graphs, checked before a graph is handed over.

Rules, from TensorRT's "Explicit Quantization" documentation (Developer Guide, "Working with Quantized
Types") and the ONNX parser's behaviour measured with TensorRT-RTX (docs/design.md section 3):

1. zero points, where given, are all 0 (TensorRT supports symmetric quantization only; the parser
   fails with ``Non-zero zero point is not supported``);
2. int8 only: zero points are int8 (not uint8, int16, int32), and every DequantizeLinear of a
   constant dequantizes int8 data (TensorRT-RTX refuses a DequantizeLinear of an int32 bias);
3. scales are constants (initializers), finite and positive;
4. per-channel (more than one scale) only on a DequantizeLinear of a constant weight feeding a Conv's
   weight input, on axis 0 (output channels); activations are per tensor;
5. a Conv's bias is not quantized (it does not come from a DequantizeLinear).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from sapnet_export.errors import CheckFailed

_QDQ = ("QuantizeLinear", "DequantizeLinear")


def tensorrt_qdq_violations(model: onnx.ModelProto) -> list[str]:
    """Every place where ``model`` breaks TensorRT's QDQ rules (module docstring), one line each naming
    the node; an empty list means the graph is acceptable. A graph without QDQ nodes has none."""
    inits = {init.name: init for init in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
            source = producer.get(node.input[2])
            if source is not None and source.op_type == "DequantizeLinear":
                problems.append(f"{node.name}: bias is quantized (DequantizeLinear {source.name}); "
                                "TensorRT wants a float bias")
        if node.op_type not in _QDQ:
            continue
        where = f"{node.op_type} {node.name}"
        scale_name = node.input[1]
        if scale_name not in inits:
            problems.append(f"{where}: scale {scale_name!r} is not a constant initializer")
            continue
        scale = numpy_helper.to_array(inits[scale_name])
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            problems.append(f"{where}: scale has non-positive or non-finite values")
        if len(node.input) > 2 and node.input[2]:
            zp_name = node.input[2]
            if zp_name not in inits:
                problems.append(f"{where}: zero point {zp_name!r} is not a constant initializer")
            else:
                zero_point = inits[zp_name]
                if zero_point.data_type != onnx.TensorProto.INT8:
                    problems.append(f"{where}: zero point is "
                                    f"{onnx.TensorProto.DataType.Name(zero_point.data_type).lower()}, "
                                    "not int8")
                if np.any(numpy_helper.to_array(zero_point) != 0):
                    problems.append(f"{where}: zero point is not 0 (asymmetric quantization)")
        data = inits.get(node.input[0])
        if node.op_type == "DequantizeLinear" and data is not None \
                and data.data_type != onnx.TensorProto.INT8:
            problems.append(f"{where}: dequantizes "
                            f"{onnx.TensorProto.DataType.Name(data.data_type).lower()} data, not int8")
        if scale.size > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)  # ONNX default: 1
            users = consumers.get(node.output[0], [])
            weight_of_conv = (node.op_type == "DequantizeLinear" and data is not None and users
                              and all(u.op_type == "Conv" and u.input[1] == node.output[0] for u in users))
            if not weight_of_conv:
                problems.append(f"{where}: per-channel scales on something other than a Conv weight "
                                "(activations must be per tensor)")
            elif axis != 0:
                problems.append(f"{where}: per-channel axis {axis}, TensorRT wants axis 0")
    return problems


def check_tensorrt_qdq(model: onnx.ModelProto, name: str = "graph") -> None:
    """Raise :class:`~sapnet_export.errors.CheckFailed` listing the violations of
    :func:`tensorrt_qdq_violations` (the first 20), or return when there are none."""
    problems = tensorrt_qdq_violations(model)
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckFailed(f"{name}: {len(problems)} violations of TensorRT's QDQ rules:\n  "
                          + "\n  ".join(problems[:20]) + more)
