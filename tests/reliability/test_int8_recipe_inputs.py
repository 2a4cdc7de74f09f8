"""Bad input to the int8 defaults of ``onnx --precision int8`` and ``trt --int8`` (``--calib-method
auto``, ``--keep-fp32 none``) and to the analysis commands that do not take ``auto``: exit 2, a message
naming the option, and nothing written."""

import pytest

from conftest import invoke_cli as invoke


def _int8_command(command, checkpoint, calibration, out):
    if command == "onnx":
        return ["onnx", "--weights", checkpoint, "-o", out, "--precision", "int8", "--calib", calibration]
    return ["trt", "--weights", checkpoint, "--int8", "--calib", calibration, "--target", "sm89", "-o", out]


@pytest.mark.parametrize("command", ["onnx", "trt"])
@pytest.mark.parametrize("args, message", [
    (["--calib-method", "median"], "--calib-method median: choose one of auto, minmax, entropy, percentile"),
    (["--keep-fp32", "none", "--keep-fp32", "conv"], "--keep-fp32 none quantizes every group"),
    (["--keep-fp32", "res_conv9"], "--keep-fp32 'res_conv9' matches no node"),
])
def test_bad_int8_recipe_options(command, args, message, tiny_checkpoint, tiny_calibration, tmp_path):
    out = tmp_path / ("q.onnx" if command == "onnx" else "q.engine")
    before = sorted(tmp_path.rglob("*"))
    code, output = invoke(*_int8_command(command, tiny_checkpoint, tiny_calibration, out), *args)
    assert code == 2 and message in output, output
    assert "Traceback" not in output
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even a temporary file


def test_auto_is_for_the_exports_only(tiny_calibration, tmp_path):
    """``sensitivity`` and ``calib show --coverage`` rank and compare with one concrete method."""
    code, output = invoke("calib", "show", tiny_calibration, "--coverage", tiny_calibration.parent,
                          "--calib-method", "auto")
    assert code == 2 and "--calib-method auto: choose one of minmax, entropy, percentile" in output, output
