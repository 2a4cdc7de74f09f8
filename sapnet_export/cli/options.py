"""Options the commands share, and the one validator of every numeric option (docs/reliability.md).

Option groups several commands share are declared once here, each with one help text (in the spirit of
Polygraphy's ``tools/args``): the int8 calibration options (``onnx``, ``trt``, ``sensitivity``,
``bench``) and the verification options (``verify``, ``bench``). A command takes one by annotating a
parameter with its type, so the option's name, type, range and help are the same wherever it appears.

Every ``int``/``float`` option and argument of ``sapnet-export`` and ``sapnet-train`` is validated here,
before the command runs (exit 2, the option named):

- NaN and infinities are refused everywhere (``float('nan')`` passes any ``min``/``max`` comparison,
  so a NaN threshold would silently switch a gate or a guard off);
- the declared range is enforced: Typer's ``min``/``max`` (closed bounds) or :func:`number`'s
  ``min_open``/``max_open`` (open bounds, e.g. ``--max-megapixels`` > 0).

:func:`harden` installs the check on every numeric parameter of a command tree; :class:`SapnetGroup`
(``sapnet_export/cli/_app.py``) calls it when Typer builds the click commands, so a new command gets
it without doing anything. ``tests/reliability/test_options.py`` fails when a numeric option has no
declared range, so new options must say what they accept.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sapnet_export.export.precision import default_gates_text

#: Attribute set on a parameter whose callback already validates it.
_MARK = "_sapnet_number_checked"


def check_number(value: Any, option: str, *, min: float | None = None, max: float | None = None,  # noqa: A002
                 min_open: bool = False, max_open: bool = False) -> Any:
    """Return ``value`` (a number, a list of numbers or None) if every number is finite and in range.

    Args:
        value: the parsed option value.
        option: its name as typed (``--max-megapixels``), for the message.
        min, max: bounds (None: unbounded); ``min_open``/``max_open`` exclude the bound itself.

    Raises:
        typer.BadParameter: NaN, an infinity, or a number outside the bounds (exit 2, usage error).
    """
    if value is None or isinstance(value, bool):
        return value
    for number in (value if isinstance(value, (list, tuple)) else [value]):
        if not isinstance(number, (int, float)):
            continue
        if isinstance(number, float) and not math.isfinite(number):
            raise typer.BadParameter(f"{number!r} is not a finite number", param_hint=option)
        low_bad = min is not None and (number <= min if min_open else number < min)
        high_bad = max is not None and (number >= max if max_open else number > max)
        if low_bad or high_bad:
            raise typer.BadParameter(f"{number:g} is out of range: {describe_range(min, max, min_open, max_open)}",
                                     param_hint=option)
    return value


def describe_range(min: float | None, max: float | None, min_open: bool = False,  # noqa: A002
                   max_open: bool = False) -> str:
    """``'> 0'``, ``'1..6'``, ``'>= 0'`` ... for messages and help."""
    if min is not None and max is not None and not (min_open or max_open):
        return f"{min:g}..{max:g}"
    parts = []
    if min is not None:
        parts.append(f"{'>' if min_open else '>='} {min:g}")
    if max is not None:
        parts.append(f"{'<' if max_open else '<='} {max:g}")
    return " and ".join(parts) or "any finite number"


def number(*param_decls: str, min: float | None = None, max: float | None = None,  # noqa: A002
           min_open: bool = False, max_open: bool = False, help: str | None = None,  # noqa: A002
           **kwargs: Any) -> Any:
    """A ``typer.Option`` for a number with open or closed bounds, checked by :func:`check_number`.

    Use where Typer's closed ``min``/``max`` do not say it, e.g. ``number("--max-megapixels", min=0,
    min_open=True)``. The range is added to the help text.
    """
    name = param_decls[0] if param_decls else None

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:  # noqa: ARG001
        return check_number(value, name or _option_name(param), min=min, max=max,
                            min_open=min_open, max_open=max_open)

    setattr(callback, _MARK, (min, max, min_open, max_open))
    text = f"{help + ' ' if help else ''}[range: {describe_range(min, max, min_open, max_open)}]"
    return typer.Option(*param_decls, callback=callback, help=text, **kwargs)


def _option_name(param: Any) -> str:
    opts = getattr(param, "opts", None) or [param.name]
    return max(opts, key=len)


def declared_range(param: Any) -> tuple[float | None, float | None, bool, bool] | None:
    """The range a numeric parameter declares (``number`` or Typer's ``min``/``max``); None if none."""
    info = param.type_descriptor.parameter_info
    marked = getattr(info.callback, _MARK, None)  # the callback as given, before Typer wraps it
    if isinstance(marked, tuple):
        return marked
    if info.min is None and info.max is None:
        return None
    return info.min, info.max, False, False


def is_numeric(param: Any) -> bool:
    """Whether a Typer parameter takes an int or a float (alone, optional or as a list)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return False
    annotation = descriptor.annotation
    args = getattr(annotation, "__args__", ())
    return annotation in (int, float) or any(a in (int, float) for a in args)


def harden(command: Any) -> None:
    """Install :func:`check_number` on every numeric parameter of ``command`` and its sub-commands
    (finite always; the declared range), once; other parameters are left alone."""
    for sub in getattr(command, "commands", {}).values():
        harden(sub)
    for param in getattr(command, "params", ()):
        if not is_numeric(param) or getattr(param.callback, _MARK, None) == "hardened":
            continue
        bounds = declared_range(param) or (None, None, False, False)
        original = param.callback

        def callback(ctx: Any, p: Any, value: Any, _original=original, _bounds=bounds) -> Any:  # noqa: ANN001
            value = check_number(value, _option_name(p), min=_bounds[0], max=_bounds[1],
                                 min_open=_bounds[2], max_open=_bounds[3])
            return _original(ctx, p, value) if _original is not None else value

        setattr(callback, _MARK, "hardened")
        param.callback = callback


#: Largest ``--min-psnr`` accepted, in dB. Float32 rounding differences measure 120-160 dB; an
#: identical output is infinite and passes any finite threshold, so 1000 dB demands an identical one.
MAX_PSNR_DB = 1000.0

#: ``--max-megapixels``: the frame-size guard of every command that reads frames or is given a size
#: (:mod:`sapnet_export.data.frame_guard` holds the measured memory it stands for).
MaxMegapixelsOpt = Annotated[float, number(
    "--max-megapixels", min=0, min_open=True,
    help="Refuse frames larger than this many megapixels before inference (memory: about 1.1 GB per "
         "megapixel with ONNX Runtime on the CPU, 0.8 GB with PyTorch; docs/reliability.md).")]


# --- int8 calibration ------------------------------------------------------------------------------

_CALIB_HELP = "Calibration set folder (from 'calib build'), for the int8 conversions."
#: ``--calib DIR`` where int8 is optional (``onnx``, ``trt``, ``bench``).
CalibOpt = Annotated[Optional[Path], typer.Option("--calib", help=_CALIB_HELP)]
#: ``--calib DIR`` where it is required (``sensitivity``).
CalibRequiredOpt = Annotated[Path, typer.Option("--calib", help=_CALIB_HELP)]
CalibMethodOpt = Annotated[Optional[str], typer.Option(
    "--calib-method", help="percentile (99.999 %, default; openvino profile: minmax) | minmax | "
    "entropy | mean-minmax (openvino profile: NNCF's own estimator).")]
#: ``--calib-method`` of ``onnx`` and ``trt``, whose default chooses by measurement.
Int8CalibMethodOpt = Annotated[Optional[str], typer.Option(
    "--calib-method", help="auto (default: minmax for the tensorrt profile on a set with synthetic rain "
    "and for the openvino profile, percentile otherwise; measured, docs/measurements.md) | percentile "
    "(99.999 %) | minmax | entropy | mean-minmax (openvino profile only: NNCF's own estimator).")]
KeepFp32Opt = Annotated[Optional[list[str]], typer.Option(
    "--keep-fp32", help="Keep a group (conv0, conv_i, conv_f, conv_g, conv_o, lstm_cell, "
    "res_conv1..5, conv) or node-name glob out of quantization. Repeatable. Default: the QDQ profile's "
    "(tensorrt: conv0 and conv, 1.5 % of the MACs; cpu and openvino: those and lstm_cell); 'none' "
    "quantizes every group.")]
FloatPrecisionOpt = Annotated[str, typer.Option(
    "--float-precision", help="Precision of what int8 leaves in float (groups kept in float, the "
    "element-wise ops): fp32 (default) | fp16 (tensorrt profile: TensorRT runs int8 and fp16 in one "
    "strongly typed graph).")]
QdqProfileOpt = Annotated[str, typer.Option(
    "--qdq-profile", help="tensorrt (int8 symmetric, for TensorRT/TensorRT-RTX) | cpu (u8s8, for "
    "ONNX Runtime on x86) | openvino (NNCF's nncf.quantize, checked with OpenVINO; "
    "--calib-method minmax or mean-minmax).")]

# --- verification (verify, bench) ------------------------------------------------------------------

DataOpt = Annotated[Path, typer.Option("--data", help="Folder (or file) of rainy images.")]
GtOpt = Annotated[Optional[Path], typer.Option(
    "--gt", help="Ground-truth folder, paired by name (N.png/N.png, rain-N/norain-N, ...).")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="Write the JSON report here.")]
ReportOpt = Annotated[Optional[Path], typer.Option(
    "--report", help="Write a Markdown summary and PNG pictures into this folder.")]
SizesOpt = Annotated[Optional[str], typer.Option(
    "--sizes", metavar="HxW[,HxW]", help="Latency frame sizes (default: the first image's).")]
RunsOpt = Annotated[int, typer.Option(
    "--runs", min=0, help="Timed latency runs per size after 2 warm-ups (0: no latency).")]
DurationOpt = Annotated[Optional[float], typer.Option(
    "--duration", min=0.001, help="Time for this many seconds instead of --runs.")]
LimitOpt = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="Use at most N images, evenly spaced.")]
MinPsnrOpt = Annotated[Optional[float], number(
    "--min-psnr", min=0, max=MAX_PSNR_DB,
    help=f"Fidelity gate on the mean PSNR in dB (default by precision: {default_gates_text()}).")]
MaxDropOpt = Annotated[float, typer.Option(
    "--max-quality-drop", min=0, help="Largest allowed drop of mean Y-PSNR against ground truth, target vs "
    "reference, in dB.")]


def int8_options(calib: Path | None, *, method: str, keep_fp32: list[str] | None, profile: str = "tensorrt",
                 int8_flag: str, float_precision: str = "fp32"):  # noqa: ANN201 - Int8Options | None (imported lazily)
    """The :class:`~sapnet_export.export.onnx_export.Int8Options` of ``--calib``, ``--calib-method``,
    ``--keep-fp32``, ``--float-precision`` and the QDQ profile, built once for ``onnx`` and ``trt``;
    None without ``--calib``.
    A stale calibration set is used with a warning per source.

    Raises:
        InputError: ``--keep-fp32`` without ``--calib`` (the message names ``int8_flag``, the option
            that asks for int8); the calibration set's errors.
    """
    from sapnet_export.errors import InputError
    from sapnet_export.export.onnx_export import Int8Options
    from ._app import load_calibration_warning_if_stale

    if calib is None:
        if keep_fp32 or float_precision != "fp32":
            raise InputError(f"--{'keep-fp32' if keep_fp32 else 'float-precision'} is for {int8_flag}")
        return None
    if keep_fp32 and "none" in keep_fp32 and len(keep_fp32) > 1:
        raise InputError("--keep-fp32 none quantizes every group; it cannot be combined with other --keep-fp32 groups")
    kept = None if not keep_fp32 else () if keep_fp32 == ["none"] else tuple(keep_fp32)
    return Int8Options(calibration=load_calibration_warning_if_stale(calib), profile=profile, method=method,
                       keep_fp32=kept, float_precision=float_precision)


@dataclass(frozen=True)
class VerificationArgs:
    """The verification options of ``verify`` and ``bench``, gathered by :func:`verification_options`
    (the library's names: :func:`sapnet_export.verify.parity.run_verification`)."""

    min_psnr: MinPsnrOpt = None
    max_quality_drop: MaxDropOpt = 0.5
    json_path: JsonOpt = None
    report: ReportOpt = None
    sizes: SizesOpt = None
    runs: RunsOpt = 20
    duration: DurationOpt = None
    limit: LimitOpt = None


def verification_options(command):  # noqa: ANN001, ANN201 - a Typer command function
    """Give ``command`` the verification options where its parameter ``checks`` stands, declared once
    (the fields of :class:`VerificationArgs`: their options, help, ranges and defaults), and call it
    with them gathered into ``checks``."""
    signature = inspect.signature(command, eval_str=True)
    types = typing.get_type_hints(VerificationArgs, include_extras=True)
    group = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=types[f.name])
             for f in fields(VerificationArgs)]
    params = []
    for param in signature.parameters.values():
        params += group if param.name == "checks" else [param.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

    @functools.wraps(command)
    def wrapper(**kwargs):  # noqa: ANN003, ANN202 - click passes every option by name
        checks = VerificationArgs(**{f.name: kwargs.pop(f.name) for f in fields(VerificationArgs)})
        return command(checks=checks, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the new signature, not the command's
    return wrapper

#: ``--allow-foreign-model``: run (or build from) a model file without the toolkit's metadata, or whose
#: graph does not match it (:func:`sapnet_export.model.onnx_meta.check_identity`).
AllowForeignOpt = Annotated[bool, typer.Option(
    "--allow-foreign-model", help="Run a model that is not a sapnet-export SAPNet export (no toolkit "
    "metadata, or a graph that does not match it). Its outputs are unverified; every summary and "
    "report says so.")]


def foreign_note(info) -> str | None:  # noqa: ANN001 - RunnerInfo
    """The line every summary prints for a model run with ``--allow-foreign-model`` (None otherwise)."""
    if getattr(info, "foreign_model", None):
        return (f"FOREIGN MODEL (--allow-foreign-model): {info.model} is not a sapnet-export SAPNet "
                f"export ({info.foreign_model}); outputs are unverified")
    return None
