"""Precision conversion of exported graphs: precision lives in the ONNX graph (DESIGN.md section 3).

TensorRT 11 and TensorRT-RTX build strongly typed networks only, so an fp16 engine is compiled from an
ONNX graph whose compute is already float16. This module makes that graph. ONNX Runtime runs the same
graph on the CPU, which makes it a proxy for the quality of an engine built from it; the tests parse it
with TensorRT-RTX's ONNX parser (its Conv layers come out float16). INT8 graphs are made by
:mod:`sapnet_export.export.int8.quantize`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import onnx

from sapnet_export.errors import InputError

#: Precisions ``sapnet-export onnx --precision`` makes.
PRECISIONS = ("fp32", "fp16", "int8")
#: Default fidelity threshold (dB, against PyTorch fp32) per precision. fp32 and fp16 apply it to every
#: input, int8 to the held-out images; the int8 floor catches a broken calibration, the issue's quality
#: target (35 dB) is asked for with --min-psnr.
DEFAULT_MIN_PSNR_DB = {"fp32": 80.0, "fp16": 60.0, "int8": 30.0}


def to_fp16(model: onnx.ModelProto, keep_fp32: Sequence[str] = ()) -> tuple[onnx.ModelProto, list[str], int]:
    """Convert an fp32 graph to float16 compute with float32 graph inputs and outputs.

    Uses ``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)`` (the converter
    ONNX Runtime documents for fp16 models): initializers and every float tensor become float16; Casts
    convert ``rainy`` to float16 (the converter adds one per consumer, 12 for 6 stages) and the last
    stage back to float32 for ``derained``; the recurrent state's ``ConstantOfShape`` zeros get a
    float16 value (checked with onnxconverter-common 1.16). Weights smaller in magnitude than 1e-7 are clamped to +-1e-7 by the
    converter (float16's smallest subnormal is 6e-8) and counted here.

    Args:
        model: an fp32 export of :func:`sapnet_export.export.onnx_export.to_onnx_proto`.
        keep_fp32: node names left in float32 (the converter's ``node_block_list``; it casts around
            them), e.g. the pooling nodes of a shared-pooling export
            (:func:`~sapnet_export.model.onnx_meta.pooling_nodes`).

    Returns:
        ``(fp16 model, names of compute nodes still producing float32, clamped weight count)``;
        Cast nodes are not listed.

    Raises:
        InputError: the graph is not float32 (already converted or quantized).
    """
    from onnxconverter_common import float16

    if any(init.data_type != onnx.TensorProto.FLOAT for init in model.graph.initializer):
        raise InputError("fp16 conversion needs an fp32 graph; this one has non-float32 weights")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                     node_block_list=list(keep_fp32) or None)
    clamped = sum("will be truncated" in str(w.message) for w in caught)
    converted = onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    onnx.checker.check_model(converted, full_check=True)
    float32 = {v.name for v in (*converted.graph.value_info, *converted.graph.output)
               if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    kept = [node.name for node in converted.graph.node
            if node.op_type != "Cast" and any(out in float32 for out in node.output)]
    return converted, kept, clamped
