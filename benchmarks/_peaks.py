"""The machine's GEMM peaks with the libraries that run the model: the compute bound of each precision.

A square matrix product of ``size`` (2 size^3 FLOP, or integer OP for int8) is given as an ONNX graph to
ONNX Runtime and OpenVINO (fp32 MatMul; int8 as QuantizeLinear/DequantizeLinear around the MatMul,
which both fuse into an integer GEMM: u8 x s8 for ONNX Runtime's x86 kernels, s8 x s8 for OpenVINO),
OpenVINO's bf16 as its INFERENCE_PRECISION_HINT on the fp32 graph, and PyTorch's fp32 and bf16
``torch.matmul``. The best of ``repeats`` timed runs after one warm-up gives the peak (GFLOP/s).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _gemm_onnx(size: int, int8: bool, path: Path) -> Path:
    """An ONNX graph Y = X @ W, X float32 [size, size] input, W a constant; QDQ on both for int8."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((size, size)).astype(np.float32)
    nodes, inits = [], []
    if int8:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
                  numpy_helper.from_array(np.array(0, np.uint8), "zx"),
                  numpy_helper.from_array(np.array(0, np.int8), "zw"),
                  numpy_helper.from_array(np.clip(np.round(weight / 0.05), -127, 127).astype(np.int8), "wq")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
                  helper.make_node("DequantizeLinear", ["wq", "sx", "zw"], ["wd"]),
                  helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["y"]))
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def _best(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peaks(threads: int, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s (int8: GOP/s) of each library and precision with ``threads`` threads: keys
    ``onnxruntime fp32``, ``onnxruntime int8``, ``openvino fp32``, ``openvino bf16``, ``openvino int8``,
    ``torch fp32``, ``torch bf16``."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    flop = 2.0 * size ** 3
    x = np.random.default_rng(1).random((size, size), dtype=np.float32)
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {p: _gemm_onnx(size, p == "int8", Path(tmp) / f"{p}.onnx") for p in ("fp32", "int8")}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        for precision, path in graphs.items():
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            peaks[f"onnxruntime {precision}"] = flop / _best(lambda: session.run(None, {"x": x}), repeats) / 1e9
        core = ov.Core()
        for label, path, hint in (("fp32", graphs["fp32"], "f32"), ("bf16", graphs["fp32"], "bf16"),
                                  ("int8", graphs["int8"], "f32")):
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {
                "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            peaks[f"openvino {label}"] = flop / _best(lambda: request.infer({"x": x}), repeats) / 1e9
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a, b = torch.from_numpy(x).to(dtype), torch.from_numpy(x).to(dtype)
            peaks[f"torch {label}"] = flop / _best(lambda: torch.matmul(a, b), repeats) / 1e9
    finally:
        torch.set_num_threads(before)
    return peaks
