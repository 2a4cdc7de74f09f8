"""What every Runner of an exported SAPNet ONNX file shares (ONNX Runtime, OpenVINO): opening and
checking the file, the ``--model``/``--stages`` options, and how a batch is fed to a plain or a
shared-pooling graph. A backend implements only :meth:`OnnxFileRunner._infer`."""

from __future__ import annotations

import abc
import dataclasses
import os
from pathlib import Path

import numpy as np
import onnx

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import (INPUT_NAME, POOL_WEIGHTS_NAME, check_identity, check_io, load_onnx,
                                           metadata, whole_frame_pool_weights)
from .base import Runner


class OnnxFileRunner(Runner):
    """Base of the Runners that execute a ``sapnet-export onnx`` file.

    A shared-pooling export (second input ``pool_weights``, ``sapnet-export onnx --shared-pooling``)
    sets :attr:`shared_pooling`: :meth:`run_tiles` feeds a frame's tiles with their pool weights, and
    :meth:`run` feeds each frame of a batch on its own with
    :func:`~sapnet_export.model.onnx_meta.whole_frame_pool_weights`, which computes what the plain export
    computes (the weights of one call sum to 1 over the batch, so frames must not share a call).

    Subclasses set :attr:`backend` and :attr:`default_device`, call :meth:`_open` first in their
    ``__init__`` and implement :meth:`_infer`.
    """

    #: The ``--backend`` name (for messages).
    backend = ""
    #: ``--device`` when none is given.
    default_device = "cpu"
    #: Stages the file was exported with (its ``stages`` metadata; None when it does not say).
    stages: int | None = None
    #: The checkpoint the file was exported from and the sha256 of its weights (metadata
    #: ``checkpoint`` and ``checkpoint_sha256``, docs/formats.md; None when it does not say).
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None

    def _open(self, path: str | os.PathLike) -> tuple[Path, onnx.ModelProto]:
        """Load and check the file; set :attr:`shared_pooling`, :attr:`stages` and the checkpoint it names.

        The model-identity check (toolkit metadata matching the graph) is not made here, since the
        toolkit runs its own intermediate graphs (int8 trials) too; :meth:`from_options`, the path of
        every user-given file, makes it.

        Raises:
            InputError: missing or unreadable file, or not a SAPNet export (input/output names).
        """
        path = Path(path)
        proto = load_onnx(path)
        self.shared_pooling = check_io(proto, path)
        meta = metadata(proto)
        self.stages = int(meta.get("stages", 0)) or None
        self.checkpoint, self.checkpoint_sha256 = meta.get("checkpoint"), meta.get("checkpoint_sha256")
        return path, proto

    @classmethod
    def from_options(cls, *, model: str | None, weights: str, stages: int | None,
                     device: str | None, allow_foreign_model: bool = False, own_graph: bool = False,
                     **options) -> "OnnxFileRunner":
        """Build from CLI options: ``model`` is the ONNX file, which must be a toolkit export
        (:func:`~sapnet_export.model.onnx_meta.check_identity`) unless ``allow_foreign_model`` (then
        ``info.foreign_model`` says why it is not); ``stages`` must match its export; ``options`` go
        to the constructor (e.g. OpenVINO's ``precision``). ``own_graph``: a graph the toolkit is
        making (an int8 trial, before its metadata is written), exempt from the identity check.

        Raises:
            InputError: no ``model``, a foreign model not allowed, a stage count the file was not
                exported with, or the constructor's errors.
        """
        if model is None:
            raise InputError(f"the {cls.backend} backend needs --model F.onnx (make one with "
                             "'sapnet-export onnx')")
        foreign = None if own_graph else check_identity(load_onnx(model), model,
                                                         allow_foreign=allow_foreign_model)
        runner = cls(model, device=cls.default_device if device is None else device, **options)
        if foreign:
            runner.info = dataclasses.replace(runner.info, foreign_model=foreign)
        if stages is not None and runner.stages is not None and stages != runner.stages:
            raise InputError(f"{model}: exported with {runner.stages} stages, --stages {stages} "
                             f"asked; export again with --stages {stages}")
        return runner

    def _frame_feeds(self, batch: np.ndarray, per_frame: bool) -> list[dict[str, np.ndarray]]:
        """Feeds for ``batch`` (float32 [N, 3, H, W]): one per frame with its whole-frame pool weights
        for a shared-pooling graph (or when ``per_frame``), else the whole batch in one."""
        if not (self.shared_pooling or per_frame):
            return [{INPUT_NAME: batch}]
        extra = ({POOL_WEIGHTS_NAME: whole_frame_pool_weights(*batch.shape[2:])}
                 if self.shared_pooling else {})
        return [{INPUT_NAME: batch[i:i + 1], **extra} for i in range(batch.shape[0])]

    def _infer_all(self, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Run every feed (in order); a backend may run them concurrently."""
        return [self._infer(feed) for feed in feeds]

    #: Whether :meth:`_run` feeds the frames of a plain graph's batch one by one (OpenVINO's
    #: throughput mode runs them as parallel requests); False: the batch in one call.
    split_batches = False

    def _run(self, batch: np.ndarray) -> np.ndarray:
        feeds = self._frame_feeds(batch, self.split_batches and batch.shape[0] > 1)
        return np.concatenate(self._infer_all(feeds))

    def _run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        return self._infer({INPUT_NAME: tiles, POOL_WEIGHTS_NAME: pool_weights})

    @abc.abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph once on ``feeds`` (input name -> contiguous float32 array); return the
        ``derained`` output as float32 [N, 3, H, W] (an array the caller may keep)."""
