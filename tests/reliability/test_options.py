"""The one numeric-option validator (sapnet_export/cli/options.py): every numeric option of both
commands declares a range, and NaN, infinities and out-of-range values are refused up front (exit 2)."""

import math

import pytest
import typer.main

from sapnet_export.cli import app
from sapnet_export.cli.options import check_number, declared_range, is_numeric
from conftest import invoke_cli


def _numeric_params(command, prefix=()):
    for name, sub in getattr(command, "commands", {}).items():
        yield from _numeric_params(sub, prefix + (name,))
    for param in getattr(command, "params", ()):
        if is_numeric(param):
            yield prefix, param


def _apps():
    from training.cli import app as train_app

    return {"sapnet-export": typer.main.get_command(app), "sapnet-train": typer.main.get_command(train_app)}


def test_every_numeric_option_declares_a_range():
    missing = [f"{tool} {' '.join(path)} {max(p.opts, key=len)}"
               for tool, root in _apps().items() for path, p in _numeric_params(root)
               if declared_range(p) is None]
    assert not missing, f"numeric options without min/max (use options.number or min=/max=): {missing}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_every_float_option_refuses_non_finite(value):
    """Called on the parsed values through the installed callbacks: no command body runs."""
    for _, root in _apps().items():
        for path, param in _numeric_params(root):
            annotation = param.type_descriptor.annotation
            if float not in (annotation, *getattr(annotation, "__args__", ())):
                continue
            with pytest.raises(typer.BadParameter, match="not a finite number"):
                param.callback(None, param, float(value))


def test_check_number_bounds():
    assert check_number(3, "--x", min=1, max=6) == 3
    assert check_number(None, "--x", min=1) is None
    assert check_number([1.0, 2.0], "--x", min=0, min_open=True) == [1.0, 2.0]
    for bad, kwargs in ((0.0, {"min": 0, "min_open": True}), (7, {"min": 1, "max": 6}),
                        (-1e-9, {"min": 0}), (math.nan, {})):
        with pytest.raises(typer.BadParameter):
            check_number(bad, "--x", **kwargs)


@pytest.mark.parametrize("args, option", [
    (["derain", "x.png", "-o", "out", "--max-megapixels", "0"], "--max-megapixels"),
    (["derain", "x.png", "-o", "out", "--max-megapixels", "-1"], "--max-megapixels"),
    (["derain", "x.png", "-o", "out", "--max-megapixels", "nan"], "--max-megapixels"),
    (["verify", "torch", "--data", "d", "--min-psnr", "nan"], "--min-psnr"),
    (["verify", "torch", "--data", "d", "--max-quality-drop", "-1"], "--max-quality-drop"),
    (["bench", "--data", "d", "--duration", "inf"], "--duration"),
    (["run", "v.mp4", "--target-fps", "0"], "--target-fps"),
    (["onnx", "--opset", "3"], "--opset"),
    (["trt", "--workspace", "0"], "--workspace"),
    (["calib", "build", "a", "-o", "b", "--size", "8x8", "--count", "0"], "--count"),
    (["sensitivity", "--calib", "c", "--data", "d", "--limit", "0"], "--limit"),
])
def test_out_of_range_options_exit_2_before_any_work(tmp_path, args, option):
    code, output = invoke_cli(*args)
    assert code == 2, output
    assert option in output and "Traceback" not in output
    assert not (tmp_path / "out").exists()
