"""The ONNX Runtime Runner: CPU, CUDA and TensorRT execution providers, never a silent fallback."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import (INPUT_NAME, OUTPUT_NAME, POOL_WEIGHTS_NAME, check_io, graph_precision, load_onnx,
                         metadata)
from sapnet_export.model.tiling import whole_frame_pool_weights
from .base import Runner, RunnerInfo

#: ``device`` names of this Runner and the ONNX Runtime execution provider each one means.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


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


class OnnxRuntimeRunner(Runner):
    """Runs an exported SAPNet ONNX file in ONNX Runtime with exactly one execution provider.

    A shared-pooling export (second input ``pool_weights``, ``sapnet-export onnx --shared-pooling``)
    sets :attr:`shared_pooling`: :meth:`run_tiles` feeds a frame's tiles with their pool weights, and
    :meth:`run` runs each frame of a batch on its own with
    :func:`~sapnet_export.model.tiling.whole_frame_pool_weights`, which computes what the plain export computes.

    Args:
        path: the ONNX file; input ``rainy`` (and ``pool_weights``), output ``derained`` (see
            :mod:`sapnet_export.model.onnx_meta`).
        device: ``cpu``, ``cuda`` or ``tensorrt`` (:data:`PROVIDERS`).
        threads: intra-op threads of the CPU provider; None lets ONNX Runtime use every core.

    Raises:
        InputError: the file is missing or not a SAPNet export (names differ), the provider is not in
            this ONNX Runtime build, or the session did not take it (ONNX Runtime would otherwise
            fall back to the CPU without saying so).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        dist, version = onnxruntime_distribution()
        path = Path(path)
        proto = load_onnx(path)
        self.shared_pooling = check_io(proto, path)
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
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        if self.session.get_providers()[0] != provider:
            raise InputError(f"{path}: ONNX Runtime could not start {provider} (it offered "
                             f"{self.session.get_providers()}); check the CUDA/TensorRT libraries")
        meta = metadata(proto)
        self.stages = int(meta.get("stages", 0)) or None
        self.info = RunnerInfo(
            backend="onnxruntime", precision=graph_precision(proto), device=device,
            model=str(path), stages=self.stages or 0, threads=threads or os.cpu_count(),
            versions={dist: version})

    @classmethod
    def from_options(cls, *, model: str | None, weights: str, stages: int | None,
                     device: str | None) -> "OnnxRuntimeRunner":
        """Build from CLI options: ``model`` is the ONNX file; ``stages`` must match its export."""
        if model is None:
            raise InputError("the onnxruntime backend needs --model F.onnx (make one with "
                             "'sapnet-export onnx')")
        runner = cls(model, device=device or "cpu")
        if stages is not None and runner.stages is not None and stages != runner.stages:
            raise InputError(f"{model}: exported with {runner.stages} stages, --stages {stages} "
                             f"asked; export again with --stages {stages}")
        return runner

    def _session_run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (out,) = self.session.run([OUTPUT_NAME], feeds)
        return np.asarray(out, dtype=np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if not self.shared_pooling:
            return self._session_run({INPUT_NAME: batch})
        # One frame per call: pool weights sum to 1 over the whole batch, so frames must not share it.
        weights = whole_frame_pool_weights(*batch.shape[2:])
        return np.concatenate([self._session_run({INPUT_NAME: batch[i:i + 1], POOL_WEIGHTS_NAME: weights})
                               for i in range(batch.shape[0])])

    def _run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        return self._session_run({INPUT_NAME: tiles, POOL_WEIGHTS_NAME: pool_weights})
