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
        InputError: missing file, a directory, an empty file, not a parsable ONNX model, or a
            model without a graph (protobuf parses many non-ONNX bytes into an empty message); the
            message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an ONNX file")
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not an ONNX model")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # DecodeError, OSError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable ONNX model: {reason}") from None
    if not model.graph.node or not model.graph.output:
        raise InputError(f"{path}: not an ONNX model: it parses but holds no graph (no nodes or no "
                         "outputs); the file is damaged or of another kind")
    return model


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


#: Per recurrent stage of a SAPNet graph (sapnet_export/model/network.py): Conv nodes (conv0, the
#: LSTM gates, five residual blocks of two, their CRA layers, the output conv) and Tanh nodes (LSTM).
CONV_PER_STAGE, TANH_PER_STAGE = 46, 2
#: The metadata keys every ``sapnet-export onnx`` file carries and the identity check reads.
IDENTITY_KEYS = ("model_name", "stages", "dilations", "input_name", "output_name", "sapnet_export_version")
#: How to get a model the toolkit accepts, appended to every refusal.
EXPORT_HINT = ("export one with 'sapnet-export onnx --weights CHECKPOINT -o MODEL.onnx', or pass "
               "--allow-foreign-model to run it anyway (its outputs are then unverified, and every "
               "summary and report says so)")


def identity_problem(model: onnx.ModelProto) -> str | None:
    """Why ``model`` is not a SAPNet graph written by this toolkit, or None when it is.

    Checks the toolkit's metadata (:data:`IDENTITY_KEYS`) and that the graph matches it: Conv and
    Tanh counts are :data:`CONV_PER_STAGE` and :data:`TANH_PER_STAGE` per stage, and the dilated
    Conv nodes use exactly the recorded dilations (two per residual block and stage). A graph that
    merely uses the names ``rainy``/``derained`` fails here.
    """
    meta = metadata(model)
    missing = [key for key in IDENTITY_KEYS if key not in meta]
    if missing:
        return f"it has no sapnet-export metadata ({', '.join(missing)} missing)"
    if not meta["model_name"].startswith("SAPNet"):
        return f"its metadata names model {meta['model_name']!r}, not SAPNet"
    try:
        stages = int(meta["stages"])
        dilations = [int(d) for d in meta["dilations"].split(",")]
    except ValueError:
        return f"its metadata stages {meta['stages']!r} / dilations {meta['dilations']!r} are not numbers"
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    tanh = sum(node.op_type == "Tanh" for node in model.graph.node)
    if len(convs) != CONV_PER_STAGE * stages or tanh != TANH_PER_STAGE * stages:
        return (f"its graph does not match its metadata: {len(convs)} Conv and {tanh} Tanh nodes, "
                f"{CONV_PER_STAGE * stages} and {TANH_PER_STAGE * stages} expected for {stages} stages")
    found: dict[int, int] = {}
    for node in convs:
        for attr in node.attribute:
            if attr.name == "dilations" and attr.ints and attr.ints[0] != 1:
                found[attr.ints[0]] = found.get(attr.ints[0], 0) + 1
    expected = {d: 2 * stages for d in dilations if d != 1}
    if found != expected:
        return (f"its graph does not match its metadata: dilated Conv nodes {dict(sorted(found.items()))}, "
                f"expected {expected} for dilations {meta['dilations']}")
    return None


def check_identity(model: onnx.ModelProto, path: str | os.PathLike, *, allow_foreign: bool = False) -> str | None:
    """Refuse a foreign ONNX (:func:`identity_problem`) unless ``allow_foreign``; return the problem
    (None for a toolkit export) so that a caller allowing it can say so in its summaries.

    Raises:
        InputError: a foreign model and ``allow_foreign`` is False; the message names ``path``, the
            problem and how to export a model (:data:`EXPORT_HINT`).
    """
    problem = identity_problem(model)
    if problem is not None and not allow_foreign:
        raise InputError(f"{path}: not a SAPNet model exported by sapnet-export: {problem}; {EXPORT_HINT}")
    return problem
