"""Load a built engine: check its sidecar against this runtime and GPU, then deserialize it.

The one loader behind the TensorRT Runner (:mod:`sapnet_export.runners.tensorrt_runner`) and ``inspect``
(:mod:`sapnet_export.engine.inspection`, for the engine inspector's tactics), in the spirit of
Polygraphy's ``EngineFromBytes`` loader.
"""

from __future__ import annotations

from pathlib import Path

from sapnet_export.errors import InputError
from .sidecar import check_runtime
from .trt_api import collecting_logger, current_gpu, import_trt


def load_engine(path: Path, sidecar: dict):  # noqa: ANN201 - (TrtApi, Gpu, Runtime, ICudaEngine, logger)
    """Deserialize an engine after checking its sidecar against this runtime and GPU.

    Args:
        path: the engine file; sidecar: its sidecar (:func:`~sapnet_export.engine.sidecar.load_sidecar`).

    Returns:
        ``(api, gpu, runtime, engine, logger)``; the runtime and logger must outlive the engine.

    Raises:
        InputError: the runtime is not installed, the sidecar does not match it (kind, version, GPU
            compute capability), there is no CUDA GPU, or deserialization fails.
    """
    api = import_trt(sidecar["builder"]["kind"])
    gpu = current_gpu()
    check_runtime(path, sidecar, api.kind, api.version, gpu.capability if gpu else None)
    if gpu is None:
        raise InputError(f"{path}: no GPU here: a {api.name} engine needs an NVIDIA GPU with CUDA, and "
                         "none is visible here (torch.cuda.is_available() is False); on this machine "
                         "run the ONNX instead: --backend onnxruntime --model "
                         f"{sidecar['files'].get('onnx') or 'MODEL.onnx'}")
    logger = collecting_logger(api)
    runtime = api.trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise InputError(f"{path}: {api.describe()} could not load the engine: "
                         f"{'; '.join(logger.errors()) or 'no error logged'}")
    return api, gpu, runtime, engine, logger
