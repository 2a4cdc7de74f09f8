"""``sapnet-export inspect``: what an ONNX file or an engine is, as a JSON-ready dict.

- ONNX: opset, metadata, I/O, op histogram, QDQ summary (tensors quantized, Conv nodes in int8 and
  those kept in float) and the verdict of the TensorRT QDQ validator (:mod:`sapnet_export.export.int8.qdq_rules`).
- Engine: its sidecar (builder, target, precision, profile, I/O, provenance hashes), size, whether the
  file still matches the sidecar's sha256, the per-layer precision as typed in the network (recorded at
  build time), and, where this machine can deserialize the engine (a GPU and the same runtime),
  TensorRT's ``IEngineInspector`` layer information with tactics (``ProfilingVerbosity.DETAILED``).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import onnx

from sapnet_export.errors import InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.model.onnx_meta import graph_precision, identity_problem, load_onnx, metadata
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from sapnet_export.export.int8.quantize import int8_conv_nodes
from .loader import load_engine
from .sidecar import load_sidecar

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
#: Violations listed in full before the rest are counted.
MAX_LISTED = 20


def _value_info(value: onnx.ValueInfoProto) -> dict:
    tensor = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
            "shape": shape}


def qdq_summary(model: onnx.ModelProto) -> dict:
    """Quantization of a graph: Q/DQ node counts, tensors quantized, Conv nodes in int8 and in float.

    Returns:
        ``{"quantize_linear": int, "dequantize_linear": int, "quantized_activations": int,
        "quantized_weights": int, "conv_int8": int, "conv_float": [node names]}`` (zeros and every Conv
        in ``conv_float`` for a graph without Q/DQ).
    """
    initializers = {init.name for init in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    int8 = int8_conv_nodes(model)
    return {
        "quantize_linear": len(quantize),
        "dequantize_linear": len(dequantize),
        "quantized_activations": len({n.input[0] for n in quantize if n.input[0] not in initializers}),
        "quantized_weights": len({n.input[0] for n in dequantize if n.input[0] in initializers}),
        "conv_int8": len(int8),
        "conv_float": [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in int8],
    }


def inspect_onnx(path: str | os.PathLike) -> dict:
    """Describe an ONNX file (see the module docstring).

    Raises:
        InputError: missing or unreadable file.
    """
    path = Path(path)
    model = load_onnx(path)
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    histogram = collections.Counter(node.op_type for node in model.graph.node)
    precision = graph_precision(model)
    report = {
        "kind": "onnx", "file": str(path), "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path), "ir_version": model.ir_version, "opset": opsets,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "precision": precision, "metadata": metadata(model),
        "inputs": [_value_info(v) for v in model.graph.input],
        "outputs": [_value_info(v) for v in model.graph.output],
        "nodes": len(model.graph.node), "op_histogram": dict(histogram.most_common()),
        "qdq": qdq_summary(model),
        "identity": identity_problem(model) or "sapnet-export SAPNet export (metadata matches the graph)",
    }
    if report["qdq"]["quantize_linear"] or report["qdq"]["dequantize_linear"]:
        violations = tensorrt_qdq_violations(model)
        report["tensorrt_qdq"] = {"ok": not violations, "violations": len(violations),
                                  "listed": violations[:MAX_LISTED]}
    else:
        report["tensorrt_qdq"] = None
    return report


def _runtime_layers(path: Path, sidecar: dict) -> tuple[list[dict] | None, str]:
    """Layer information from TensorRT's engine inspector, or None and why it is not available."""
    try:
        api, gpu, _runtime, engine, _logger = load_engine(path, sidecar)
    except InputError as exc:
        return None, str(exc)
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(api.trt.LayerInformationFormat.JSON))
    layers = info.get("Layers", [])
    return [layer if isinstance(layer, dict) else {"Name": layer} for layer in layers], \
        f"{api.describe()} engine inspector on {gpu.name}"


def inspect_engine(path: str | os.PathLike) -> dict:
    """Describe an engine from its sidecar and, where possible, TensorRT's engine inspector.

    Raises:
        InputError: missing engine, missing or foreign sidecar.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not an engine")
    sidecar = load_sidecar(path, verify_sha256=False)
    actual = sha256_file(path)
    layers, source = _runtime_layers(path, sidecar)
    recorded = sidecar.get("layers", {})
    return {
        "kind": "engine", "file": str(path), "size_bytes": path.stat().st_size, "sha256": actual,
        "sha256_matches_sidecar": actual == sidecar["sha256"]["engine"],
        "builder": sidecar["builder"], "target": sidecar["target"], "precision": sidecar["precision"],
        "stages": sidecar.get("stages"), "profile": sidecar["profile"], "io": sidecar["io"],
        "provenance": {"sha256": sidecar["sha256"], "files": sidecar["files"],
                       "calibration": sidecar.get("calibration"), "toolkit": sidecar["toolkit"],
                       "command": sidecar.get("command"), "created_utc": sidecar.get("created_utc")},
        "build_seconds": sidecar.get("build_seconds"), "settings": sidecar.get("settings"),
        "network_layers": {"count": recorded.get("count"), "precisions": recorded.get("precisions"),
                           "source": "network definition at build time (strongly typed)"},
        "engine_layers": layers, "engine_layers_source": source,
    }


def inspect_file(path: str | os.PathLike) -> dict:
    """:func:`inspect_onnx` or :func:`inspect_engine` by suffix.

    Raises:
        InputError: an unknown suffix, or the errors of the chosen function.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return inspect_onnx(path)
    if suffix in ENGINE_SUFFIXES:
        return inspect_engine(path)
    raise InputError(f"{path}: cannot tell what it is from its suffix; inspect takes "
                     f"{', '.join(ONNX_SUFFIXES + ENGINE_SUFFIXES)}")
