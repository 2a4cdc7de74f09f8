"""Activation QuantizeLinear/DequantizeLinear pairs in int8 rewritten as the equal uint8 pairs.

OpenVINO 2026.4.1's CPU plugin, on a CPU without AMX, runs int8 (signed) activation pairs wrongly; the
uint8 pair with zero point z + 128 and the same scale computes the same values (ONNX operator
specification, QuantizeLinear / DequantizeLinear). Used by the ``openvino`` QDQ profile after NNCF
(sapnet_export/export/int8/nncf_quantize.py) and by the OpenVINO Runner on any int8 QDQ graph
(sapnet_export/runners/openvino_runner.py).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from sapnet_export.errors import CheckFailed


def activations_to_uint8(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every activation QuantizeLinear/DequantizeLinear pair with an int8 zero point
    as the uint8 pair with the same scale and zero point + 128, and return how many nodes changed.

    The two pairs compute the same values: int8 codes -128..127 with zero point z dequantize to
    (q - z) * scale, uint8 codes 0..255 with zero point z + 128 to the same numbers, and the
    quantization rounds and clamps at the same real bounds. Weights (DequantizeLinear of an
    initializer, or the pair of a QuantizeLinear of an initializer) stay int8, as x86 VNNI wants them.
    The Q nodes' outputs in ``value_info`` change to uint8; zero points no node uses any more are
    removed. Why OpenVINO needs it: sapnet_export/export/int8/nncf_quantize.py (module docstring) and
    sapnet_export/runners/openvino_runner.py.

    Raises:
        CheckFailed: an activation pair keeps an int8 zero point that is not an initializer (a graph
            this rewrite does not know; nothing NNCF 3.4 writes).
    """
    initializers = {t.name: t for t in model.graph.initializer}
    activation_q = {n.output[0] for n in model.graph.node  # a QuantizeLinear of an initializer is a weight's
                    if n.op_type == "QuantizeLinear" and n.input[0] not in initializers}
    uint8_zero_point: dict[str, str] = {}
    rewritten_q: set[str] = set()
    changed = 0
    for node in model.graph.node:
        activation = (node.op_type == "QuantizeLinear" and node.output[0] in activation_q) or \
            (node.op_type == "DequantizeLinear" and node.input[0] in activation_q)
        if not activation or len(node.input) < 3:
            continue
        zero_point = node.input[2]
        if zero_point not in initializers:
            raise CheckFailed(f"{node.name}: zero point {zero_point} is not an initializer; cannot make "
                              "this activation uint8 for OpenVINO")
        if initializers[zero_point].data_type != onnx.TensorProto.INT8:
            continue
        if zero_point not in uint8_zero_point:
            value = numpy_helper.to_array(initializers[zero_point]).astype(np.int16) + 128
            tensor = numpy_helper.from_array(value.astype(np.uint8), f"{zero_point}_uint8")
            model.graph.initializer.append(tensor)
            uint8_zero_point[zero_point] = tensor.name
        node.input[2] = uint8_zero_point[zero_point]
        if node.op_type == "QuantizeLinear":
            rewritten_q.add(node.output[0])
        changed += 1
    for info in model.graph.value_info:
        if info.name in rewritten_q:
            info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return changed
