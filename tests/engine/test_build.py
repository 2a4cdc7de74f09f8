import json

import onnx
import pytest

from sapnet_export.engine.build import BuildFailed, BuildOptions, build_engine, network_layers
from sapnet_export.errors import InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.engine.sidecar import parse_profile, sidecar_path
from sapnet_export.engine.trt_api import current_gpu, import_trt

from conftest import TINY_PROFILE

rtx = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
OPTIONS = BuildOptions(builder="tensorrt-rtx", profile=parse_profile(TINY_PROFILE), targets=("sm89",))


def _conv_count(path) -> int:
    return sum(node.op_type == "Conv" for node in onnx.load(str(path)).graph.node)


def _float_conv_count(path) -> int:
    """Conv nodes whose weight is not dequantized (an int8 graph's float Convs: the tensorrt profile
    keeps conv0 and the output conv float by default)."""
    graph = onnx.load(str(path)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return sum(node.op_type == "Conv" and node.input[1] not in dequantized for node in graph.node)


@pytest.mark.parametrize("precision, conv_precision", [
    ("fp32", "float32"), ("fp16", "float16"), ("int8", "int8")])
def test_sidecar_records_what_built_the_engine(tiny_engines, precision, conv_precision):
    engine = tiny_engines[precision]
    side = json.loads(sidecar_path(engine).read_text())
    onnx_path = tiny_engines[f"{precision}_onnx"]
    assert side["format"] == "sapnet-export/engine-v1"
    assert side["builder"] == {"kind": "tensorrt-rtx", "name": "TensorRT-RTX", "version": rtx.__version__,
                               "onnx_parser_version": str(rtx.get_nv_onnx_parser_version())}
    assert side["target"]["compute_capabilities"] == ["sm89"]
    assert (side["precision"], side["stages"]) == (precision, 2)
    assert side["profile"] == {"input": "rainy", "min": [1, 3, 16, 16], "opt": [1, 3, 24, 32],
                               "max": [1, 3, 64, 64]}
    assert side["io"] == [{"name": "rainy", "mode": "input", "dtype": "float32", "shape": [-1, 3, -1, -1]},
                          {"name": "derained", "mode": "output", "dtype": "float32", "shape": [-1, 3, -1, -1]}]
    assert side["sha256"]["engine"] == sha256_file(engine)
    assert side["sha256"]["onnx"] == sha256_file(onnx_path)
    assert side["sha256"]["checkpoint"] == sha256_file(tiny_engines["checkpoint"])
    assert side["size_bytes"] == engine.stat().st_size > 100_000
    assert side["build_seconds"] > 0
    assert side["settings"]["profiling_verbosity"] == "DETAILED"
    # every Conv of the ONNX is in the network, typed to the precision of the graph (int8: the
    # quantized ones; conv0 and the output conv stay float32, 2 per stage)
    precisions = side["layers"]["precisions"]
    floats = _float_conv_count(onnx_path) if precision == "int8" else 0
    assert precisions[f"CONVOLUTION {conv_precision}"] == _conv_count(onnx_path) - floats
    if precision == "int8":
        assert floats == 4 and precisions["CONVOLUTION float32"] == 4, precisions
    if precision == "int8":
        manifest = tiny_engines["calibration"] / "manifest.json"
        assert side["sha256"]["calibration_manifest"] == sha256_file(manifest)
        assert side["calibration"]["shape"] == "4x3x24x32"
    else:
        assert side["sha256"]["calibration_manifest"] is None


def test_int8_network_layers_fuse_dequantize_into_conv(tiny_engines):
    api = import_trt("tensorrt-rtx")
    logger = api.trt.Logger(api.trt.Logger.ERROR)
    builder = api.trt.Builder(logger)  # keep: the network dies with its builder
    network = builder.create_network(0)
    parser = api.trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(tiny_engines["int8_onnx"]))
    layers = network_layers(network)
    convs = [row["precision"] for row in layers if row["type"] == "CONVOLUTION"]
    onnx_path = tiny_engines["int8_onnx"]
    assert convs.count("int8") == _conv_count(onnx_path) - _float_conv_count(onnx_path) > 0
    assert set(convs) == {"int8", "float32"}  # conv0 and the output conv: float by default
    assert not {"CONSTANT", "QUANTIZE", "DEQUANTIZE"} & {row["type"] for row in layers}


def test_output_exists_without_force(tiny_engines):
    with pytest.raises(InputError, match="already exists; pass --force"):
        build_engine(tiny_engines["fp32_onnx"], tiny_engines["fp32"], OPTIONS)


def test_cpu_profile_int8_graph_is_refused(tiny_onnx, tiny_calibration, tmp_path):
    from sapnet_export.export.int8.calibration import load_calibration
    from sapnet_export.export.int8.quantize import quantize_int8

    frames = load_calibration(tiny_calibration).frames
    cpu = tmp_path / "cpu.onnx"
    quantize_int8(tiny_onnx, cpu, profile="cpu", frames=frames, calib_method="minmax",
                  cache_path=tmp_path / "ranges.json")
    with pytest.raises(InputError, match="cpu.onnx: this int8 graph breaks TensorRT's QDQ rules .*"
                       "quantize it with --qdq-profile tensorrt"):
        build_engine(cpu, tmp_path / "cpu.engine", OPTIONS)
    assert list(tmp_path.glob("*.engine*")) == []


