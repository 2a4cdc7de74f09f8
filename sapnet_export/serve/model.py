"""The inference callable ``serve`` binds in PyTriton: a toolkit Runner behind Triton's batcher."""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np

from sapnet_export.model.tiling import plan_tile, run_tiled, run_tiled_shared_pooling
from sapnet_export.runners.base import Runner
from sapnet_export.model.triton_contract import INPUT_NAME, OUTPUT_NAME


class BadRequest(ValueError):
    """A request the model refuses (its message goes back to the client as the error)."""


def check_request(rainy: object, max_megapixels: float) -> np.ndarray:
    """Return ``rainy`` if it is float32 [N, 3, H, W] with H x W <= ``max_megapixels`` million pixels.

    Triton checks dtype and dims against the model configuration before a request reaches the model;
    this is the second line (a request must never reach the Runner malformed).

    Raises:
        BadRequest: the message names the input and what is wrong.
    """
    if not isinstance(rainy, np.ndarray):
        raise BadRequest(f"input {INPUT_NAME!r} is missing")
    if rainy.dtype != np.float32:
        raise BadRequest(f"input {INPUT_NAME!r}: FP32 expected, got {rainy.dtype}")
    if rainy.ndim != 4 or rainy.shape[1] != 3 or min(rainy.shape) < 1:
        raise BadRequest(f"input {INPUT_NAME!r}: [N, 3, H, W] expected, got {list(rainy.shape)}")
    pixels = rainy.shape[2] * rainy.shape[3]
    if pixels > max_megapixels * 1e6:
        raise BadRequest(f"input {INPUT_NAME!r}: frame {rainy.shape[2]}x{rainy.shape[3]} is "
                         f"{pixels / 1e6:.2f} megapixels, beyond the server's --max-megapixels "
                         f"{max_megapixels:g}")
    return rainy


class ServedModel:
    """PyTriton inference callable (one per model instance) over a toolkit Runner.

    Called with the requests Triton's dynamic batcher gathered (a list of ``{"rainy": float32 [n, 3,
    H, W]}``), it returns one ``{"derained": float32 [n, 3, H, W]}`` per request, in order. Requests
    are grouped by frame size and each group runs as one batch, so a batch never mixes sizes (Triton's
    batcher does not batch different shapes either; this makes it hold whatever the batcher does).
    Frames beyond ``tile`` or the Runner's ``max_frame`` run as tiles (:func:`plan_tile`).

    Args:
        runner: the Runner (used by this instance only: a lock serialises calls).
        max_megapixels: largest frame accepted.
        tile, overlap: as ``sapnet-export run --tile/--overlap``.

    Raises:
        BadRequest: from :func:`check_request`; PyTriton answers every request of the call with it,
            and the server keeps serving.
    """

    def __init__(self, runner: Runner, max_megapixels: float, tile: tuple[int, int] | None = None,
                 overlap: int = 0) -> None:
        self.runner, self.max_megapixels, self.tile, self.overlap = runner, max_megapixels, tile, overlap
        self.lock = threading.Lock()
        self.batches: list[int] = []  # frames per Runner call (the benchmark reads it)

    def _derain(self, batch: np.ndarray) -> np.ndarray:
        plan = plan_tile(batch.shape[2], batch.shape[3], self.tile, self.runner.max_frame)
        if plan is None:
            return self.runner.run(batch)
        if self.runner.shared_pooling:
            return np.concatenate([run_tiled_shared_pooling(self.runner.run_tiles, batch[i:i + 1], plan,
                                                            self.overlap) for i in range(batch.shape[0])])
        return run_tiled(self.runner.run, batch, plan, self.overlap)

    def __call__(self, requests: list) -> list[dict[str, np.ndarray]]:
        frames = [check_request(request.data.get(INPUT_NAME) if hasattr(request, "data")
                                else request.get(INPUT_NAME), self.max_megapixels) for request in requests]
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, frame in enumerate(frames):
            groups[frame.shape[2:]].append(index)
        outputs: list[np.ndarray | None] = [None] * len(frames)
        with self.lock:
            for indices in groups.values():
                batch = np.concatenate([frames[i] for i in indices])
                self.batches.append(batch.shape[0])
                derained = self._derain(np.ascontiguousarray(batch))
                start = 0
                for i in indices:
                    outputs[i] = derained[start:start + frames[i].shape[0]]
                    start += frames[i].shape[0]
        return [{OUTPUT_NAME: out} for out in outputs]
