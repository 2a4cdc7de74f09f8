"""The measured configurations ``run --target-fps`` chooses among: the rows of ``sapnet-export bench``
reports (format :data:`sapnet_export.verify.parity.REPORT_FORMAT`) measured on this machine.

A configuration is one row of a bench report: a backend and precision (a format such as
``onnx-int8-cpu``) at a number of stages, with its quality against ground truth (mean Y-PSNR and Y-SSIM
on the report's images) and its latency at each frame size it was timed at (``--sizes``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.machine import describe, same_machine
from sapnet_export.shapes import parse_sizes
from sapnet_export.verify.parity import REPORT_FORMAT

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
            raise InputError(f"{path}: measured on {describe(measured_on)}, not on this machine "
                             f"({describe(machine)}); measure here with 'sapnet-export bench'")
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
