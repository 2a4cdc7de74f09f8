"""The training loop: official SAPNet recipe (``train.py``, ``option.py``), resumable.

Adam, learning rate 1e-3, MultiStepLR with milestones 30, 50, 80 and gamma 0.2, 100 epochs, 6 stages,
loss of :mod:`training.losses` on the last stage's output. An epoch is one pass over the patches
(:class:`training.data.PatchDataset`), or its first ``steps_per_epoch`` batches.

The output folder holds:

- ``sapnet.pth``: the latest weights, in the toolkit's checkpoint format
  (:func:`sapnet_export.model.checkpoints.save_checkpoint`), loadable with ``sapnet-export --weights``;
  metadata ``training`` has the recipe, data, steps, epochs, device, seconds, last losses, validation
  history and command;
- ``best.pth``: the weights with the best validation Y-PSNR so far (same format);
- ``state.pt``: model, optimizer, scheduler and history, for ``--resume``;
- ``log.csv``: one row per epoch (learning rate, mean loss terms, validation, seconds).

Every file is written atomically, after the epoch, so an interrupted run resumes from the last
complete epoch.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils.data import DataLoader

from sapnet_export import __version__
from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.fileio import atomic_output
from sapnet_export.model.network import OFFICIAL_STAGES, SAPNet
from sapnet_export.model.checkpoints import save_checkpoint

from .data import Pair, PatchDataset
from .losses import SEG_AFTER_EPOCH, LossWeights, SAPNetLoss
from .validation import score_inputs, score_model

STATE_FILE, WEIGHTS_FILE, BEST_FILE, LOG_FILE = "state.pt", "sapnet.pth", "best.pth", "log.csv"


class TrainingDiverged(CheckFailed):
    """The loss or the weights became NaN or infinite (exit 1): the message names the epoch, the step,
    the loss and the last good checkpoint kept."""


@dataclass(frozen=True)
class TrainConfig:
    """The recipe. Defaults are the official ones (``option.py``, paper section 4).

    Attributes:
        epochs: epochs to train in all (a resumed run continues up to this).
        batch_size: patches per step.
        lr: Adam's initial learning rate.
        milestones, gamma: MultiStepLR (epochs, 0-based, at which the rate is multiplied by gamma).
        stages: recurrent stages of the network.
        weights: loss term weights (:class:`training.losses.LossWeights`).
        seg_after_epoch: the segmentation term counts on 0-based epochs greater than this.
        pretrained: ImageNet weights for the loss networks (False: seeded random features).
        steps_per_epoch: stop an epoch after this many batches (None: the whole pass).
        seed: seeds model initialisation, shuffling, flips and rain.
        workers: DataLoader worker processes.
    """

    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    milestones: tuple[int, ...] = (30, 50, 80)
    gamma: float = 0.2
    stages: int = OFFICIAL_STAGES
    weights: LossWeights = field(default_factory=LossWeights)
    seg_after_epoch: int = SEG_AFTER_EPOCH
    pretrained: bool = True
    steps_per_epoch: int | None = None
    seed: int = 0
    workers: int = 0

    def as_dict(self) -> dict:
        """Plain-type form for checkpoint metadata."""
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        return out


@dataclass
class EpochRecord:
    """One row of ``log.csv``: 0-based epoch, steps done in all, learning rate, mean of each loss term
    over the epoch (unweighted), mean total loss, validation scores, seconds of the epoch."""

    epoch: int
    steps: int
    lr: float
    loss: float
    terms: dict[str, float]
    validation: dict | None
    seconds: float


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available, else CPU).

    Raises:
        InputError: CUDA asked for and not available (never a silent CPU fallback).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine "
                         f"(torch {torch.__version__}); use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"--device {device}: {exc}") from exc


def _write_csv(path: Path, records: list[EpochRecord]) -> None:
    names = sorted({n for r in records for n in r.terms})
    columns = ["epoch", "steps", "lr", "loss", *[f"loss_{n}" for n in names], "val_y_psnr_db",
               "val_y_ssim", "seconds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for r in records:
        val = r.validation or {}
        writer.writerow([r.epoch + 1, r.steps, f"{r.lr:.6g}", f"{r.loss:.6f}",
                         *[f"{r.terms[n]:.6f}" if n in r.terms else "" for n in names],
                         f"{val['y_psnr_db']:.4f}" if val else "", f"{val['y_ssim']:.5f}" if val else "",
                         f"{r.seconds:.1f}"])
    with atomic_output(path) as tmp:
        tmp.write_text(buffer.getvalue())


@dataclass
class TrainResult:
    """What :func:`train` did: the output folder, the epoch records (all epochs, resumed ones
    included), steps in all, and seconds of this invocation."""

    output: Path
    records: list[EpochRecord]
    steps: int
    seconds: float


def train(config: TrainConfig, dataset: PatchDataset, output: str | Path, *,
          validation: list[Pair] | None = None, data_description: dict | None = None,
          device: str = "cpu", resume: bool = False, force: bool = False,
          on_step: Callable[[int, int, float], None] | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train SAPNet with ``config`` on ``dataset`` and write the output folder (module docstring).

    Args:
        config: the recipe.
        dataset: training patches.
        output: folder for checkpoints and the log.
        validation: full-size pairs scored after each epoch (Y-PSNR/SSIM); None for none.
        data_description: what the data is (folders, counts, seeds), stored in the checkpoints.
        device: see :func:`resolve_device`.
        resume: continue from ``output/state.pt``.
        force: start over even if ``output`` holds a run.
        on_step: called with (step in epoch, steps in epoch, loss) after each step (progress bars).
        on_epoch: called with each finished epoch's record.

    A resumed run must use the same recipe except ``epochs``, which may grow.

    Raises:
        InputError: ``output`` holds a run and neither ``resume`` nor ``force``; ``resume`` without a
            state file; CUDA asked for and absent; the state file is for another recipe.
        PretrainedUnavailable: ImageNet weights needed and unavailable.
        TrainingDiverged: the loss or the weights became NaN or infinite (exit 1; the epoch, step and
            loss are named; the checkpoints of the last finished epoch are kept, nothing newer is
            written; a run folder this call created stays only if it holds something).
    """
    started = time.perf_counter()
    output = Path(output)
    torch_device = resolve_device(device)
    state_path = output / STATE_FILE
    if state_path.exists() and not (resume or force):
        raise InputError(f"{output}: holds a training run ({STATE_FILE}); --resume continues it, "
                         "--force starts over")
    if resume and not state_path.exists():
        raise InputError(f"{state_path}: no training state to resume from")
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    try:
        return _train(config, dataset, output, state_path, torch_device, validation, data_description,
                      resume, on_step, on_epoch, started)
    except BaseException:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # never leave an empty run folder behind
        raise


