import pytest

from sapnet_export.errors import InputError
from sapnet_export.engine.trt_api import (RTX_TARGETS, TrtApi, available, choose_builder, collecting_logger,
                                   current_gpu, import_trt, rtx_capability)

rtx = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")


def test_import_rtx_reports_kind_and_version():
    api = import_trt("tensorrt-rtx")
    assert (api.kind, api.version, api.name) == ("tensorrt-rtx", rtx.__version__, "TensorRT-RTX")
    assert api.describe() == f"TensorRT-RTX {rtx.__version__}"
    assert not api.has_timing_cache


def test_unknown_kind():
    with pytest.raises(InputError, match="builder 'onnx': choose one of tensorrt, tensorrt-rtx"):
        import_trt("onnx")


def test_missing_full_tensorrt_says_how_to_install():
    if available("tensorrt"):
        pytest.skip("full TensorRT is installed here")
    with pytest.raises(InputError, match=r"TensorRT is not installed .*pypi.nvidia.com"):
        import_trt("tensorrt")


def test_network_flags_strongly_typed_per_version():
    # TensorRT 10 needs the STRONGLY_TYPED flag (bit 0 of the enum); TensorRT 11 and RTX take 0.
    assert TrtApi("tensorrt", rtx, "10.13.0.35").network_flags() == 1 << int(
        rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert TrtApi("tensorrt", rtx, "11.0.0.1").network_flags() == 0
    assert import_trt("tensorrt-rtx").network_flags() == 0


@pytest.mark.skipif(current_gpu() is not None, reason="this machine has a GPU")
def test_auto_picks_rtx_without_a_gpu_and_full_tensorrt_needs_one():
    assert choose_builder("auto", None).kind == "tensorrt-rtx"
    if available("tensorrt"):
        with pytest.raises(InputError, match="no GPU here"):
            choose_builder("tensorrt", None)


def test_rtx_targets_map_to_compute_capabilities():
    api = import_trt("tensorrt-rtx")
    for target in RTX_TARGETS:
        assert int(rtx_capability(api, target)) == int(target[2:])
    for bad in ("sm90", "none", "gpu"):
        with pytest.raises(InputError, match="compiles for sm75, sm80"):
            rtx_capability(api, bad)


def test_collecting_logger_keeps_parser_errors():
    api = import_trt("tensorrt-rtx")
    logger = collecting_logger(api)
    builder = api.trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT objects need their parents alive: keep references
    parser = api.trt.OnnxParser(network, logger)
    assert not parser.parse(b"not an onnx model")
    assert any("Failed to parse the ONNX model" in msg for msg in logger.errors())
