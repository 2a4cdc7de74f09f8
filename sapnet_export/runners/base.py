"""The Runner interface every backend implements (docs/design.md section 4)."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field

import numpy as np

from sapnet_export.errors import InputError


@dataclass(frozen=True)
class RunnerInfo:
    """What a Runner is.

    Attributes:
        backend: ``torch``, ``onnxruntime``, ... (the ``--backend`` name).
        precision: ``fp32``, ``fp16`` or ``int8`` (the compute precision of the model it runs).
        device: where it runs, e.g. ``cpu`` or ``cuda:0``; for ONNX Runtime, the execution provider.
        model: the checkpoint or model file it runs.
        stages: recurrent stages it runs.
        threads: CPU threads it uses (None where the backend does not say).
        versions: package name -> version of the libraries doing the work.
        settings: backend settings that change its results or speed, as it reports them (OpenVINO:
            ``inference_precision``, ``performance_hint``, ``shapes``, ``cache_dir``...); empty
            where a backend has none to say.
        foreign_model: why the model file is not a toolkit export, when it was run anyway with
            ``--allow-foreign-model`` (:func:`sapnet_export.model.onnx_meta.check_identity`); None for
            a toolkit model. Summaries and reports say so whenever it is set.
    """

    backend: str
    precision: str
    device: str
    model: str
    stages: int
    threads: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    foreign_model: str | None = None


class Runner(abc.ABC):
    """Derains batches: float32 [N, 3, H, W] RGB in [0, 1] in, float32 [N, 3, H, W] out (not clipped).

    Subclasses set :attr:`info` and implement :meth:`_run`; :meth:`run` checks the input and output.
    """

    info: RunnerInfo
    #: Largest frame (H, W) the Runner takes, e.g. an engine's optimization profile maximum; None: any.
    #: ``run`` cuts larger frames into tiles of at most this size (:func:`sapnet_export.model.tiling.plan_tile`).
    max_frame: tuple[int, int] | None = None

    #: Whether :meth:`run_tiles` is implemented: the tiles of a frame run as one batch whose channel
    #: attention pools over the whole frame (docs/commands.md "Tiling"). True for torch and for ONNX Runtime with
    #: a ``--shared-pooling`` export; plain exports and TensorRT engines pool per input: False.
    shared_pooling = False

    def run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        """Derain the tiles of one frame, float32 [T, 3, h, w], as one batch whose channel attention
        pools with ``pool_weights`` (float32 [T, 1, h, w], summing to 1 over the frame); returns float32
        [T, 3, h, w]. See :func:`sapnet_export.model.tiling.run_tiled_shared_pooling`.

        Raises:
            InputError: ``tiles`` or ``pool_weights`` is not float32 of those shapes.
            NotImplementedError: the backend cannot (:attr:`shared_pooling` is False).
        """
        if not self.shared_pooling:
            raise NotImplementedError(f"{self.info.backend} ({self.info.model}): its graph pools each "
                                      "input on its own")
        _check_batch(self.info.backend, tiles)
        expected = (tiles.shape[0], 1, *tiles.shape[2:])
        if not isinstance(pool_weights, np.ndarray) or pool_weights.dtype != np.float32 \
                or pool_weights.shape != expected:
            got = (f"{pool_weights.dtype} {pool_weights.shape}" if isinstance(pool_weights, np.ndarray)
                   else type(pool_weights).__name__)
            raise InputError(f"{self.info.backend} runner: pool weights must be float32 "
                             f"{list(expected)} for tiles {list(tiles.shape)}, got {got}")
        out = self._run_tiles(np.ascontiguousarray(tiles), np.ascontiguousarray(pool_weights))
        if out.shape != tiles.shape:
            raise RuntimeError(f"{self.info.backend} runner returned {out.shape} for tiles {tiles.shape}")
        return out

    def _run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        """Backend work of :meth:`run_tiles` on checked, contiguous arrays (Runners with
        :attr:`shared_pooling` True implement it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the Runner holds outside this process (the triton Runner's client
        connections); nothing for in-process backends. The Runner is not used afterwards."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Derain ``batch`` (float32 [N, 3, H, W], C-contiguous is not required).

        Raises:
            InputError: ``batch`` is not float32 with shape [N, 3, H, W], N, H, W >= 1.
        """
        _check_batch(self.info.backend, batch)
        out = self._run(np.ascontiguousarray(batch))
        if out.shape != batch.shape:
            raise RuntimeError(f"{self.info.backend} runner returned {out.shape} for {batch.shape}")
        return out

    __call__ = run

    #: How :meth:`timed_run` measures: wall clock here; GPU Runners time their stream with CUDA events.
    latency_clock = "wall clock (time.perf_counter) around run(), host copies included"

    def timed_run(self, batch: np.ndarray) -> float:
        """Run ``batch`` once and return the seconds it took (see :attr:`latency_clock`)."""
        start = time.perf_counter()
        self.run(batch)
        return time.perf_counter() - start

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Backend work on a checked, contiguous float32 [N, 3, H, W] batch; returns float32 [N, 3, H, W]."""


def _check_batch(backend: str, batch: np.ndarray) -> None:
    """InputError unless ``batch`` is float32 [N, 3, H, W] with N, H, W >= 1."""
    if not isinstance(batch, np.ndarray) or batch.dtype != np.float32 or batch.ndim != 4 \
            or batch.shape[1] != 3 or min(batch.shape) < 1:
        got = f"{batch.dtype} {batch.shape}" if isinstance(batch, np.ndarray) else type(batch).__name__
        raise InputError(f"{backend} runner: expected float32 [N, 3, H, W], got {got}")
