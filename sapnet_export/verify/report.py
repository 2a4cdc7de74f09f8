"""The human-readable side of ``verify`` and ``bench``: the summary table, a Markdown report and PNGs.

Pictures (matplotlib, Agg backend, written with ``--report DIR``):
- ``grid_<target>.png``: for the images with the lowest fidelity, rainy | reference | target |
  |target - reference| x 10 heatmap | ground truth;
- ``latency.png``: the distribution of timed runs per target and for the reference (box plot, ms);
- ``fidelity_per_image.png``: fidelity PSNR per image and target, with each target's gate;
- ``quality_per_image.png``: per image, target Y-PSNR minus reference Y-PSNR, with the drop gate.
The folder is assembled under a temporary name and renamed into place (an old report is replaced).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np

from sapnet_export.data.images import read_image
from sapnet_export.fileio import check_output, temporary_path
from .parity import Verification, worst_images

#: Columns of the summary table (bench and verify).
COLUMNS = ("target", "status", "file MB", "fidelity dB mean / min", "Y-PSNR", "Y-SSIM", "RGB-PSNR",
           "p50 ms", "p99 ms", "speed-up")


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if isinstance(value, str) or math.isinf(value) else f"{value:.2f}"


def summary_rows(payload: dict) -> list[dict[str, str]]:
    """One formatted row per target (keys :data:`COLUMNS`); the reference's latency is a row of its own
    when measured."""
    rows = []
    reference = payload["reference"]
    if reference.get("latency_ms") and not any(t.get("is_reference") for t in payload["targets"]):
        lat = reference["latency_ms"]
        rows.append({"target": f"reference: torch {reference['precision']} ({reference['device']})",
                     "status": "reference", "file MB": "-", "fidelity dB mean / min": "-",
                     "Y-PSNR": "-", "Y-SSIM": "-", "RGB-PSNR": "-", "p50 ms": f"{lat['p50']:.1f}",
                     "p99 ms": f"{lat['p99']:.1f}", "speed-up": "1.00x"})
    for target in payload["targets"]:
        fid, qual, lat = target["fidelity"], target["quality"], target["latency_ms"]
        ref_q = target["reference_quality"]
        status = target["status"] + (f": {target['reason']}" if target["reason"] else "")
        rows.append({
            "target": target["name"], "status": status,
            "file MB": f"{target['size_mb']:.2f}" if target["size_mb"] is not None else "-",
            "fidelity dB mean / min": f"{_db(fid['psnr_mean_db'])} / {_db(fid['psnr_min_db'])}" if fid else "-",
            "Y-PSNR": (f"{qual['psnr_y']:.3f} ({qual['psnr_y'] - ref_q['psnr_y']:+.3f})" if qual else "-"),
            "Y-SSIM": (f"{qual['ssim_y']:.4f} ({qual['ssim_y'] - ref_q['ssim_y']:+.4f})" if qual else "-"),
            "RGB-PSNR": f"{qual['psnr_rgb']:.3f}" if qual else "-",
            "p50 ms": f"{lat['p50']:.1f}" if lat else "-", "p99 ms": f"{lat['p99']:.1f}" if lat else "-",
            "speed-up": f"{target['speedup_vs_reference']:.2f}x" if target.get("speedup_vs_reference") else "-",
        })
    return rows


def markdown_table(payload: dict) -> str:
    """The summary table in Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in summary_rows(payload):
        lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _plt():  # noqa: ANN202 - matplotlib.pyplot, off-screen
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hwc(image: np.ndarray) -> np.ndarray:
    return np.clip(image.transpose(1, 2, 0), 0.0, 1.0)


