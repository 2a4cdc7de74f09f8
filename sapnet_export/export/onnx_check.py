"""Step 3 of an export (:func:`sapnet_export.export.onnx_export.export_onnx`): run the written graph in ONNX
Runtime (CPU; OpenVINO for the ``openvino`` QDQ profile) on random probes and on the held-out images, against PyTorch fp32, and gate it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sapnet_export.errors import CheckFailed
from sapnet_export.measure.evaluation import HeldOutImage, ImageResult, evaluate
from sapnet_export.model.tiling import TileLayout
from sapnet_export.runners.base import Runner
from sapnet_export.runners.torch_runner import TorchRunner
from .int8.quantize import profile_runner
from .int8.sensitivity import BudgetResult


def _probe_inputs(static_hw: tuple[int, int] | None) -> list[tuple[str, np.ndarray]]:
    """Deterministic random probes: two shapes for a dynamic export (to prove N, H, W are free)."""
    rng = np.random.default_rng(0)
    shapes = [(1, 3, *static_hw)] if static_hw else [(1, 3, 64, 64), (2, 3, 37, 53)]
    return [(f"probe {'x'.join(map(str, s))}", rng.random(s, dtype=np.float32)) for s in shapes]


def probes(reference_runner: TorchRunner, static_hw: tuple[int, int] | None) -> list[HeldOutImage]:
    """Random probe inputs with their PyTorch references (two shapes for a dynamic export)."""
    return [HeldOutImage(path=Path(name), name=name, image=batch, reference=reference_runner.run(batch))
            for name, batch in _probe_inputs(static_hw)]


class _TilesProbe(Runner):
    """Presents ``runner.run_tiles`` with fixed pool weights as ``run``, so :func:`evaluate` checks a
    shared-pooling graph on the tiles of one frame as it checks whole frames."""

    def __init__(self, runner: Runner, pool_weights: np.ndarray) -> None:
        self.runner, self.pool_weights, self.info = runner, pool_weights, runner.info

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.runner.run_tiles(batch, self.pool_weights)


def evaluate_tiles(runner: Runner, reference_runner: TorchRunner,
                    on_row: Callable[[ImageResult], None] | None) -> list[ImageResult]:
    """Fidelity of a shared-pooling graph on a random 72x88 frame cut into 4 tiles of 48x56
    (overlap 24) and run as one batch, against PyTorch with the same pool weights."""
    frame = np.random.default_rng(1).random((1, 3, 72, 88), dtype=np.float32)
    layout = TileLayout(72, 88, (48, 56), 24)
    tiles = layout.tile_batch(frame)
    weights = layout.pool_weights()
    name = f"probe tiles {len(layout.windows)}x48x56 (shared pooling)"
    probe = HeldOutImage(path=Path(name), name=name, image=tiles,
                         reference=reference_runner.run_tiles(tiles, weights))
    return evaluate(_TilesProbe(runner, weights), [probe], on_row)


def check_fidelity(graph: Path, reference_runner: TorchRunner, held_out: list[HeldOutImage], *,
                   precision: str, profile: str | None, threshold: float, static_hw: tuple[int, int] | None,
                   shared_pooling: bool, budget: BudgetResult | None, output: Path,
                   on_row: Callable[[ImageResult], None] | None = None,
                   gate_held_out: bool = True) -> tuple[list[ImageResult], list[ImageResult]]:
    """Measure ``graph`` (the temporary file of ``output``) against PyTorch fp32 and gate it, run by
    the QDQ ``profile``'s Runner on the CPU (ONNX Runtime; OpenVINO for ``openvino``; ONNX Runtime
    when None).

    fp32 and fp16: every probe and held-out image must reach ``threshold`` dB. int8: the held-out
    images must (the probes, random noise, are reported only); an int8 budget search already measured
    its chosen variant on them (``budget``), which is reused unless the graph changed after the search
    (``budget.chosen_is_written`` False). ``gate_held_out`` False measures the held-out images
    without gating them (the built-in heavy-rain frames, which warn instead).

    Returns:
        (probe results, held-out results).

    Raises:
        CheckFailed: an input below ``threshold`` (naming the worst) or an output with NaN/Inf.
    """
    runner = profile_runner(profile, graph)
    probe_rows = evaluate(runner, probes(reference_runner, static_hw), on_row)
    if shared_pooling:
        probe_rows += evaluate_tiles(runner, reference_runner, on_row)
    if budget is not None and budget.chosen_is_written:
        # The chosen variant's graph, already measured on every held-out image; what was written
        # differs only in metadata.
        held = budget.chosen.results
        for row in held if on_row else ():
            on_row(row)
    else:
        held = evaluate(runner, held_out, on_row)
    gated_held = held if gate_held_out else []
    gated = gated_held if precision == "int8" else probe_rows + gated_held
    failed = [r for r in gated if not r.fidelity.psnr_db >= threshold]
    if failed:
        worst = min(failed, key=lambda r: r.fidelity.psnr_db)
        extra = (f"; even with {', '.join(budget.chosen.float_groups)} kept in float"
                 if budget is not None and budget.chosen.float_groups else "")
        raise CheckFailed(f"{output}: {runner.info.backend} ({precision}) output differs from PyTorch fp32 "
                          f"on {len(failed)} of {len(gated)} inputs (worst {worst.name}: "
                          f"{worst.fidelity.psnr_db:.1f} dB, threshold {threshold:.1f} dB){extra}; "
                          "the file was not written")
    return probe_rows, held
