"""What ``verify`` and ``bench`` share: data discovery with ground truth, the run, the outputs (their
options are in :mod:`sapnet_export.cli.options`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._app import console, err_console


def check_outputs(json_path: Path | None, report: Path | None, *, several: bool = False) -> None:
    """:func:`sapnet_export.fileio.check_output` on ``--json`` (a file; a folder of kK.json when
    ``several`` stage counts are benched) and ``--report`` (a folder), before any work."""
    from sapnet_export.fileio import check_output

    if json_path is not None:
        check_output(json_path, kind="folder" if several else "file", option="--json")
    if report is not None:
        check_output(report, kind="folder", option="--report")


def guard_sizes(items: list, sizes: str | None, max_megapixels: float, backends: list[str]) -> None:
    """The size guard (:mod:`sapnet_export.data.frame_guard`) on every ``--data`` image's header and
    every ``--sizes`` entry, before any model is loaded or run."""
    from sapnet_export.data.frame_guard import check_images, check_sizes
    from sapnet_export.shapes import parse_sizes

    check_images([path for path, _ in items], max_megapixels=max_megapixels, backends=backends)
    check_sizes(parse_sizes(sizes) if sizes else None, max_megapixels=max_megapixels, backends=backends)


def discover_with_ground_truth(data: Path, gt: Path | None, limit: int | None) -> tuple[list, dict]:
    """``[(image, ground truth or None)]`` and the unmatched files; warns about unmatched ones."""
    from sapnet_export.data.images import discover_images, evenly_spaced
    from sapnet_export.data.pairs import pair_ground_truth

    items = evenly_spaced(discover_images([data]), limit)
    if gt is None:
        return [(path, None) for path, _ in items], {}
    pairing = pair_ground_truth(items, gt)
    matched = {path: gt_path for path, _, gt_path in pairing.pairs}
    if pairing.unmatched_inputs:
        err_console.print(f"[yellow]warning:[/] {len(pairing.unmatched_inputs)} inputs have no ground "
                          f"truth in {gt} (fidelity only): "
                          + ", ".join(p.name for p in pairing.unmatched_inputs[:10])
                          + (" ..." if len(pairing.unmatched_inputs) > 10 else ""))
    unclaimed = pairing.unmatched_ground_truth if limit is None else []
    if unclaimed:
        err_console.print(f"[yellow]warning:[/] {len(unclaimed)} ground-truth files match no input: "
                          + ", ".join(p.name for p in unclaimed[:10]) + (" ..." if len(unclaimed) > 10 else ""))
    return ([(path, matched.get(path)) for path, _ in items],
            {"inputs": pairing.unmatched_inputs, "ground_truth": unclaimed})


def progress() -> Progress:
    """The progress bar used while images are evaluated."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)


@contextmanager
def verification_args(checks, *, data: Path, gt: Path | None, unmatched: dict, count: int):  # noqa: ANN001
    """The keyword arguments of :func:`sapnet_export.verify.parity.run_verification` from the
    ``checks`` options (options.VerificationArgs), with a progress bar over ``count`` images and a
    line per latency, for as long as the ``with`` block runs; and a function that sets the bar's
    description (what is being made before the images are run)."""
    from sapnet_export.shapes import parse_sizes

    with progress() as bar:
        task = bar.add_task("evaluating", total=count)
        yield (dict(
            data=data, gt=gt, min_psnr_db=checks.min_psnr, max_quality_drop_db=checks.max_quality_drop,
            sizes=parse_sizes(checks.sizes) if checks.sizes else None, runs=checks.runs,
            duration_s=checks.duration, unmatched=unmatched,
            on_image=lambda i, name: bar.update(task, completed=i, description=Path(name).name),
            on_latency=lambda name, lat: err_console.print(
                f"latency {name} at {lat.size}: p50 {lat.p50:.1f} ms, p99 {lat.p99:.1f} ms ({lat.runs} runs)")),
               lambda text: bar.update(task, description=text))


def run(reference, weights_sha256: str, targets: list, items: list, *, data: Path, gt: Path | None,  # noqa: ANN001
        checks, unmatched: dict):  # noqa: ANN001 - options.VerificationArgs
    """:func:`sapnet_export.verify.parity.run_verification` with the ``checks`` options
    (:func:`verification_args`)."""
    from sapnet_export.verify.parity import run_verification

    with verification_args(checks, data=data, gt=gt, unmatched=unmatched, count=len(items)) as (args, _):
        return run_verification(reference, weights_sha256, targets, items, **args)


def finish(verification, title: str, json_path: Path | None, report_dir: Path | None) -> None:  # noqa: ANN001
    """Print the table and the gate lines, write the JSON and the report."""
    from sapnet_export.fileio import write_json
    from sapnet_export.verify.report import COLUMNS, summary_rows, write_report

    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, overflow="fold", justify="left" if column in ("target", "status") else "right")
    reasons = []
    for row in summary_rows(verification.payload):
        status, _, reason = row["status"].partition(": ")
        style = {"ok": "green", "reference": None}.get(status, "red")
        table.add_row(*(status if c == "status" else row[c] for c in COLUMNS), style=style)
        if reason:
            reasons.append(f"[red]{row['target']}[/]: {status}: {reason}")
    console.print(table)
    for line in reasons:  # below the table, so it stays readable on a narrow terminal
        console.print(line, highlight=False)
    if json_path is not None:
        write_json(json_path, verification.payload)
        console.print(f"[green]wrote[/] {json_path}")
    if report_dir is not None:
        with console.status("drawing the report..."):
            index = write_report(verification, report_dir, title)
        console.print(f"[green]wrote[/] {index} and its pictures")
