"""Backends behind one interface (DESIGN.md section 4): pick one by name with :func:`create_runner`.

Adding a backend means adding its module here and one line to :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib

from sapnet_export.errors import InputError
from .base import Runner, RunnerInfo

#: ``--backend`` name -> ``module:class`` of its Runner (imported only when used).
BACKENDS = {
    "torch": "sapnet_export.runners.torch_runner:TorchRunner",
    "onnxruntime": "sapnet_export.runners.onnxruntime_runner:OnnxRuntimeRunner",
    "tensorrt": "sapnet_export.runners.tensorrt_runner:TensorRTRunner",
    "tensorrt-rtx": "sapnet_export.runners.tensorrt_runner:TensorRTRtxRunner",
}


def create_runner(backend: str, *, model: str | None = None, weights: str = "default",
                  stages: int | None = None, device: str | None = None) -> Runner:
    """Build the Runner for ``backend`` from CLI-style options.

    Args:
        backend: a key of :data:`BACKENDS`.
        model: model file for file-based backends (``.onnx``, ``.engine``); None for ``torch``.
        weights: checkpoint spec for ``torch`` (a path, ``default`` or ``official``).
        stages: stages to run (None: all the model has).
        device: None for the backend's default (``cpu``; ``cuda`` for engines), ``cpu`` or a GPU
            device of the backend (``cuda``; ``tensorrt`` for ONNX Runtime's TensorRT provider).

    Raises:
        InputError: unknown backend, or the backend's own errors (missing file, unavailable device).
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[backend].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_options(model=model, weights=weights, stages=stages, device=device)


__all__ = ["BACKENDS", "Runner", "RunnerInfo", "create_runner"]
