"""The frame-rate budget of ``run --target-fps``: choose a configuration measured on this machine.

A configuration (:class:`~sapnet_export.run.configurations.Configuration`) is one row of a
``sapnet-export bench`` report: a backend and precision at a number of stages, with its quality against
ground truth and its latency at each frame size it was timed at. Reports made with ``bench --stages K``
for several K give the stage axis; ``--sizes`` gives the resolution axis.

Choosing (:func:`choose`), for a frame of H x W (or the tiles it is cut into):

1. the per-frame latency of each configuration is its mean latency at H x W when that size was
   measured, else the milliseconds per pixel of the measured size nearest in pixel count times the
   pixels to run (the network is fully convolutional: its cost grows with the pixel count), marked
   "estimated";
2. the configurations whose frame rate (1000 / latency) reaches the target are kept, and the one with
   the highest Y-PSNR (the least quality loss against the full model in PyTorch fp32) is chosen, the
   faster one on a tie;
3. when none reaches the target, the fastest is chosen and the choice says so.

Reports must come from this machine (CPU, logical CPUs and GPU as in :func:`~sapnet_export.machine.machine_info`)
and from the same images, so that their latencies and qualities compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.runners.base import Runner
from .configurations import USABLE_STATUSES, Configuration, load_configurations, read_reports

__all__ = ["USABLE_STATUSES", "Candidate", "Choice", "Configuration", "choose", "choose_configuration",
           "load_configurations", "open_configuration", "read_reports"]



@dataclass(frozen=True)
class Candidate:
    """A configuration's standing against the target: ``fps`` (1000 / ``latency_ms``), whether it
    ``meets`` the target, ``estimated_from`` (None when timed at this size) and ``quality_loss_db``
    (Y-PSNR of the full model in PyTorch fp32 minus its own; negative when it scores higher)."""

    config: Configuration
    latency_ms: float
    fps: float
    estimated_from: str | None
    meets: bool
    quality_loss_db: float


@dataclass(frozen=True)
class Choice:
    """The outcome of :func:`choose`.

    Attributes:
        chosen: the configuration to run.
        met: whether it reaches ``target_fps`` (False: none does, it is the fastest).
        candidates: every usable configuration, fastest first.
        excluded: (label, reason) of configurations that cannot be chosen.
        reference_psnr_y: Y-PSNR of the quality-loss reference: PyTorch fp32 with the most stages
            measured (the most stages of any configuration when no PyTorch row was measured);
            ``reference`` is its label.
        target_fps, frame: the target and the frame size (H, W); ``pixels`` run per frame (tiles included).
    """

    chosen: Candidate
    met: bool
    candidates: list[Candidate]
    excluded: list[tuple[str, str]]
    reference_psnr_y: float
    reference: str
    target_fps: float
    frame: tuple[int, int]
    pixels: int

    def explain(self) -> str:
        """One sentence: what was chosen and why."""
        c = self.chosen
        how = "estimated from " + c.estimated_from if c.estimated_from else "measured"
        size = f"{self.frame[0]}x{self.frame[1]}"
        if not self.met:
            return (f"no measured configuration reaches {self.target_fps:g} fps at {size}; running the "
                    f"fastest, {c.config.label} ({c.config.backend} {c.config.precision}): {c.fps:.2f} fps "
                    f"({how}), Y-PSNR {c.config.psnr_y:.2f} dB")
        meeting = sum(1 for cand in self.candidates if cand.meets)
        return (f"chose {c.config.label} ({c.config.backend} {c.config.precision}): {c.fps:.2f} fps at {size} "
                f"({how}) >= {self.target_fps:g}, and the highest Y-PSNR of the {meeting} configuration"
                f"{'s' if meeting > 1 else ''} that reach it: {c.config.psnr_y:.2f} dB, "
                f"{c.quality_loss_db:+.2f} dB below {self.reference} ({self.reference_psnr_y:.2f} dB)")


def choose(configs: Sequence[Configuration], target_fps: float, frame: tuple[int, int], *,
           pixels: int | None = None, excluded: Sequence[tuple[str, str]] = ()) -> Choice:
    """Pick the configuration for ``target_fps`` frames per second at ``frame`` (H, W) (module docstring).

    Args:
        pixels: pixels run per frame when tiling (the tiles' total area); default H * W.
        excluded: passed through to the :class:`Choice` (rows that could not be considered).

    Raises:
        InputError: ``target_fps`` <= 0, or no configuration to choose from.
    """
    if target_fps <= 0:
        raise InputError(f"--target-fps must be > 0, got {target_fps:g}")
    if not configs:
        reasons = "; ".join(f"{label}: {why}" for label, why in excluded) or "none given"
        raise InputError(f"--target-fps: no usable measured configuration ({reasons})")
    pixels = pixels or frame[0] * frame[1]
    size = frame if pixels == frame[0] * frame[1] else None
    # the quality reference: PyTorch fp32 with the most stages measured
    torch_rows = [c for c in configs if c.backend == "torch" and c.precision == "fp32"]
    reference = max(torch_rows or configs, key=lambda c: (c.stages, c.psnr_y))
    candidates = []
    for config in configs:
        ms, estimated = config.estimate_ms(pixels, size)
        fps = 1000.0 / ms
        candidates.append(Candidate(config=config, latency_ms=ms, fps=fps, estimated_from=estimated,
                                    meets=fps >= target_fps, quality_loss_db=reference.psnr_y - config.psnr_y))
    candidates.sort(key=lambda c: c.latency_ms)
    meeting = [c for c in candidates if c.meets]
    chosen = max(meeting, key=lambda c: (c.config.psnr_y, c.fps)) if meeting else candidates[0]
    return Choice(chosen=chosen, met=bool(meeting), candidates=candidates, excluded=list(excluded),
                  reference_psnr_y=reference.psnr_y,
                  reference=f"{reference.label} ({reference.backend} {reference.precision})",
                  target_fps=target_fps, frame=frame, pixels=pixels)


def choose_configuration(configs: Sequence[Path], target_fps: float, frame: tuple[int, int], *,
                         backend: str | None = None, weights: str = "default", pixels: int | None = None,
                         machine: dict | None = None) -> Choice:
    """What ``run --target-fps`` does before it runs: read the bench reports, keep the configurations
    this run can use, and :func:`choose` among them.

    Args:
        configs: bench reports or folders of them (``--configs``).
        target_fps: frames per second to reach; frame: (H, W) of the source's frames.
        backend: only configurations of this ``--backend`` (None: any).
        weights: the checkpoint a ``torch`` configuration must have been measured with (``--weights``).
        pixels: pixels run per frame when tiling (:attr:`sapnet_export.model.tiling.TilePlan.pixels`).
        machine: this machine (:func:`~sapnet_export.machine.machine_info`, the default).

    Raises:
        InputError: no ``configs``, the errors of
            :func:`~sapnet_export.run.configurations.load_configurations` and :func:`choose`.
    """
    from sapnet_export.machine import machine_info
    from sapnet_export.model.checkpoints import load_weights

    if not configs:
        raise InputError("--target-fps needs --configs: bench reports measured on this machine, e.g. "
                         "'sapnet-export bench --data D --gt G --stages 1-6 --json engines/configs' "
                         "(docs/commands.md, 'Frame-rate budget')")
    found, excluded = load_configurations(configs, machine or machine_info())
    checkpoint = load_weights(weights)[1] if any(c.backend == "torch" for c in found) else None
    usable = []
    for config in found:
        if backend is not None and config.backend != backend:
            excluded.append((config.label, f"not --backend {backend}"))
        elif checkpoint is not None and config.backend == "torch" and config.weights_sha256 != checkpoint.sha256:
            excluded.append((config.label, f"measured with weights sha256 {config.weights_sha256[:12]}, "
                                           f"--weights {weights} is {checkpoint.sha256[:12]}"))
        else:
            usable.append(config)
    return choose(usable, target_fps, frame, pixels=pixels, excluded=excluded)


def open_configuration(config: Configuration, weights: str = "default") -> Runner:
    """The Runner of a chosen configuration, checked against what was measured.

    Raises:
        InputError: the Runner's errors, or a model file that is now another precision or stage count
            than the report measured.
    """
    from sapnet_export.runners import PRECISION_BACKENDS, create_runner

    runner = create_runner(config.backend, model=str(config.file) if config.file else None,
                           weights=weights, stages=config.stages,
                           precision=config.precision if config.backend in PRECISION_BACKENDS else None)
    info = runner.info
    if (info.stages, info.precision) != (config.stages, config.precision):
        raise InputError(f"{config.file}: now {info.precision} with {info.stages} stages, but "
                         f"{config.report} measured {config.precision} with {config.stages}; measure it again")
    return runner
