"""``sapnet-export triton-repo``: each kind of entry round-trips through Triton's ModelConfig protobuf
(tritonclient.grpc.model_config_pb2) and matches the model file; TensorRT-RTX engines are refused."""

from pathlib import Path

import pytest
from google.protobuf import text_format

from conftest import invoke_cli

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed")

KINDS = {
    "cpu": ([], pb.ModelInstanceGroup.KIND_CPU),
    "gpu-trt-fp16": (["--kind", "gpu", "--trt-accelerator", "fp16"], pb.ModelInstanceGroup.KIND_GPU),
    "cpu-openvino": (["--openvino-accelerator"], pb.ModelInstanceGroup.KIND_CPU),
}


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_entry_round_trips_through_model_config(kind, tiny_models, tmp_path):
    args, group = KINDS[kind]
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", tmp_path / "repo",
                              "--max-batch", "8", "--instances", "2", "--batch-delay-us", "500",
                              "--warmup", "96x128", *args)
    assert code == 0, output
    entry = tmp_path / "repo" / "sapnet"
    assert sorted(p.name for p in (entry / "1").iterdir()) == ["model.onnx"]
    assert (entry / "1" / "model.onnx").read_bytes() == tiny_models["fp32"].read_bytes()
    config = text_format.Parse((entry / "config.pbtxt").read_text(), pb.ModelConfig())
    assert config.name == "sapnet" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("rainy", pb.TYPE_FP32, [3, -1, -1])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [("derained", pb.TYPE_FP32, [3, -1, -1])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, group)]
    assert list(config.model_warmup[0].inputs["rainy"].dims) == [3, 96, 128]
    assert config.parameters["sapnet.precision"].string_value == "fp32"
    assert config.parameters["sapnet.stages"].string_value == "2"
    accelerators = config.optimization.execution_accelerators
    if kind == "gpu-trt-fp16":
        (trt,) = accelerators.gpu_execution_accelerator
        assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    elif kind == "cpu-openvino":
        assert [a.name for a in accelerators.cpu_execution_accelerator] == ["openvino"]
    else:
        assert not accelerators.gpu_execution_accelerator and not accelerators.cpu_execution_accelerator
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")]  # nothing half-written


def test_existing_entry_needs_force_and_is_replaced_whole(tiny_models, tmp_path):
    repo = tmp_path / "repo"
    assert invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", repo)[0] == 0
    (repo / "sapnet" / "1" / "stale.txt").write_text("old")
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", repo, "--max-batch", "2")
    assert code == 2 and "--force" in output
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "-o", repo, "--max-batch", "2",
                              "--force")
    assert code == 0, output
    assert not (repo / "sapnet" / "1" / "stale.txt").exists()
    assert "max_batch_size: 2" in (repo / "sapnet" / "config.pbtxt").read_text()


def test_tensorrt_rtx_engine_refused_with_the_reason(tiny_engines, tmp_path):
    code, output = invoke_cli("triton-repo", "--engine", tiny_engines["fp32"], "--kind", "gpu",
                              "-o", tmp_path / "repo")
    assert code == 2 and "TensorRT-RTX runtime" in output and "tensorrt_plan" in output, output
    assert not (tmp_path / "repo" / "sapnet").exists()


@pytest.fixture
def full_trt_engine(tiny_engines, tmp_path):
    """The tiny fp32 engine with its sidecar relabelled as built by full TensorRT 10.7.0.23: full
    TensorRT does not install from PyPI, so no real one can be built here; ``triton-repo`` reads only
    the sidecar and copies the plan."""
    import json
    import shutil

    engine = shutil.copyfile(tiny_engines["fp32"], tmp_path / "trt.engine")
    side = json.loads(Path(f"{tiny_engines['fp32']}.json").read_text())
    side["builder"].update(kind="tensorrt", name="TensorRT", version="10.7.0.23")
    Path(f"{engine}.json").write_text(json.dumps(side))
    return engine


@pytest.mark.parametrize("container, expected", [
    ("10.8.0", "built by TensorRT 10.7.0.23; the container's TensorRT is 10.8.0"),
    ("10.7.1.2", "built by TensorRT 10.7.0.23"),
    ("10.7", "at least major.minor.patch"), ("ten", "at least major.minor.patch"),
])
def test_container_tensorrt_must_be_the_plans(full_trt_engine, tmp_path, container, expected):
    code, output = invoke_cli("triton-repo", "--engine", full_trt_engine, "--kind", "gpu",
                              "--container-tensorrt", container, "-o", tmp_path / "repo")
    assert code == 2 and expected in output, output
    assert not (tmp_path / "repo" / "sapnet").exists()


def test_tensorrt_plan_entry_for_the_matching_container(full_trt_engine, tiny_models, tmp_path):
    # the tiny engines' profile takes one frame: --max-batch 1
    code, output = invoke_cli("triton-repo", "--engine", full_trt_engine, "--kind", "gpu", "--max-batch", "1",
                              "--container-tensorrt", "10.7.0", "-o", tmp_path / "repo")
    assert code == 0 and "warning" not in output, output
    config = text_format.Parse((tmp_path / "repo" / "sapnet" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert config.platform == "tensorrt_plan" and dict(config.cc_model_filenames) == {"8.9": "model_sm89.plan"}
    assert config.parameters["sapnet.tensorrt_version"].string_value == "10.7.0.23"
    assert (tmp_path / "repo" / "sapnet" / "1" / "model_sm89.plan").read_bytes() == full_trt_engine.read_bytes()
    code, output = invoke_cli("triton-repo", "--engine", full_trt_engine, "--kind", "gpu", "--max-batch", "1",
                              "-o", tmp_path / "r2")
    assert code == 0 and "--container-tensorrt" in output, output  # unchecked: said so
    code, output = invoke_cli("triton-repo", "--onnx", tiny_models["fp32"], "--container-tensorrt", "10.7.0",
                              "-o", tmp_path / "r3")
    assert code == 2 and "give --engine" in output and not (tmp_path / "r3").exists(), output


def test_check_config_refuses_a_config_that_does_not_match():
    from sapnet_export.errors import InputError
    from sapnet_export.serve.repository import RepoOptions, build_config, check_config

    types = {"rainy": "float32", "derained": "float32"}
    text = text_format.MessageToString(build_config(RepoOptions(), "onnxruntime_onnx", types, {}))
    check_config(text, types)
    with pytest.raises(InputError, match="does not match"):
        check_config(text, {"rainy": "float16", "derained": "float32"})
    with pytest.raises(InputError, match="does not parse"):
        check_config(text.replace("max_batch_size", "max_batch"), types)
