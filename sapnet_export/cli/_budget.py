"""``run --target-fps``: choose a configuration for the source's frames (:mod:`sapnet_export.run.budget`
does the choosing), say which and why, and open its Runner."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from sapnet_export.errors import InputError
from sapnet_export.runners.base import Runner
from sapnet_export.data.stream import FrameSource
from ._app import console


def choose_for_source(src: FrameSource, target_fps: float, configs: list[Path], *, backend: str | None,
                      weights: str, device: str | None, plan) -> Runner:  # noqa: ANN001 - TilePlan | None
    """Choose the configuration for ``target_fps`` at the frame size of ``src`` (run as ``plan``
    tiles it), print the candidates and the reason, and return its Runner.

    Raises:
        InputError: ``--device`` given (configurations run where they were measured), a source that
            does not declare its frame size, the errors of
            :func:`~sapnet_export.run.budget.choose_configuration` and
            :func:`~sapnet_export.run.budget.open_configuration`.
    """
    from sapnet_export.run.budget import choose_configuration, open_configuration

    if configs and device is not None:
        raise InputError("--target-fps runs a configuration on the device it was measured on; drop --device")
    if configs and src.size is None:
        raise InputError(f"{src.description}: the source does not give its frame size before decoding, "
                         "which --target-fps needs; run with --backend/--model/--stages instead")
    choice = choose_configuration(configs, target_fps, src.size or (0, 0), backend=backend, weights=weights,
                                  pixels=plan.pixels if plan is not None else None)
    _print_choice(choice)
    return open_configuration(choice.chosen.config, weights)


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
