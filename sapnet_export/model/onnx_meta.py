"""The graph contract of an export: its input and output names, the shared-pooling input and the weights
that make it compute a whole frame, and what an exported ONNX file says about itself (metadata_props,
the precision of its graph)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.errors import InputError

#: Name of the graph input: float32 [N, 3, H, W], RGB in [0, 1].
INPUT_NAME = "rainy"
#: Name of the graph output: float32 [N, 3, H, W], not clipped.
OUTPUT_NAME = "derained"
#: Name of the second input of a shared-pooling export (``sapnet-export onnx --shared-pooling``):
#: float32 [N, 1, H, W], weights summing to 1 over the batch. Every channel attention pools
#: ``sum over N, H, W of x * pool_weights`` (:meth:`sapnet_export.model.network.CRALayer.forward`), so a batch
#: holding the tiles of one frame shares the frame's pooling.
POOL_WEIGHTS_NAME = "pool_weights"


def whole_frame_pool_weights(height: int, width: int) -> np.ndarray:
    """float32 [1, 1, H, W] filled with 1 / (H x W): the ``pool_weights`` under which a shared-pooling
    graph computes one whole frame exactly as the trained network does (each CRA layer's weighted sum
    is then the frame's global average)."""
    return np.full((1, 1, height, width), 1.0 / (height * width), dtype=np.float32)


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX file (with any external data).

    Raises:
        InputError: missing file or not a parsable ONNX model; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # DecodeError, OSError...
        raise InputError(f"{path}: not a readable ONNX model: {exc}") from exc


def check_io(model: onnx.ModelProto, path: str | os.PathLike) -> bool:
    """Check that ``model`` has a SAPNet export's inputs and output; return whether it is a
    shared-pooling export (inputs ``rainy`` and ``pool_weights``) rather than a plain one (``rainy``).

    Raises:
        InputError: other input or output names; the message names ``path``.
    """
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if outputs == [OUTPUT_NAME] and inputs in ([INPUT_NAME], [INPUT_NAME, POOL_WEIGHTS_NAME]):
        return len(inputs) == 2
    raise InputError(f"{path}: expected input {INPUT_NAME!r} (and {POOL_WEIGHTS_NAME!r} for a "
                     f"shared-pooling export) and output {OUTPUT_NAME!r}, found inputs {inputs} and "
                     f"outputs {outputs}; export it with 'sapnet-export onnx'")


def pooling_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that pool with ``pool_weights`` in a shared-pooling export: each CRA layer's
    ``Mul`` of its input by the weights and the ``ReduceSum`` over N, H, W after it (none in a plain
    export). The weights are about 1 / (H x W), below float16's normal range (6.1e-5) for any frame
    over 128 x 128 and far below an int8 scale step of the features, so these nodes stay float32."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names = []
    for node in consumers.get(POOL_WEIGHTS_NAME, []):
        names.append(node.name)
        names.extend(c.name for c in consumers.get(node.output[0], []) if c.op_type == "ReduceSum")
    return names


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (keys and values are strings)."""
    return {prop.key: prop.value for prop in model.metadata_props}


def graph_precision(model: onnx.ModelProto) -> str:
    """``int8`` if the graph has QuantizeLinear/DequantizeLinear, ``fp16`` if it has float16
    initializers, else ``fp32``; a ``precision`` metadata entry wins over the guess."""
    declared = metadata(model).get("precision")
    if declared:
        return declared
    ops = {node.op_type for node in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"
