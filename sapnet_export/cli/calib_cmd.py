"""``sapnet-export calib build | show``: make and inspect INT8 calibration sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from sapnet_export.errors import CheckFailed
from ._app import SapnetGroup, WeightsOpt, app, console, err_console, print_coverage

calib_app = typer.Typer(cls=SapnetGroup, no_args_is_help=True,
                        help="Calibration sets for INT8: build one from images/videos, or check one.")
app.add_typer(calib_app, name="calib")
#: Defaults of ``calib show --coverage``, literal so the CLI imports no ONNX at start-up; a test keeps
#: them equal to export.int8.coverage.DEFAULT_MARGIN and export.int8.quantize.DEFAULT_CALIB_METHOD.
DEFAULT_MARGIN = 0.25
DEFAULT_CALIB_METHOD = "percentile"


@calib_app.command("build")
def build_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="The set's folder, e.g. "
                                         "calibration/NAME.")],
    size: Annotated[str, typer.Option("--size", metavar="HxW", help="Frame size: the shape the "
                                      "engine's optimization profile is tuned at (OPT).")],
    count: Annotated[int, typer.Option("--count", min=1, help="Frames to keep (32 or more recommended).")],
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the frame draw and crops.")] = 0,
    fit: Annotated[str, typer.Option("--fit", help="crop: random HxW window at native scale "
                                     "(rain streaks keep their size; a smaller source is scaled up at most 2.5 times, with a warning, else refused); resize: whole frame scaled to "
                                     "cover HxW, centre-cropped.")] = "crop",
    clean: Annotated[Optional[list[str]], typer.Option(
        "--clean", help="Clean (dry) frames to render synthetic rain on, like SOURCES; their frames are "
        "drawn together with those of SOURCES. Repeatable. Needs --synthetic-rain.")] = None,
    synthetic_rain: Annotated[Optional[str], typer.Option(
        "--synthetic-rain", help="Rain rendered on the --clean frames: light (about Rain100L), moderate, "
        "heavy, or mixed (light and heavy in turn); deterministic by --seed, recorded in the "
        "manifest.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing set.")] = False,
    sources: Annotated[Optional[list[str]], typer.Argument(
        help="Image files, folders, glob patterns (quote them) and video files, used as they are.")] = None,
) -> None:
    """Sample deployment-like frames into calibration/NAME (frames.npz + manifest.json)."""
    from sapnet_export.export.int8.calibration import build_calibration
    from sapnet_export.shapes import parse_hw

    with console.status("decoding and sampling frames..."):
        result, warnings = build_calibration(sources or [], output, size=parse_hw(size), count=count,
                                             seed=seed, fit=fit, force=force, clean=clean or [],
                                             synthetic_rain=synthetic_rain)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    manifest = result.manifest
    console.print(f"[green]wrote[/] {output}: {manifest['count']} frames "
                  f"{'x'.join(map(str, manifest['shape']))} float32 from {len(manifest['sources'])} "
                  f"sources (fit {fit}, seed {seed}"
                  + (f"; {manifest['synthetic_frames']} with {synthetic_rain} synthetic rain"
                     if synthetic_rain else "") + f"); frames sha256 {result.sha256[:12]}")


@calib_app.command("show")
def show_command(
    path: Annotated[Path, typer.Argument(help="A calibration set folder.")],
    coverage: Annotated[Optional[list[Path]], typer.Option(
        "--coverage", help="Images or folders (the camera's frames, held-out images): compare their "
        "activation ranges with the set's calibrated ones, per tensor and stage, and warn where they "
        "exceed them by more than --margin. Repeatable.")] = None,
    weights: WeightsOpt = "default",
    qdq_profile: Annotated[str, typer.Option("--qdq-profile", help="tensorrt | cpu (with --coverage).")
                           ] = "tensorrt",
    calib_method: Annotated[str, typer.Option(
        "--calib-method", help="Calibration method whose ranges are compared (with --coverage).")
                            ] = DEFAULT_CALIB_METHOD,
    margin: Annotated[float, typer.Option(
        "--margin", min=0.0, help="Warn when values go beyond a calibrated range by more than this "
        "share of its width.")] = DEFAULT_MARGIN,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many --coverage images, "
                                       "evenly spaced.")] = 8,
) -> None:
    """Describe a calibration set and check it: frames against the manifest (exit 2 if altered),
    sources against their sha256 (exit 1 if stale). With --coverage, calibrate the network on it
    and say how the ranges of the given frames compare (a warning when they exceed them)."""
    from sapnet_export.export.int8.calibration import load_calibration
    from sapnet_export.export.int8.quantize import check_int8_options

    if coverage:
        check_int8_options(qdq_profile, calib_method, need_ranges=True)
    result = load_calibration(path)
    manifest = result.manifest
    table = Table(title=f"calibration set {path}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    prep = manifest["preprocessing"]
    for key, value in (("frames", f"{manifest['count']} x {'x'.join(map(str, manifest['shape'][1:]))} "
                                  f"{manifest['dtype']}"),
                       ("fit", f"{prep['fit']} to {prep['size'][0]}x{prep['size'][1]}"),
                       ("seed", str(manifest["seed"])),
                       ("synthetic rain", _synthetic_text(manifest)),
                       ("sources", f"{len(manifest['sources'])}: "
                                   + ", ".join(s["path"] for s in manifest["sources"][:5])
                                   + (" ..." if len(manifest["sources"]) > 5 else "")),
                       ("frames sha256", manifest["frames_sha256"]),
                       ("built by", f"sapnet-export {manifest['sapnet_export_version']}, "
                                    f"{manifest['created_utc']}"),
                       ("sources match", "yes" if not result.stale else f"no ({len(result.stale)} stale)")):
        table.add_row(key, value)
    console.print(table)
    if coverage:
        _show_coverage(result, coverage, weights, qdq_profile, calib_method, margin, limit)
    if result.stale:
        for line in result.stale:
            err_console.print(f"[yellow]stale:[/] {line}")
        raise CheckFailed(f"{path}: {len(result.stale)} of {len(manifest['sources'])} sources changed "
                          "or missing since the set was built; rebuild it with the command in its "
                          "manifest")


def _synthetic_text(manifest: dict) -> str:
    """``calib show``'s synthetic-rain row: how many frames got which preset (v1 sets have none)."""
    record = manifest.get("synthetic_rain")
    if not record:
        return "none"
    counts: dict[str, int] = {}
    for frame in manifest["frames"]:
        if "synthetic_rain" in frame:
            counts[frame["synthetic_rain"]["preset"]] = counts.get(frame["synthetic_rain"]["preset"], 0) + 1
    return f"{record['preset']}: " + ", ".join(f"{n} {name}" for name, n in counts.items()) + \
        f" of {manifest['count']} frames"


