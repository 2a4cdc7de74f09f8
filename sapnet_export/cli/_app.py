"""The Typer application, its error handling and the options and helpers the commands share."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sapnet_export import __version__
from sapnet_export.errors import SapnetError
from .options import harden

console = Console()
err_console = Console(stderr=True)


class SapnetGroup(TyperGroup):
    """Turns toolkit errors into one red line on stderr and the documented exit code, and validates
    every numeric option of its commands (:func:`sapnet_export.cli.options.harden`)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - TyperGroup's signature
        super().__init__(*args, **kwargs)
        harden(self)

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except SapnetError as exc:
            # escaped: messages hold brackets ([N, 3, H, W], URL[/VERSION]) that rich would read as markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # the environment refused (disk full, permissions): exit 2, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            err_console.print(f"[bold red]error:[/] {escape(where + str(exc.strerror or exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(cls=SapnetGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="SAPNet deraining: weights -> ONNX -> engines, with proof of quality and speed.")

WeightsOpt = Annotated[str, typer.Option(
    "--weights", "-w", help="Checkpoint path, 'default' (the toolkit's own weights, shipped in the "
    "package; offline) or 'official' (published SAPNet Model11; $SAPNET_WEIGHTS, torch hub cache, "
    "or download; sha256-verified).")]
#: ``--backend`` help, shared by the commands that take one.
BACKEND_HELP = ("torch | onnxruntime | openvino (ONNX files on Intel CPUs/GPUs/NPUs) | tensorrt | "
                "tensorrt-rtx (engines need a GPU) | triton (--model grpc://HOST:PORT/NAME: a served model).")
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help=BACKEND_HELP)]
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Model file for file-based backends (.onnx; .engine for tensorrt); "
    "grpc://HOST:PORT/NAME or http://HOST:PORT/NAME for triton.")]
DeviceOpt = Annotated[Optional[str], typer.Option(
    "--device", help="cpu, cuda (torch, onnxruntime), tensorrt (ONNX Runtime's TensorRT "
    "provider), gpu, npu or auto (openvino). Default: cpu; cuda for engines. Never falls back.")]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    "--precision", help="Compute precision: default the model file's own; bf16 with --backend "
    "openvino (INFERENCE_PRECISION_HINT bf16, refused on CPUs without AVX512-BF16/AMX).")]
ForceBf16Opt = Annotated[bool, typer.Option(
    "--force-bf16", help="openvino: run --precision bf16 even where the CPU has no native bf16.")]
StagesOpt = Annotated[Optional[int], typer.Option(
    "--stages", min=1, max=6, help="Recurrent stages to run, 1..6 (early exit: fewer is faster, "
    "lower quality). Default: all the checkpoint has.")]


def fmt_db(value: float) -> str:
    """A PSNR in dB for tables: one decimal, or ``inf``."""
    return "inf" if math.isinf(value) else f"{value:.1f}"


#: Rows of the held-out summary table: (label, format, value from the summary).
_ROWS = (
    ("images", "{:d}", lambda s: s["images"]),
    ("fidelity PSNR mean (dB)", "{:.2f}", lambda s: s["fidelity"]["psnr_mean_db"]),
    ("fidelity PSNR min (dB)", "{:.2f}", lambda s: s["fidelity"]["psnr_min_db"]),
    ("max difference (uint8 levels)", "{:d}", lambda s: s["fidelity"]["max_abs_u8"]),
    ("changed pixels, mean", "{:.2%}", lambda s: s["fidelity"]["changed_pixels"]),
    ("changed pixels, max", "{:.2%}", lambda s: s["changed_pixels_max"]),
    ("median s/image ({checker})", "{:.3f}", lambda s: s["seconds_median"]),
)
_QUALITY_ROWS = (("psnr_y", "Y-PSNR vs ground truth (dB)", "{:.3f}"),
                 ("ssim_y", "Y-SSIM vs ground truth", "{:.4f}"),
                 ("psnr_rgb", "RGB PSNR vs ground truth (dB)", "{:.3f}"),
                 ("ssim_rgb", "RGB SSIM vs ground truth", "{:.4f}"))


