"""``run --target-fps``: read the measured configurations, choose one for the source's frames, say which
and why, and open its Runner (:mod:`sapnet_export.run.budget` does the choosing)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from sapnet_export.errors import InputError
from sapnet_export.runners.base import Runner
from sapnet_export.data.stream import FrameSource
from ._app import console


def _pixels(size: tuple[int, int], tile: tuple[int, int] | None, overlap: int) -> int:
    """Pixels the model runs per frame: the frame, or the total area of its tiles."""
    from sapnet_export.model.tiling import plan_tile, tile_count

    plan = plan_tile(*size, tile, None)
    if plan is None:
        return size[0] * size[1]
    # every tile of an axis has the same size (tiling.axis_starts spreads them over the frame)
    return tile_count(*size, plan, overlap) * min(plan[0], size[0]) * min(plan[1], size[1])


def choose_for_source(src: FrameSource, target_fps: float, configs: list[Path], *, backend: str | None,
                      weights: str, device: str | None, tile: tuple[int, int] | None,
                      overlap: int) -> Runner:
    """Choose the configuration for ``target_fps`` at the frame size of ``src``, print the candidates
    and the reason, and return its Runner.

    Raises:
        InputError: no ``--configs``, ``--device`` given (configurations run where they were measured),
            a source that does not declare its frame size, the errors of
            :func:`~sapnet_export.run.budget.load_configurations` and :func:`~sapnet_export.run.budget.choose`,
            or a chosen model file that no longer matches its measurement.
    """
    from sapnet_export.run.budget import choose, load_configurations
    from sapnet_export.machine import machine_info
    from sapnet_export.runners import PRECISION_BACKENDS, create_runner
    from sapnet_export.model.checkpoints import load_weights

    if not configs:
        raise InputError("--target-fps needs --configs: bench reports measured on this machine, e.g. "
                         "'sapnet-export bench --data D --gt G --stages 1-6 --json engines/configs' "
                         "(README, 'Frame-rate budget')")
    if device is not None:
        raise InputError("--target-fps runs a configuration on the device it was measured on; drop --device")
    size = src.size
    if size is None:
        raise InputError(f"{src.description}: the source does not give its frame size before decoding, "
                         "which --target-fps needs; run with --backend/--model/--stages instead")
    found, excluded = load_configurations(configs, machine_info())
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
    choice = choose(usable, target_fps, size, pixels=_pixels(size, tile, overlap), excluded=excluded)
    _print_choice(choice)
    chosen = choice.chosen.config
    runner = create_runner(chosen.backend, model=str(chosen.file) if chosen.file else None,
                           weights=weights, stages=chosen.stages,
                           precision=chosen.precision if chosen.backend in PRECISION_BACKENDS else None)
    info = runner.info
    if (info.stages, info.precision) != (chosen.stages, chosen.precision):
        raise InputError(f"{chosen.file}: now {info.precision} with {info.stages} stages, but "
                         f"{chosen.report} measured {chosen.precision} with {chosen.stages}; measure it again")
    return runner


def _print_choice(choice) -> None:  # noqa: ANN001 - budget.Choice
    table = Table(title=f"--target-fps {choice.target_fps:g} at {choice.frame[0]}x{choice.frame[1]}: "
                        "configurations measured on this machine")
    for column in ("configuration", "backend", "precision", "stages", "fps", "Y-PSNR dB", "loss dB", "reaches"):
        table.add_column(column, justify="left" if column in ("configuration", "backend") else "right")
    for cand in choice.candidates:
        config = cand.config
        table.add_row(config.name, config.backend, config.precision, str(config.stages),
                      f"{cand.fps:.2f}" + ("*" if cand.estimated_from else ""), f"{config.psnr_y:.2f}",
                      f"{cand.quality_loss_db:+.2f}", "yes" if cand.meets else "no",
                      style="bold green" if cand is choice.chosen else None)
    console.print(table)
    if any(c.estimated_from for c in choice.candidates):
        console.print("* estimated by pixel count from the nearest size measured (bench --sizes)")
    for label, reason in choice.excluded:
        console.print(f"[dim]not considered: {label}: {reason}[/]", highlight=False)
    console.print(("[green]" if choice.met else "[yellow]") + choice.explain() + "[/]", highlight=False)
