"""Backends behind one interface (docs/design.md section 4): pick one by name with :func:`create_runner`.

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
    "openvino": "sapnet_export.runners.openvino_runner:OpenVinoRunner",
    "tensorrt": "sapnet_export.runners.tensorrt_runner:TensorRTRunner",
    "tensorrt-rtx": "sapnet_export.runners.tensorrt_runner:TensorRTRtxRunner",
    "triton": "sapnet_export.runners.triton_runner:TritonRunner",
}

#: Backends that run a model file the model-identity check applies to (``--allow-foreign-model``).
MODEL_FILE_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "tensorrt-rtx")
#: Backends that take a compute precision besides the model file's own (``--precision bf16``).
PRECISION_BACKENDS = ("openvino",)


def create_runner(backend: str, *, model: str | None = None, weights: str = "default",
                  stages: int | None = None, device: str | None = None, precision: str | None = None,
                  force_bf16: bool = False, allow_foreign_model: bool = False,
                  own_graph: bool = False) -> Runner:
    """Build the Runner for ``backend`` from CLI-style options.

    Args:
        backend: a key of :data:`BACKENDS`.
        model: model file for file-based backends (``.onnx``, ``.engine``); None for ``torch``; a
            served model's URL for ``triton`` (``grpc://HOST:PORT/NAME``, ``http://...``).
        weights: checkpoint spec for ``torch`` (a path, ``default`` or ``official``).
        stages: stages to run (None: all the model has).
        device: None for the backend's default (``cpu``; ``cuda`` for engines), ``cpu`` or a GPU
            device of the backend (``cuda``; ``tensorrt`` for ONNX Runtime's TensorRT provider;
            ``gpu``, ``npu``, ``auto`` for OpenVINO).
        precision: None for the model's own precision; ``bf16`` (OpenVINO only:
            ``INFERENCE_PRECISION_HINT`` bf16; an int8 graph then stays ``int8`` with its float parts
            in bf16); any other backend must already run the one asked.
        force_bf16: OpenVINO: allow bf16 on a CPU without native bf16.
        allow_foreign_model: run a model file that is not a toolkit export (refused otherwise;
            :func:`sapnet_export.model.onnx_meta.check_identity`); ``info.foreign_model`` says why.
        own_graph: an ONNX graph the toolkit is making itself (int8 trials before their metadata is
            written): no identity check (ONNX backends only).

    Raises:
        InputError: unknown backend, a precision the backend does not run, or the backend's own
            errors (missing file, unavailable device).
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[backend].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if force_bf16 and precision != "bf16":
        raise InputError("--force-bf16 is for --precision bf16 (with --backend openvino)")
    extra = {"precision": precision, "force_bf16": force_bf16} if backend in PRECISION_BACKENDS else {}
    if backend in MODEL_FILE_BACKENDS:
        extra["allow_foreign_model"] = allow_foreign_model
    if own_graph:
        extra["own_graph"] = True
    runner = cls.from_options(model=model, weights=weights, stages=stages, device=device, **extra)
    # an int8 graph with bf16 asked keeps its label int8 and computes its float parts in bf16
    bf16_rest = precision == "bf16" and runner.info.settings.get("inference_precision") == "bf16"
    if precision is not None and runner.info.precision != precision and not bf16_rest:
        raise InputError(f"--precision {precision}: the {backend} backend runs {runner.info.model} in "
                         f"{runner.info.precision}; bf16 is an OpenVINO precision (--backend openvino), "
                         "others come from the model file ('sapnet-export onnx --precision')")
    return runner


__all__ = ["BACKENDS", "PRECISION_BACKENDS", "Runner", "RunnerInfo", "create_runner"]
