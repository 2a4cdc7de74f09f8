"""The ONNX Runtime Runner: CPU, CUDA and TensorRT execution providers, never a silent fallback."""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import OUTPUT_NAME, graph_precision
from .base import RunnerInfo
from .onnx_file import OnnxFileRunner

#: ``device`` names of this Runner and the ONNX Runtime execution provider each one means.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

#: ``optimization`` names -> ``onnxruntime.GraphOptimizationLevel`` members.
OPTIMIZATION_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED",
                       "layout": "ORT_ENABLE_LAYOUT", "basic": "ORT_ENABLE_BASIC", "none": "ORT_DISABLE_ALL"}


def onnxruntime_distribution() -> tuple[str, str]:
    """Return ``(distribution, version)`` of the installed ONNX Runtime wheel.

    Raises:
        InputError: no ONNX Runtime is installed, or both ``onnxruntime`` and ``onnxruntime-gpu`` are
            (they overwrite each other's files); the message says how to fix it.
    """
    found = {}
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(found) > 1:
        raise InputError("both onnxruntime and onnxruntime-gpu are installed; they provide the same "
                         "module and break each other: pip uninstall -y onnxruntime onnxruntime-gpu, "
                         "then install one: pip install 'sapnet-export[cpu]' or 'sapnet-export[gpu]'")
    if not found:
        raise InputError("ONNX Runtime is not installed: pip install 'sapnet-export[cpu]' "
                         "(or '[gpu]' for the CUDA and TensorRT providers)")
    return next(iter(found.items()))


class OnnxRuntimeRunner(OnnxFileRunner):
    """Runs an exported SAPNet ONNX file in ONNX Runtime with exactly one execution provider.

    Plain and shared-pooling exports are fed as :class:`~sapnet_export.runners.onnx_file.OnnxFileRunner`
    describes.

    Args:
        path: the ONNX file; input ``rainy`` (and ``pool_weights``), output ``derained`` (see
            :mod:`sapnet_export.model.onnx_meta`).
        device: ``cpu``, ``cuda`` or ``tensorrt`` (:data:`PROVIDERS`).
        threads: intra-op threads of the CPU provider; None lets ONNX Runtime use every core.
        optimization: graph optimization level, a key of :data:`OPTIMIZATION_LEVELS` (default
            ``all``, ONNX Runtime's own: with the x86 NCHWc layout transformations).
        session_config: ``SessionOptions.add_session_config_entry`` entries (ONNX Runtime's
            ``onnxruntime_session_options_config_keys.h``), e.g. ``session.intra_op.allow_spinning``;
            recorded in :attr:`RunnerInfo.settings <sapnet_export.runners.base.RunnerInfo>`.

    Raises:
        InputError: the file is missing or not a SAPNet export (names differ), the provider is not in
            this ONNX Runtime build, or the session did not take it (ONNX Runtime would otherwise
            fall back to the CPU without saying so).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 optimization: str = "all", session_config: dict[str, str] | None = None) -> None:
        import onnxruntime as ort

        dist, version = onnxruntime_distribution()
        path, proto = self._open(path)
        if device not in PROVIDERS:
            raise InputError(f"device {device!r}: choose one of {', '.join(PROVIDERS)}")
        provider = PROVIDERS[device]
        if provider not in ort.get_available_providers():
            raise InputError(f"{provider} is not in this ONNX Runtime build ({dist} {version}; has "
                             f"{', '.join(ort.get_available_providers())})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if optimization not in OPTIMIZATION_LEVELS:
            raise InputError(f"graph optimization {optimization!r}: choose one of {', '.join(OPTIMIZATION_LEVELS)}")
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
        for key, value in (session_config or {}).items():
            options.add_session_config_entry(key, str(value))
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        except Exception as exc:  # onnxruntime's Fail, InvalidGraph, NotImplemented...: a file it cannot run
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{path}: ONNX Runtime {version} cannot load it: {reason}") from None
        if self.session.get_providers()[0] != provider:
            raise InputError(f"{path}: ONNX Runtime could not start {provider} (it offered "
                             f"{self.session.get_providers()}); check the CUDA/TensorRT libraries")
        self.info = RunnerInfo(
            backend="onnxruntime", precision=graph_precision(proto), device=device,
            model=str(path), stages=self.stages or 0, threads=threads or os.cpu_count(),
            versions={dist: version},
            settings={"graph_optimization": optimization, **(session_config or {})})

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (out,) = self.session.run([OUTPUT_NAME], feeds)
        return np.asarray(out, dtype=np.float32)
