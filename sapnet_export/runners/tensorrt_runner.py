"""The TensorRT / TensorRT-RTX engine Runner: torch CUDA tensors as buffers, ``execute_async_v3``.

Before the engine is deserialized, its sidecar is compared with this runtime (builder kind, version, GPU
compute capability; :func:`sapnet_export.engine.sidecar.check_runtime`), so a mismatch is a sentence, not a
"version tag does not match" from deep inside TensorRT. Each call sets the input shape (checked against
the engine's optimization profile first), points the I/O tensors at torch CUDA buffers and enqueues the
engine on a non-default CUDA stream (TensorRT API: ``IExecutionContext.set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). No pycuda: torch owns the memory and the stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import EXPORT_HINT, INPUT_NAME, OUTPUT_NAME
from sapnet_export.engine.loader import load_engine
from sapnet_export.engine.sidecar import Profile, check_in_profile, load_sidecar
from .base import Runner, RunnerInfo


class TensorRTRunner(Runner):
    """Runs a ``sapnet-export trt`` engine on the GPU (``--backend tensorrt``: any engine, with the
    runtime its sidecar names).

    Args:
        path: the engine; its sidecar ``<path>.json`` must be beside it.

    Raises:
        InputError: missing engine or sidecar, an engine replaced after its sidecar was written, the
            sidecar does not match this runtime (kind, version, GPU), the runtime is not installed,
            no CUDA GPU (a clear message, not a crash), or the runtime cannot deserialize the engine.
    """

    #: The ``--backend`` name; None: any engine kind.
    required_kind: str | None = None

    def __init__(self, path: str | Path, allow_foreign_model: bool = False) -> None:
        path = Path(path)
        sidecar = load_sidecar(path)
        foreign = sidecar.get("foreign_model")
        if foreign and not allow_foreign_model:
            raise InputError(f"{path}: built from an ONNX that is not a sapnet-export SAPNet model "
                             f"({foreign}); {EXPORT_HINT}")
        kind = sidecar["builder"]["kind"]
        if self.required_kind not in (None, kind):
            raise InputError(f"{path}: built by {sidecar['builder']['name']}, not {self.required_kind}; "
                             "run it with --backend tensorrt")
        api, gpu, self.runtime, self.engine, self.logger = load_engine(path, sidecar)
        import torch

        self._torch = torch
        self.path, self.sidecar, self.api = path, sidecar, api
        self.profile = Profile.from_json(sidecar["profile"])
        self.max_frame = (self.profile.max[2], self.profile.max[3])
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda", 0)
        self.stream = torch.cuda.Stream(device=self.device)
        dtypes = {"float32": torch.float32, "float16": torch.float16}
        io = {entry["name"]: entry for entry in sidecar["io"]}
        self.input_dtype = dtypes[io[INPUT_NAME]["dtype"]]
        self.output_dtype = dtypes[io[OUTPUT_NAME]["dtype"]]
        self.info = RunnerInfo(
            backend=api.kind, precision=sidecar["precision"], device=f"cuda:0 ({gpu.name}, {gpu.capability})",
            model=str(path), stages=int(sidecar.get("stages") or 0), threads=None,
            versions={api.kind: api.version, "torch": torch.__version__}, foreign_model=foreign or None)

    @classmethod
    def from_options(cls, *, model: str | None, weights: str, stages: int | None,
                     device: str | None, allow_foreign_model: bool = False) -> "TensorRTRunner":
        """Build from CLI options: ``model`` is the engine; ``device`` None or ``cuda``; ``stages`` must
        match the engine's."""
        if model is None:
            raise InputError(f"the {cls.required_kind or 'tensorrt'} backend needs --model F.engine "
                             "(build one with 'sapnet-export trt')")
        if device not in (None, "cuda", "cuda:0"):
            raise InputError(f"--device {device}: TensorRT engines run on the GPU (cuda)")
        runner = cls(model, allow_foreign_model=allow_foreign_model)
        if stages is not None and runner.info.stages and stages != runner.info.stages:
            raise InputError(f"{model}: built with {runner.info.stages} stages, --stages {stages} asked")
        return runner

    latency_clock = "CUDA events on the engine's stream around execute_async_v3 (copies outside)"

    def _bind(self, batch: np.ndarray):  # noqa: ANN202 - (input, output) torch CUDA tensors
        """Copy ``batch`` to the GPU on :attr:`stream`, set the input shape and bind both tensors.

        Raises:
            InputError: the shape is outside the engine's optimization profile.
        """
        torch = self._torch
        check_in_profile(batch.shape, self.profile, self.path)
        with torch.cuda.stream(self.stream):
            rainy = torch.from_numpy(batch).to(self.device).to(self.input_dtype)
            if not self.context.set_input_shape(INPUT_NAME, tuple(batch.shape)):
                raise InputError(f"{self.path}: the engine refused input shape {batch.shape}")
            shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
            derained = torch.empty(shape, dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(INPUT_NAME, rainy.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, derained.data_ptr())
        return rainy, derained

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.path}: execute_async_v3 failed: "
                               f"{'; '.join(self.logger.errors()) or 'no error logged'}")

    def timed_run(self, batch: np.ndarray) -> float:
        """Seconds of one inference, timed by CUDA events recorded on the engine's stream around
        ``execute_async_v3`` (the host-to-device copy happens before, docs/design.md section 6)."""
        torch = self._torch
        rainy, derained = self._bind(batch)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(self.stream)
        self._execute()
        end.record(self.stream)
        end.synchronize()
        del rainy, derained
        return start.elapsed_time(end) / 1000.0

    def _run(self, batch: np.ndarray) -> np.ndarray:
        rainy, derained = self._bind(batch)
        self._execute()
        self.stream.synchronize()  # the buffers stay referenced until the work is done
        del rainy
        return derained.float().cpu().numpy()


class TensorRTRtxRunner(TensorRTRunner):
    """``--backend tensorrt-rtx``: :class:`TensorRTRunner` that accepts TensorRT-RTX engines only."""

    required_kind = "tensorrt-rtx"
