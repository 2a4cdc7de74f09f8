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
    (["--calib-method", "median"], "--calib-method median: the tensorrt profile takes auto, minmax, entropy, percentile"),
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
    assert code == 2 and "--calib-method auto: the tensorrt profile takes minmax, entropy, percentile" in output, output


@pytest.mark.parametrize("args, message", [
    (["--calib-method", "percentile"],
     "--calib-method percentile: the openvino profile takes auto, minmax, mean-minmax"),
    (["--calib-method", "mean-minmax", "--qdq-profile", "cpu"],
     "--calib-method mean-minmax: the cpu profile takes auto, minmax, entropy, percentile"),
])
def test_bad_openvino_profile_methods(args, message, tiny_checkpoint, tiny_calibration, tmp_path):
    """NNCF's range estimators (minmax, mean-minmax) are the openvino profile's only, and it has no
    percentile or entropy: refused before any work, nothing written."""
    pytest.importorskip("nncf", reason="NNCF is not installed: pip install 'sapnet-export[openvino]'")
    args = args if "--qdq-profile" in args else [*args, "--qdq-profile", "openvino"]
    before = sorted(tmp_path.rglob("*"))
    code, output = invoke(*_int8_command("onnx", tiny_checkpoint, tiny_calibration, tmp_path / "q.onnx"), *args)
    assert code == 2 and message in output, output
    assert "Traceback" not in output and sorted(tmp_path.rglob("*")) == before


def test_coverage_refuses_the_openvino_profile(tiny_calibration):
    """NNCF keeps its ranges in its graph only: there is nothing to compare, so say so (exit 2)."""
    code, output = invoke("calib", "show", tiny_calibration, "--coverage", tiny_calibration.parent,
                          "--qdq-profile", "openvino")
    assert code == 2 and "NNCF keeps no calibration ranges" in output, output
    assert "Traceback" not in output


def test_sensitivity_refuses_a_method_the_openvino_profile_lacks(tiny_checkpoint, tiny_calibration, tmp_path):
    pytest.importorskip("nncf", reason="NNCF is not installed: pip install 'sapnet-export[openvino]'")
    code, output = invoke("sensitivity", "--weights", tiny_checkpoint, "--calib", tiny_calibration,
                          "--data", tiny_calibration.parent, "--qdq-profile", "openvino",
                          "--calib-method", "entropy", "-o", tmp_path / "s.json")
    assert code == 2 and "--calib-method entropy: the openvino profile takes minmax, mean-minmax" in output, output
    assert not (tmp_path / "s.json").exists()