def _show_coverage(calibration, images: list[Path], weights: str, profile: str, method: str,  # noqa: ANN001
                   margin: float, limit: int) -> None:
    """``calib show --coverage``: calibrate (ONNX Runtime, on the CPU) and compare, stage by stage."""
    from sapnet_export.data.images import discover_images, evenly_spaced, read_image
    from sapnet_export.export.int8.sensitivity import Int8Session
    from sapnet_export.export.onnx_export import DEFAULT_OPSET, to_onnx_proto
    from sapnet_export.model.checkpoints import load_weights

    items = evenly_spaced(discover_images(images), limit)
    model, info = load_weights(weights)
    proto = to_onnx_proto(model, model.resolve_stages(None), DEFAULT_OPSET, None)
    session = Int8Session(proto, calibration.frames, [], profile=profile, calib_method=method)
    try:
        with console.status(f"calibrating ({profile}, {method}) on {len(calibration.frames)} frames, "
                            f"then measuring {len(items)} images..."):
            result = session.coverage(frames=[read_image(p) for p, _ in items],
                                      source=f"{len(items)} --coverage images", margin=margin)
    finally:
        session.close()
    table = Table(title=f"calibration coverage: {info.name} weights, {profile} profile, {method}; "
                        f"share of each calibrated range the images go beyond")
    for column in ("stage", "tensors", "beyond margin", "largest excess", "worst tensor (group)"):
        table.add_column(column, justify="left" if column.startswith("worst") else "right")
    for stage, excess in result.by_stage().items():
        rows = [t for t in result.tensors if t.stage == stage]
        worst = max(rows, key=lambda t: t.excess)
        table.add_row(str(stage), str(len(rows)), str(sum(t.excess > margin for t in rows)),
                      f"{100 * excess:.0f}%", f"{worst.name} ({worst.group})")
    console.print(table)
    print_coverage({"int8": {"coverage": result.as_dict()}})