def _read_state(state_path: Path, torch_device: torch.device) -> dict:
    """The resume state, or an InputError naming the file (truncated, not a state file)."""
    try:
        state = torch.load(state_path, map_location=torch_device, weights_only=True)
    except Exception as exc:  # EOFError, RuntimeError (zip), UnpicklingError...
        raise InputError(f"{state_path}: the training state cannot be read ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'truncated or damaged'}); "
                         "start over with --force") from None
    needed = ("config", "model", "optimizer", "scheduler", "records", "steps", "epoch", "best")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise InputError(f"{state_path}: not a sapnet-train state file (needs {', '.join(needed)}); "
                         "start over with --force")
    return state


def _diverged(output: Path, epoch: int, step: int, loss: float, terms: dict) -> TrainingDiverged:
    weights = output / WEIGHTS_FILE
    kept = (f"the last good checkpoint is kept: {weights}" if weights.is_file()
            else "no checkpoint was written (it diverged in the first epoch)")
    return TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step + 1}: loss {loss} "
                            f"(terms {terms}); {kept}; lower --lr or check the data")


def _train(config: TrainConfig, dataset: PatchDataset, output: Path, state_path: Path,  # noqa: PLR0913
           torch_device: torch.device, validation, data_description, resume, on_step, on_epoch,  # noqa: ANN001
           started: float) -> TrainResult:
    """The loop of :func:`train` (over 60 lines: one epoch's steps, scores, checkpoints and state
    belong together; splitting them would pass a dozen locals around)."""

    torch.manual_seed(config.seed)
    model = SAPNet(stages=config.stages).to(torch_device)
    criterion = SAPNetLoss(config.weights, config.pretrained, config.seg_after_epoch).to(torch_device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    records: list[EpochRecord] = []
    steps, first_epoch, best = 0, 0, -math.inf
    if resume:
        state = _read_state(state_path, torch_device)
        saved = {k: v for k, v in state["config"].items() if k != "epochs"}
        if saved != {k: v for k, v in config.as_dict().items() if k != "epochs"}:
            raise InputError(f"{state_path}: was written with another recipe; resume with the same "
                             f"options or start over with --force\n  saved: {state['config']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        records = [EpochRecord(**r) for r in state["records"]]
        steps, first_epoch, best = state["steps"], state["epoch"] + 1, state["best"]

    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.workers, generator=generator)
    if len(loader) == 0:
        raise InputError(f"{len(dataset)} training patches are fewer than one batch of "
                         f"{config.batch_size}")
    baseline = score_inputs(validation).as_dict() if validation else None
    per_epoch = min(len(loader), config.steps_per_epoch or len(loader))

    for epoch in range(first_epoch, config.epochs):
        epoch_start = time.perf_counter()
        dataset.set_epoch(epoch)
        generator.manual_seed(config.seed * 1_000_003 + epoch)  # the same shuffle after a resume
        lr = optimizer.param_groups[0]["lr"]
        sums: dict[str, float] = {}
        total = 0.0
        model.train()
        for step, (rainy, clean) in enumerate(loader):
            if step >= per_epoch:
                break
            rainy, clean = rainy.to(torch_device), clean.to(torch_device)
            out = model(rainy)
            loss, terms = criterion(out, clean, rainy, epoch)
            if not torch.isfinite(loss):
                raise _diverged(output, epoch, step, loss.item(), terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise _diverged(output, epoch, step, float("nan"), {"weights": "NaN/Inf after the step"})
            steps += 1
            total += loss.item()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            if on_step:
                on_step(step + 1, per_epoch, loss.item())
        scheduler.step()
        scores = score_model(model, validation, torch_device).as_dict() if validation else None
        record = EpochRecord(epoch=epoch, steps=steps, lr=lr, loss=total / per_epoch,
                             terms={k: v / per_epoch for k, v in sums.items()}, validation=scores,
                             seconds=time.perf_counter() - epoch_start)
        records.append(record)
        is_best = scores is not None and scores["y_psnr_db"] > best
        best = scores["y_psnr_db"] if is_best else best
        training_meta = {
            "recipe": config.as_dict(), "data": data_description or {}, "device": str(torch_device),
            "epochs_done": epoch + 1, "steps": steps, "last_losses": record.terms,
            "validation_input_baseline": baseline,
            "validation": [{"epoch": r.epoch + 1, **(r.validation or {})} for r in records],
            "seconds": sum(r.seconds for r in records), "torch": str(torch.__version__),
            "toolkit": __version__, "command": " ".join(["sapnet-train", *sys.argv[1:]])}
        save_checkpoint(model, output / WEIGHTS_FILE, provenance={"source": "sapnet-train"},
                        training=training_meta)
        if is_best:
            save_checkpoint(model, output / BEST_FILE, provenance={"source": "sapnet-train"},
                            training=training_meta)
        with atomic_output(state_path) as tmp:
            torch.save({"config": config.as_dict(), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "records": [asdict(r) for r in records], "steps": steps, "epoch": epoch,
                        "best": best}, tmp)
        _write_csv(output / LOG_FILE, records)
        if on_epoch:
            on_epoch(record)
    return TrainResult(output, records, steps, time.perf_counter() - started)