def print_summary(title: str, summary: dict, checker: str = "ONNX Runtime CPU") -> None:
    """Print a held-out summary (:func:`sapnet_export.measure.evaluation.summarize`, with images) as a
    two-column table; ground-truth rows show reference, converted and their difference. ``checker``
    names the Runner whose seconds per image the table gives."""
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, fmt, value_of in _ROWS:
        value = value_of(summary)
        text = "inf" if isinstance(value, float) and math.isinf(value) else fmt.format(value)
        table.add_row(label.format(checker=checker), text)
    if summary["quality"] is not None:
        for key, label, fmt in _QUALITY_ROWS:
            ref, conv = summary["reference_quality"][key], summary["quality"][key]
            table.add_row(label, f"reference {fmt.format(ref)}, converted {fmt.format(conv)}, "
                          f"difference {conv - ref:+.4f}")
    console.print(table)


def print_coverage(report: dict) -> None:
    """Print an int8 report's calibration coverage (``report["int8"]["coverage"]``): one line, and a
    warning on stderr when held-out activations exceed the calibrated ranges by more than the margin."""
    coverage = (report.get("int8") or {}).get("coverage")
    if not coverage:
        return
    stages = ", ".join(f"{k}: {100 * v:.0f}%" for k, v in coverage["max_excess_by_stage"].items())
    console.print(f"calibration coverage on {coverage['source']}: {coverage['exceeding']} of "
                  f"{coverage['tensors']} calibrated tensors beyond their range by more than "
                  f"{100 * coverage['margin']:.0f}%; largest excess per stage {stages}", highlight=False)
    if coverage["warning"]:
        err_console.print(f"[yellow]warning:[/] {coverage['warning']}", highlight=False)


def print_qat_note(report: dict, info, path) -> None:  # noqa: ANN001 - WeightsInfo, Path
    """Say that an int8 export used the learned ranges of a QAT checkpoint (``report["calibration"]
    ["ranges"] == "qat"``), that its fidelity is against that checkpoint's own fp32, and which
    ``verify`` of the written graph ``path`` measures it against the teacher (named in the
    checkpoint's ``training`` metadata)."""
    if (report.get("calibration") or {}).get("ranges") != "qat":
        return
    teacher = (info.metadata.get("training") or {}).get("teacher") or {}
    console.print(f"int8 ranges learned by quantization-aware training (sapnet-train qat); the "
                  f"fidelity here is against this checkpoint's own fp32: `sapnet-export verify "
                  f"{path} --weights {teacher.get('name', 'TEACHER')}` "
                  f"measures it against the teacher (sha256 {str(teacher.get('sha256', '?'))[:12]})",
                  highlight=False)


def print_held_out_warning(report: dict) -> None:
    """Print an export report's held-out warning on stderr, if any (``report["held_out"]["warning"]``:
    the built-in heavy-rain frames below the gate)."""
    warning = report["held_out"].get("warning")
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def held_out_source(report: dict) -> str:
    """`` (built-in heavy rain (...))`` when an export's held-out images are not the user's (an int8
    export without --images), else ``""``."""
    source = report["held_out"].get("source")
    return f" ({source})" if source not in (None, "--images") else ""


def load_calibration_warning_if_stale(path):  # noqa: ANN001, ANN201 - Path -> CalibrationSet
    """:func:`sapnet_export.export.int8.calibration.load_calibration`, with a warning on stderr for each stale
    source (the frames are still used; the report records the staleness)."""
    from sapnet_export.export.int8.calibration import load_calibration

    calibration = load_calibration(path)
    for line in calibration.stale:
        err_console.print(f"[yellow]warning:[/] calibration set {path} is stale: {line}")
    return calibration


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"sapnet-export {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                                is_eager=True, help="Print the version.")] = False
          ) -> None:
    """SAPNet deraining: weights -> ONNX -> engines, with proof of quality and speed."""