def test_static_graph_takes_its_shape_and_refuses_another(tiny_checkpoint, tmp_path):
    from sapnet_export.export.onnx_export import export_onnx
    from sapnet_export.model.checkpoints import load_weights

    model, info = load_weights(tiny_checkpoint)
    static = export_onnx(model, info, tmp_path / "s.onnx", static_hw=(24, 32), command="tests").path
    with pytest.raises(InputError, match=r"static 1x3x24x32; --shapes .* cannot apply"):
        build_engine(static, tmp_path / "s.engine", OPTIONS)
    result = build_engine(static, tmp_path / "s.engine",
                          BuildOptions(builder="tensorrt-rtx", targets=("sm86", "sm89")))
    assert result.sidecar["profile"]["min"] == result.sidecar["profile"]["max"] == [1, 3, 24, 32]
    assert result.sidecar["target"]["compute_capabilities"] == ["sm86", "sm89"]


def test_calibration_and_opt_shape_disagree_is_a_warning(tiny_engines, tmp_path):
    options = BuildOptions(builder="tensorrt-rtx", profile=parse_profile("16x16:32x32:64x64"),
                           targets=("sm89",), timing_cache=tmp_path / "cache.bin")
    result = build_engine(tiny_engines["int8_onnx"], tmp_path / "i.engine", options)
    assert any("calibration frames are 24x32 but the profile's OPT shape is 32x32" in w
               for w in result.warnings)
    # TensorRT-RTX has no timing cache: said, recorded, and no cache file appears
    assert any("--timing-cache" in w and "no timing cache" in w for w in result.warnings)
    assert result.sidecar["settings"]["timing_cache_used"] is False
    assert not (tmp_path / "cache.bin").exists()
    assert result.sidecar["warnings"] == result.warnings


def test_default_int8_profile_puts_opt_at_the_calibration_size(tiny_engines, tmp_path):
    result = build_engine(tiny_engines["int8_onnx"], tmp_path / "i.engine",
                          BuildOptions(builder="tensorrt-rtx", targets=("sm89",)))
    # the 24x32 calibration frames lie below the default profile's 64x64 minimum: OPT is clamped
    assert result.sidecar["profile"]["opt"] == [1, 3, 64, 64]
    assert any("calibration frames are 24x32" in w for w in result.warnings)


@pytest.mark.skipif(current_gpu() is not None, reason="this machine has a GPU")
def test_no_target_without_a_gpu(tiny_engines, tmp_path):
    with pytest.raises(InputError, match="no GPU here, so name the GPU the engine is for: --target"):
        build_engine(tiny_engines["fp32_onnx"], tmp_path / "x.engine",
                     BuildOptions(builder="tensorrt-rtx"))


def test_parser_failure_writes_nothing(tmp_path):
    """A valid ONNX with an op no parser knows (custom domain): BuildFailed, no engine, no sidecar."""
    from onnx import TensorProto, helper

    node = helper.make_node("Derain", ["rainy"], ["derained"], domain="com.example")
    shape = ["N", 3, "H", "W"]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("rainy", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("derained", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(BuildFailed, match="custom.onnx: TensorRT-RTX .*'s ONNX parser rejected it"):
        build_engine(tmp_path / "custom.onnx", tmp_path / "custom.engine", OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.onnx"]


def test_non_sapnet_onnx_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(InputError, match="other.onnx: expected input 'rainy' .* and output 'derained'"):
        build_engine(tmp_path / "other.onnx", tmp_path / "o.engine", OPTIONS)


def test_shared_pooling_export_is_refused_with_the_fix(tiny_model, tmp_path):
    from sapnet_export.export.onnx_export import to_onnx_proto

    onnx.save(to_onnx_proto(tiny_model, 1, 17, None, shared_pooling=True), str(tmp_path / "shared.onnx"))
    with pytest.raises(InputError, match="shared.onnx: a shared-pooling export .* without --shared-pooling"):
        build_engine(tmp_path / "shared.onnx", tmp_path / "s.engine", OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.onnx"]


@pytest.mark.skipif(current_gpu() is None, reason="full TensorRT builds only on a GPU; none here")
def test_full_tensorrt_build_with_timing_cache(tiny_engines, tmp_path):
    """Where full TensorRT and a GPU exist: the same code path builds, and the timing cache is written
    and read back on the next build."""
    pytest.importorskip("tensorrt", reason="full TensorRT is not installed (optional extra [tensorrt])")
    cache = tmp_path / "timing.cache"
    options = BuildOptions(builder="tensorrt", profile=parse_profile(TINY_PROFILE), timing_cache=cache)
    first = build_engine(tiny_engines["fp16_onnx"], tmp_path / "a.engine", options)
    assert first.sidecar["builder"]["kind"] == "tensorrt" and first.sidecar["settings"]["timing_cache_used"]
    assert first.sidecar["target"]["compute_capabilities"] == [current_gpu().capability]
    assert cache.stat().st_size > 0
    second = build_engine(tiny_engines["fp16_onnx"], tmp_path / "b.engine", options)
    assert second.sidecar["settings"]["timing_cache_used"]