def comparison_grid(verification: Verification, target, path: Path, count: int = 3,  # noqa: ANN001
                    references: dict[str, np.ndarray] | None = None) -> Path | None:
    """The grid PNG for ``target`` (see the module docstring); None when it has no Runner or rows.

    The verification streams its images and keeps no outputs (memory does not grow with the folder), so
    the grid runs again only what it draws: the target on its ``count`` images with the lowest fidelity,
    and the reference on those of them no earlier grid of the same report ran it on (``references``:
    image name -> reference output float32 [3, H, W], shared across targets by :func:`write_report`).
    """
    if target.runner is None or not target.rows:
        return None
    references = {} if references is None else references
    plt = _plt()
    gt_of = {str(p): g for p, g in verification.items}
    names = worst_images(target, count)
    columns = ["rainy", "reference (torch fp32)", target.name, "|target - reference| x 10", "ground truth"]
    rows = []
    for name in names:
        image = read_image(name)[None]
        if name not in references:
            references[name] = verification.reference.run(image)[0]
        reference = references[name]
        output = target.runner.run(image)[0]
        diff = np.abs(np.clip(output, 0, 1) - np.clip(reference, 0, 1)).mean(axis=0) * 10
        gt = read_image(gt_of[name]) if gt_of.get(name) else None
        rows.append((name, [_hwc(image[0]), _hwc(reference), _hwc(output), diff,
                            _hwc(gt) if gt is not None else None]))
    # One colour scale for the whole grid, fitted to its differences (x 10, as labelled).
    vmax = max(0.05, float(np.percentile(np.concatenate([r[1][3].ravel() for r in rows]), 99.9)))
    fig, axes = plt.subplots(len(rows), 5, figsize=(17, 2.9 * len(rows) + 0.8), squeeze=False)
    heat = None
    for row, (name, panels) in enumerate(rows):
        psnr = next(r["fidelity_psnr_db"] for r in target.rows if r["name"] == name)
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
            elif col == 3:
                heat = ax.imshow(panel, cmap="inferno", vmin=0, vmax=vmax)
            else:
                ax.imshow(panel)
            if row == 0:
                ax.set_title(columns[col], fontsize=10)
        axes[row][0].set_ylabel(f"{Path(name).name}\nfidelity {_db(psnr)} dB", fontsize=9)
    fig.colorbar(heat, ax=axes[:, 3].tolist(), location="bottom", fraction=0.05, pad=0.04,
                 label=f"|target - reference| x 10, mean over RGB ({10 / 255:.3f} = one 8-bit level)")
    fig.suptitle(f"{target.name}: the {len(names)} images with the lowest fidelity", fontsize=12)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def latency_chart(payload: dict, path: Path) -> Path | None:
    """Box plot of the timed runs (ms) of the reference and each target at the first size."""
    series = []
    reference = payload["reference"].get("latency_ms")
    if reference:
        series.append(("reference torch fp32", reference))
    series += [(t["name"], t["latency_ms"]) for t in payload["targets"] if t["latency_ms"]]
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(series) + 1.6))
    ax.boxplot([s[1]["samples_ms"] for s in series], orientation="horizontal", showfliers=True)
    ax.set_yticks(range(1, len(series) + 1), [s[0] for s in series], fontsize=9)
    for index, (_, lat) in enumerate(series, 1):
        ax.annotate(f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms", (lat["p99"], index),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    size = series[0][1]["size"]
    ax.set_xlabel(f"milliseconds per {size} frame ({series[0][1]['runs']} timed runs; lower is better)")
    ax.set_xlim(0, max(s[1]["p99"] for s in series) * 1.45)
    ax.invert_yaxis()
    ax.set_title(f"Latency on {payload['machine']['cpu']} ({payload['machine']['threads']} threads"
                 f"{', ' + payload['machine']['gpu'] if payload['machine']['gpu'] else ''})", fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _finite(values: list) -> np.ndarray:
    array = np.array([float(v) if not isinstance(v, str) else math.inf for v in values], dtype=np.float64)
    array[~np.isfinite(array)] = np.nan
    return array


def _line_chart(path: Path, series: list[tuple[str, str, np.ndarray, float | None]], xlabel: str,
                ylabel: str, title: str, lines: list[tuple[float, str, str | None]]) -> Path:
    """One line per (label, colour, values, dashed threshold in the line's colour or None); ``lines``
    are horizontal (y, colour, label) references."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4))
    for label, colour, values, threshold in series:
        ax.plot(range(1, len(values) + 1), values, marker=".", lw=1, label=label, color=colour)
        if threshold is not None:
            ax.axhline(threshold, color=colour, ls="--", lw=0.8)
    for y, colour, label in lines:
        ax.axhline(y, color=colour, ls="--" if label else "-", lw=0.8, label=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def per_image_charts(payload: dict, fidelity_path: Path, quality_path: Path) -> list[Path]:
    """Per-image fidelity (with each target's gate) and Y-PSNR change against the reference; a target
    keeps its colour (``C<index>``) in both."""
    written = []
    fidelity = []
    for index, target in enumerate(payload["targets"]):
        values = _finite([r["fidelity_psnr_db"] for r in target["per_image"]])
        if np.isfinite(values).any():  # the reference against itself is inf everywhere: nothing to draw
            gate = next((g["threshold_db"] for g in target["gates"] if g["gate"] == "fidelity"), None)
            fidelity.append((target["name"], f"C{index}", values, gate))
    if fidelity:
        written.append(_line_chart(fidelity_path, fidelity, "image (data order)",
                                   "fidelity PSNR vs torch fp32 (dB)",
                                   "Fidelity per image (dashed: each target's gate on the mean)", []))
    quality = [(t["name"], f"C{index}", np.array([r["psnr_y"] - r["reference_psnr_y"]
                                                  for r in t["per_image"] if r["psnr_y"] is not None]), None)
               for index, t in enumerate(payload["targets"]) if t["quality"] is not None]
    if quality:
        written.append(_line_chart(quality_path, quality, "image with ground truth (data order)",
                                   "Y-PSNR: target - reference (dB)",
                                   "Deraining quality change per image against ground truth",
                                   [(0.0, "black", None),
                                    (-payload["gates"]["max_quality_drop_db"], "red", "drop gate (on the mean)")]))
    return written


def write_report(verification: Verification, out_dir: str | Path, title: str) -> Path:
    """Write ``index.md`` and the PNGs into ``out_dir`` (replaced atomically); returns index.md's path."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    check_output(out_dir, kind="folder")
    tmp = temporary_path(out_dir, folder=True)
    try:
        payload = verification.payload
        pictures = [p for p in (latency_chart(payload, tmp / "latency.png"),) if p]
        pictures += per_image_charts(payload, tmp / "fidelity_per_image.png", tmp / "quality_per_image.png")
        references: dict[str, np.ndarray] = {}  # the reference runs once per image drawn, for every grid
        grids = [comparison_grid(verification, t, tmp / f"grid_{_slug(t.name)}.png", references=references)
                 for t in verification.targets if t.backend != "torch"]
        lines = [f"# {title}", "",
                 f"Machine: {payload['machine']['cpu']}, {payload['machine']['threads']} threads, GPU "
                 f"{payload['machine']['gpu'] or 'none'}. Reference: PyTorch fp32, weights sha256 "
                 f"{payload['reference']['weights_sha256'][:12]}, {payload['reference']['stages']} stages. "
                 f"Data: {payload['dataset']['data']} ({payload['dataset']['images']} images), ground "
                 f"truth: {payload['dataset']['gt'] or 'none'}.", "",
                 markdown_table(payload), "",
                 "Fidelity: PSNR against the reference (clipped to [0, 1], peak 1). Y-PSNR/Y-SSIM: against "
                 "ground truth, MPRNet convention; in brackets the change against the reference. "
                 "Latency: batch 1 at " + (payload["targets"][0]["latency_ms"]["size"]
                                           if payload["targets"] and payload["targets"][0]["latency_ms"]
                                           else "-") + "; speed-up against torch fp32.", ""]
        for target in payload["targets"]:
            for gate in target["gates"]:
                sign = "+" if gate["gate"] == "quality_drop" else ""
                lines.append(f"- {target['name']}: gate {gate['gate']} {'passed' if gate['passed'] else 'FAILED'}"
                             f" ({gate['value_db']:{sign}.2f} dB, needs >= {gate['threshold_db']:{sign}.2f} dB;"
                             f" worst {Path(gate['worst_image']).name} {gate['worst_value_db']:{sign}.2f} dB)")
        unmatched = payload["dataset"]["unmatched_inputs"]
        if unmatched:
            lines += ["", f"Inputs without ground truth ({len(unmatched)}): "
                      + ", ".join(Path(p).name for p in unmatched)]
        lines.append("")
        for picture in pictures + [g for g in grids if g]:
            lines += [f"![{picture.stem}]({picture.name})", ""]
        (tmp / "index.md").write_text("\n".join(lines))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir / "index.md"
