"""The frame-rate budget of ``run --target-fps``: choose a configuration measured on this machine.

A configuration is one row of a ``sapnet-export bench`` report: a backend and precision (a format such as
``onnx-int8-cpu``) at a number of stages, with its quality against ground truth (mean Y-PSNR and Y-SSIM
on the report's images) and its latency at each frame size it was timed at (``--sizes``). Reports made
with ``bench --stages K`` for several K give the stage axis; ``--sizes`` gives the resolution axis.

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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.machine import same_machine
from sapnet_export.shapes import parse_sizes

#: ``format`` of the reports ``verify`` and ``bench`` write.
REPORT_FORMAT = "sapnet-export/verify-v1"
#: Statuses of report rows that can be chosen (``failed_gate`` rows missed a fidelity or quality gate).
USABLE_STATUSES = ("ok",)


@dataclass(frozen=True)
class Configuration:
    """One measured configuration (a bench report row).

    Attributes:
        name: the bench format (``torch``, ``onnx``, ``onnx-fp16``, ``onnx-int8-cpu``, ...).
        backend, precision: what runs it (``--backend`` name) and its compute precision.
        stages: recurrent stages it runs.
        file: its model file (None for ``torch``, which runs the checkpoint).
        weights_sha256: sha256 of the checkpoint it was made from.
        psnr_y, ssim_y: mean Y-PSNR (dB) and Y-SSIM against ground truth on the report's images.
        latency_ms: (H, W) -> mean milliseconds per frame (batch 1) at that size.
        report: the bench report it was read from.
    """

    name: str
    backend: str
    precision: str
    stages: int
    file: Path | None
    weights_sha256: str
    psnr_y: float
    ssim_y: float
    latency_ms: dict[tuple[int, int], float]
    report: Path

    @property
    def label(self) -> str:
        """e.g. ``onnx-int8-cpu, 3 stages``."""
        return f"{self.name}, {self.stages} stage{'s' if self.stages > 1 else ''}"

    def estimate_ms(self, pixels: int, size: tuple[int, int] | None = None) -> tuple[float, str | None]:
        """Milliseconds to run ``pixels`` pixels: the measured mean when ``size`` (H, W) was measured,
        else scaled by pixel count from the measured size nearest in pixels.

        Returns:
            (milliseconds, None when measured or ``"HxW"`` of the size it was estimated from).
        """
        if size is not None and size in self.latency_ms:
            return self.latency_ms[size], None
        base = min(self.latency_ms, key=lambda s: abs(s[0] * s[1] - pixels))
        return self.latency_ms[base] * pixels / (base[0] * base[1]), f"{base[0]}x{base[1]}"


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


def _read_report(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read a bench report: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != REPORT_FORMAT:
        raise InputError(f"{path}: not a bench report (format {REPORT_FORMAT!r}); write one with "
                         "'sapnet-export bench ... --json FILE'")
    return payload


def read_reports(paths: Sequence[Path]) -> list[tuple[Path, dict]]:
    """Expand ``--configs`` and read each report once: files as given, folders to their ``*.json``
    files that are bench reports (sorted; other JSON files there are skipped).

    Returns:
        (path, payload) per report.

    Raises:
        InputError: a missing path, a folder without reports, or a given file that is not a report.
    """
    reports = []
    for path in paths:
        if path.is_dir():
            found = []
            for candidate in sorted(path.glob("*.json")):
                try:
                    found.append((candidate, _read_report(candidate)))
                except InputError:
                    continue
            if not found:
                raise InputError(f"{path}: no bench report (*.json from 'sapnet-export bench --json') in it")
            reports += found
        elif path.is_file():
            reports.append((path, _read_report(path)))
        else:
            raise InputError(f"{path}: no such file or folder")
    return reports


def load_configurations(paths: Sequence[Path], machine: dict) -> tuple[list[Configuration], list[tuple[str, str]]]:
    """Read the configurations of bench reports measured on ``machine``.

    Args:
        paths: bench reports (``--json`` of ``sapnet-export bench``) or folders of them.
        machine: this machine, as :func:`~sapnet_export.machine.machine_info` gives it.

    Returns:
        (configurations that can be chosen, (label, reason) of rows that cannot: failed, missed a
        gate, no latency, or a model file that is gone).

    Raises:
        InputError: a file that is not a bench report, a report from another machine, reports on
            different images, or one without ground truth (no quality to compare).
    """
    configs, excluded, dataset = [], [], None
    for path, payload in read_reports(paths):
        measured_on = payload.get("machine") or {}
        if not same_machine(measured_on, machine):
            raise InputError(f"{path}: measured on {_machine_text(measured_on)}, not on this machine "
                             f"({_machine_text(machine)}); measure here with 'sapnet-export bench'")
        data = payload.get("dataset") or {}
        key = (data.get("data"), data.get("gt"), data.get("images"))
        if data.get("gt") is None:
            raise InputError(f"{path}: measured without ground truth (--gt), so it has no quality to "
                             "compare configurations by")
        if dataset is None:
            dataset = (key, path)
        elif key != dataset[0]:
            raise InputError(f"{path}: measured on {key[2]} images of {key[0]}, but {dataset[1]} on "
                             f"{dataset[0][2]} of {dataset[0][0]}; qualities compare only on the same images")
        stages = int(payload["reference"]["stages"])
        for target in payload.get("targets", []):
            label = f"{target['name']}, {stages} stage{'s' if stages > 1 else ''}"
            reason = _unusable(target, path)
            if reason:
                excluded.append((label, reason))
                continue
            configs.append(Configuration(
                name=target["name"], backend=target["backend"], precision=target["precision"], stages=stages,
                file=Path(target["file"]) if target.get("file") else None,
                weights_sha256=payload["reference"]["weights_sha256"],
                psnr_y=float(target["quality"]["psnr_y"]), ssim_y=float(target["quality"]["ssim_y"]),
                latency_ms={tuple(parse_sizes(lat["size"])[0]): float(lat["mean"])
                            for lat in target["latency_by_size"]},
                report=path))
    return configs, excluded


def _unusable(target: dict, report: Path) -> str | None:
    if target.get("status") not in USABLE_STATUSES:
        return f"{target.get('status')}: {target.get('reason') or 'see ' + str(report)}"
    if not target.get("latency_by_size"):
        return f"not timed (bench --runs 0) in {report}"
    if not target.get("quality"):
        return f"no quality in {report}"
    if target.get("file") and not Path(target["file"]).is_file():
        return f"{target['file']}: model file no longer exists"
    return None


def _machine_text(machine: dict) -> str:
    return f"{machine.get('cpu')}, {machine.get('threads')} logical CPUs, {machine.get('gpu') or 'no GPU'}"


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
