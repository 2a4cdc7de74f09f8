"""What an exported ONNX file says about itself: metadata_props and the precision of its graph."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from .errors import InputError

#: Name of the graph input: float32 [N, 3, H, W], RGB in [0, 1].
INPUT_NAME = "rainy"
#: Name of the graph output: float32 [N, 3, H, W], not clipped.
OUTPUT_NAME = "derained"


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
