"""The network's quantization groups in an exported graph (``--keep-fp32``, ``sensitivity``, the budget):
which nodes belong to which module, their Conv MACs, and which Convs a QDQ graph runs in int8.

Groups: the network's nodes are grouped by the module they come from (docs/design.md section 2; weights
are shared by the stages, so a group spans all stages): ``conv0``, the four gates ``conv_i``,
``conv_f``, ``conv_g``, ``conv_o``, ``lstm_cell`` (the element-wise cell update), ``res_conv1`` ..
``res_conv5`` (with their residual Add and ReLU) and the output ``conv`` (with its ``+ input``).
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Iterable

import numpy as np
import onnx

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import INPUT_NAME


#: Group names in network order.
GROUPS = ("conv0", "conv_i", "conv_f", "conv_g", "conv_o", "lstm_cell", "res_conv1", "res_conv2",
          "res_conv3", "res_conv4", "res_conv5", "conv")
_SCOPE = re.compile(r"^/model/(conv0|conv_[ifgo]|res_conv[1-5]|conv)/")


#: ``--keep-fp32`` name of the CRA layers' attention paths (:func:`attention_nodes`).
ATTENTION = "cra"

def node_groups(model: onnx.ModelProto) -> dict[str, str]:
    """Map every node name of an exported fp32 graph to its group (:data:`GROUPS`).

    Nodes inside a module's scope (``/model/res_conv3/...``) take that module. Unscoped nodes follow
    the data: a Concat belongs to the group that consumes it (``conv0``, or ``lstm_cell`` for the one
    feeding the gates), a node fed by a residual block or by the output conv belongs to it (the
    residual ``Add``/``Relu``, the ``+ input``), anything else is the ``lstm_cell``.
    """
    groups: dict[str, str] = {}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:  # topological order: producers are grouped first
        match = _SCOPE.match(node.name)
        if match:
            groups[node.name] = match.group(1)
            continue
        fed_by = [groups.get(producer[i].name) for i in node.input if i in producer]
        if node.op_type == "Concat":
            users = {(_SCOPE.match(c.name) or [None, None])[1] for c in consumers.get(node.output[0], [])}
            groups[node.name] = "conv0" if users == {"conv0"} else "lstm_cell"
        elif any(g is not None and (g.startswith("res_conv") or g == "conv") for g in fed_by):
            groups[node.name] = next(g for g in fed_by if g and (g.startswith("res_conv") or g == "conv"))
        else:
            groups[node.name] = "lstm_cell"
    return groups


def attention_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of every CRA layer's attention path: from its GlobalAveragePool through
    ``conv_du``, ``conv_1_1``, their Add and the Sigmoid, up to (not including) the Mul that scales the
    features (:class:`sapnet_export.model.network.CRALayer`).

    They compute on [N, C, 1, 1] vectors, one per frame, so a calibration set of N frames gives each
    of their tensors only N samples: measured on the published checkpoint with 20 real-rain frames,
    the hidden ReLU of 9 ``conv_du`` paths was 0 on every calibration frame (a range of [0, 0]) yet
    not on held-out frames, which INT8 then zeroes (docs/measurements.md, "INT8 in heavy rain"). They
    hold 5e-8 of the network's Conv MACs, so keeping them float costs nothing measurable.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names: list[str] = []
    for pool in (n for n in model.graph.node if n.op_type == "GlobalAveragePool"):
        todo, seen = [pool], set()
        while todo:
            node = todo.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            names.append(node.name)
            if node.op_type != "Sigmoid":  # the Sigmoid's consumer is the feature-scaling Mul
                todo.extend(consumers.get(node.output[0], []))
    return names


def select_nodes(model: onnx.ModelProto, patterns: Iterable[str]) -> list[str]:
    """Names of the nodes matched by ``patterns``: a group name (:data:`GROUPS`) selects its nodes,
    ``cra`` the attention paths of every CRA layer (:func:`attention_nodes`), any other pattern is an
    ``fnmatch`` glob on node names (e.g. ``/model/res_conv5/*``).

    Raises:
        InputError: a pattern matches no node (the message lists the groups).
    """
    groups = node_groups(model)
    chosen: list[str] = []
    for pattern in patterns:
        hits = ([n for n, g in groups.items() if g == pattern] if pattern in GROUPS
                else attention_nodes(model) if pattern == ATTENTION
                else [n for n in groups if fnmatch.fnmatchcase(n, pattern)])
        if not hits:
            raise InputError(f"--keep-fp32 {pattern!r} matches no node; use a group "
                             f"({', '.join(GROUPS)}), {ATTENTION} or a glob on node names like '/model/res_conv5/*'")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def conv_macs(model: onnx.ModelProto, height: int = 64, width: int = 64) -> dict[str, int]:
    """Multiply-accumulates of every Conv node for one [1, 3, height, width] input.

    MACs = output elements x (input channels / group) x kernel height x kernel width, with output
    shapes from ONNX shape inference of the graph with its input fixed to that size.
    """
    fixed = copy.deepcopy(model)
    for graph_input in fixed.graph.input:  # rainy [1, 3, H, W]; pool_weights [1, 1, H, W] if present
        dims = graph_input.type.tensor_type.shape.dim
        for dim, value in zip(dims, (1, 3 if graph_input.name == INPUT_NAME else 1, height, width)):
            dim.ClearField("dim_param")
            dim.dim_value = value
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(fixed)
    # The batch dimension of the recurrent state is not propagated through Shape/ConstantOfShape; count
    # per frame (N = 1) and require the other dimensions to be known.
    shapes = {v.name: [1] + [d.dim_value for d in v.type.tensor_type.shape.dim][1:]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    macs = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            _, cin_per_group, kh, kw = weights[node.input[1]]
            shape = shapes.get(node.output[0], [0])
            if len(shape) != 4 or 0 in shape:
                raise ValueError(f"{node.name}: output shape not inferred ({shape})")
            macs[node.name] = int(np.prod(shape)) * cin_per_group * kh * kw
    return macs


def int8_conv_nodes(quantized: onnx.ModelProto) -> set[str]:
    """Conv nodes of a QDQ graph whose activation and weight both come from DequantizeLinear, the
    activation possibly through a Concat of DequantizeLinear outputs and constants (NNCF quantizes
    the inputs of a Concat, not its output; the stage-1 LSTM state is a ConstantOfShape of zeros)."""
    producer = {out: node for node in quantized.graph.node for out in node.output}

    def dequantized(name: str, through_concat: bool) -> bool:
        node = producer.get(name)
        if node is None:
            return False
        if node.op_type == "DequantizeLinear":
            return True
        if through_concat and node.op_type == "Concat":
            return all(dequantized(i, False) or getattr(producer.get(i), "op_type", "") == "ConstantOfShape"
                       for i in node.input)
        return False

    return {node.name for node in quantized.graph.node if node.op_type == "Conv"
            and dequantized(node.input[0], True) and dequantized(node.input[1], False)}
