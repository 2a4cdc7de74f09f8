"""The float parts of an int8 QDQ graph in float16: ``--float-precision fp16`` (``tensorrt`` profile).

A ``tensorrt``-profile graph quantizes the Conv inputs; everything else (the groups kept in float, the
LSTM cell's gates and element-wise ops, the residual sums, the channel attention) computes in float32.
TensorRT builds the graph strongly typed (docs/design.md section 3), so it runs those parts in the
precision the graph gives them: here float16, beside int8, in one network, as ``trtexec --int8
--fp16`` would choose for a weakly typed one.

The conversion is onnxconverter-common's ``convert_float_to_float16`` (the converter of
:func:`sapnet_export.export.precision.to_fp16`) with every QuantizeLinear/DequantizeLinear node and
every Conv that reads a DequantizeLinear output (the quantized Convs) in its ``node_block_list``,
so their patterns stay intact for TensorRT's QDQ fusion; the graph's inputs and outputs stay float32.
The converter casts a blocked node's float32
output to float16 and back when its consumer is blocked too; those round trips (which would round the
dequantized weights to float16) are removed, so a quantized Conv reads its DequantizeLinear directly,
as TensorRT's QDQ rules want (:mod:`sapnet_export.export.int8.qdq_rules`).
"""

from __future__ import annotations

import warnings

import onnx

#: ``--float-precision`` choices: the precision of an int8 graph's float parts.
FLOAT_PRECISIONS = ("fp32", "fp16")
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Q/DQ nodes and of the quantized Convs (those reading a DequantizeLinear output);
    other readers of a dequantized tensor (a residual Add) compute in float16 after a Cast."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return [node.name for node in model.graph.node
            if node.op_type in _QDQ
            or (node.op_type == "Conv" and any(name in producer and producer[name].op_type == "DequantizeLinear"
                                               for name in node.input))]


def _drop_round_trips(model: onnx.ModelProto) -> None:
    """Rewire ``x (float32) -> Cast(float16) -> Cast(float32) -> y`` to ``x -> y`` (one pass over the
    nodes) and drop the Casts nothing reads any more."""
    inferred = onnx.shape_inference.infer_shapes(model)
    float32 = {v.name for v in (*inferred.graph.value_info, *inferred.graph.input)
               if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    float32 |= {init.name for init in model.graph.initializer if init.data_type == onnx.TensorProto.FLOAT}
    producer = {out: node for node in model.graph.node for out in node.output}
    to = {node.name: next(a.i for a in node.attribute if a.name == "to")
          for node in model.graph.node if node.op_type == "Cast"}
    graph_outputs = {v.name for v in model.graph.output}
    rewire = {}  # the second Cast's output -> the float32 value the first Cast read
    for node in model.graph.node:
        if node.op_type != "Cast" or to[node.name] != onnx.TensorProto.FLOAT or node.output[0] in graph_outputs:
            continue
        first = producer.get(node.input[0])
        if first is not None and first.op_type == "Cast" and to[first.name] == onnx.TensorProto.FLOAT16 \
                and first.input[0] in float32:  # else the value was float16 already: a real conversion
            rewire[node.output[0]] = first.input[0]
    for node in model.graph.node:
        node.input[:] = [rewire.get(name, name) for name in node.input]
    while True:  # drop Casts whose outputs nothing reads
        read = {name for node in model.graph.node for name in node.input} | graph_outputs
        dead = [n for n in model.graph.node if n.op_type == "Cast" and n.output[0] not in read]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def _float32_outputs(model: onnx.ModelProto) -> None:
    """Give every graph output float32 back: the converter, with ``keep_io_types``, still casts a
    blocked node's float32 result to float16 when that result is a graph output (``derained`` when the
    last residual Add reads a DequantizeLinear); that Cast becomes a float32 one (an identity)."""
    for value in model.graph.output:
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        producer = next(n for n in model.graph.node if value.name in n.output)
        if producer.op_type != "Cast":
            raise ValueError(f"{value.name}: float16 from {producer.op_type} {producer.name}, not a Cast")
        for attribute in producer.attribute:
            if attribute.name == "to":
                attribute.i = onnx.TensorProto.FLOAT
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def float_parts_to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` (an int8 QDQ graph, float32 I/O) with every float compute node in float16, the
    quantized nodes (:func:`quantized_nodes`) and the graph's float32 inputs and outputs unchanged.

    Returns:
        (the converted graph, checked and shape-inferred; names of the compute nodes now producing
        float16, Casts not listed).

    Raises:
        ValueError: a graph output left float16 by something other than a Cast;
            ``onnx.checker.ValidationError`` / ``onnx.shape_inference.InferenceError``: the converted
            graph is not valid ONNX (a converter fault; nothing is written by this function).
    """
    from onnxconverter_common import float16

    blocked = quantized_nodes(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter's notices about values it truncates
        converted = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    _float32_outputs(converted)
    _drop_round_trips(converted)
    del converted.graph.value_info[:]  # stale after the rewiring; inferred again
    converted = onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    onnx.checker.check_model(converted, full_check=True)
    fp16 = {v.name for v in converted.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    return converted, [n.name for n in converted.graph.node if n.op_type != "Cast" and any(o in fp16 for o in n.output)]
