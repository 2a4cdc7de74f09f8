"""What a parsed TensorRT network holds: its compute layers with the precision each is typed to, and
its I/O tensors, as the sidecar records them (:func:`sapnet_export.engine.build.describe_build`)."""

from __future__ import annotations

import collections

#: Layer types that compute nothing (weights, shapes, the Q/DQ markers); left out of the layer list.
_BOOKKEEPING = {"CONSTANT", "SHAPE", "QUANTIZE", "DEQUANTIZE"}
#: TensorRT ``DataType`` member -> the numpy-style name the sidecar uses.
_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
           "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8", "INT4": "int4"}


def dtype_name(dtype: object) -> str:
    """A TensorRT ``DataType`` as ``float32``, ``float16``, ``int8``, ..."""
    member = str(dtype).rsplit(".", 1)[-1]
    return _DTYPES.get(member, member.lower())


def _layer_type(layer: object) -> str:
    return str(layer.type).rsplit(".", 1)[-1]


def network_layers(network: object) -> list[dict]:
    """The compute layers of a parsed network with the precision they are typed to run in.

    A strongly typed network fixes each layer's precision from its tensors' types: a Convolution whose
    input comes from a DequantizeLayer runs in int8 (TensorRT fuses the Q/DQ pair into it); any other
    layer in its output's type. Constant, Shape and Q/DQ layers are left out.

    Returns:
        ``[{"name": str, "type": "CONVOLUTION"|..., "precision": "int8"|"float16"|"float32"|...}]``.
    """
    producers = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producers[layer.get_output(j).name] = _layer_type(layer)
    rows = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        kind = _layer_type(layer)
        if kind in _BOOKKEEPING:
            continue
        precision = dtype_name(layer.get_output(0).dtype) if layer.num_outputs else "-"
        if kind == "CONVOLUTION" and producers.get(layer.get_input(0).name) == "DEQUANTIZE":
            precision = "int8"
        rows.append({"name": layer.name, "type": kind, "precision": precision})
    return rows


def precision_histogram(layers: list[dict]) -> dict[str, int]:
    """``{"CONVOLUTION int8": 276, ...}`` from :func:`network_layers` rows, most common first."""
    counts = collections.Counter(f"{row['type']} {row['precision']}" for row in layers)
    return dict(counts.most_common())


def tensor_io(tensor: object, mode: str) -> dict:
    """``{"name", "mode", "dtype", "shape"}`` of a network input or output (``mode``: input/output)."""
    return {"name": tensor.name, "mode": mode, "dtype": dtype_name(tensor.dtype),
            "shape": [int(d) for d in tensor.shape]}
