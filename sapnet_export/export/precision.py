"""Precision conversion of exported graphs: precision lives in the ONNX graph (docs/design.md section 3).

TensorRT 11 and TensorRT-RTX build strongly typed networks only, so an fp16 engine is compiled from an
ONNX graph whose compute is already float16. This module makes that graph. ONNX Runtime runs the same
graph on the CPU, which makes it a proxy for the quality of an engine built from it; the tests parse it
with TensorRT-RTX's ONNX parser (its Conv layers come out float16). INT8 graphs are made by
:mod:`sapnet_export.export.int8.quantize`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sapnet_export.errors import InputError

if TYPE_CHECKING:  # the CLI reads the gates at start-up; onnx loads only when a graph is converted
    import onnx

#: Precisions ``sapnet-export onnx --precision`` makes.
PRECISIONS = ("fp32", "fp16", "int8")
#: The one table of default fidelity gates: PSNR in dB against PyTorch fp32, by the graph's precision.
#: ``onnx``/``trt`` apply it to every input (fp32, fp16) or to every held-out image (int8) before a file
#: is kept; ``verify``/``bench`` apply it to the mean over the images. int8 is 35 dB for both: every
#: int8 graph measured on the 100 Rain100L images (docs/measurements.md, "Precision variants") stayed
#: above 39.9 dB on its worst image, so 35 dB passes every working calibration with a margin and still
#: fails a broken one. bf16 (OpenVINO's INFERENCE_PRECISION_HINT on an fp32 graph, ``verify`` only): 45 dB:
#: bf16 kept 55.2 dB on its worst of 16 frames (8 Rain100L, 8 synthetic heavy rain; docs/measurements.md,
#: "OpenVINO and the CPU paths"), so 45 dB passes it with a 10 dB margin and still fails an int8 graph
#: taken for bf16 (40-42 dB there).
DEFAULT_MIN_PSNR_DB = {"fp32": 80.0, "fp16": 60.0, "bf16": 45.0, "int8": 35.0}


def default_gates_text() -> str:
    """``fp32 80, fp16 60, int8 35``: :data:`DEFAULT_MIN_PSNR_DB` as help texts write it."""
    return ", ".join(f"{precision} {threshold:g}" for precision, threshold in DEFAULT_MIN_PSNR_DB.items())


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
    import onnx
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
