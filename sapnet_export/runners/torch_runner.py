"""The PyTorch Runner: the fp32 reference every other backend is compared with."""

from __future__ import annotations

import numpy as np
import torch

from sapnet_export.errors import InputError
from sapnet_export.model.network import SAPNet
from sapnet_export.model.checkpoints import WeightsInfo, load_weights
from .base import Runner, RunnerInfo


class TorchRunner(Runner):
    """Runs :class:`~sapnet_export.model.network.SAPNet` in PyTorch eager mode, float32, under ``inference_mode``.

    Args:
        model: the network (its weights loaded).
        weights: where the weights came from (for :attr:`info`).
        stages: stages to run, 1..``model.stages``; None runs all.
        device: ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        InputError: CUDA was asked for and this torch has no usable CUDA device (never a fallback), or
            ``stages`` is out of range.
    """

    shared_pooling = True

    def __init__(self, model: SAPNet, weights: WeightsInfo, stages: int | None = None,
                 device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r}: torch {torch.__version__} sees no CUDA device")
        try:
            self.stages = model.resolve_stages(stages)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.info = RunnerInfo(
            backend="torch", precision="fp32",
            device=str(self.device) if self.device.type == "cpu" else torch.cuda.get_device_name(self.device),
            model=weights.name, stages=self.stages, threads=torch.get_num_threads(),
            versions={"torch": torch.__version__})

    @classmethod
    def from_options(cls, *, model: str | None, weights: str, stages: int | None,
                     device: str | None) -> "TorchRunner":
        """Build from CLI options: ``weights`` is a checkpoint spec; ``model`` must be None."""
        if model is not None:
            raise InputError(f"--model {model}: the torch backend runs --weights, not a model file")
        net, info = load_weights(weights)
        return cls(net, info, stages=stages, device=device or "cpu")

    def _run(self, batch: np.ndarray, pool_weights: np.ndarray | None = None) -> np.ndarray:
        with torch.inference_mode():
            weights = None if pool_weights is None else torch.from_numpy(pool_weights).to(self.device)
            out = self.model(torch.from_numpy(batch).to(self.device), stages=self.stages, pool_weights=weights)
        return out.float().cpu().numpy()

    def _run_tiles(self, tiles: np.ndarray, pool_weights: np.ndarray) -> np.ndarray:
        """The tiles of one frame as one batch with shared channel-attention pooling (base class)."""
        return self._run(tiles, pool_weights)
