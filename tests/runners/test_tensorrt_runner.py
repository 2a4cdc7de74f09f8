import json
import shutil

import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.runners import create_runner
from sapnet_export.engine.sidecar import sidecar_path
from sapnet_export.engine.trt_api import current_gpu

GPU = current_gpu()


def _copy(engine, tmp_path, **changes):
    """Copy an engine with its sidecar, applying ``changes`` to the sidecar's builder entry."""
    target = tmp_path / engine.name
    shutil.copyfile(engine, target)
    side = json.loads(sidecar_path(engine).read_text())
    side["builder"].update(changes)
    sidecar_path(target).write_text(json.dumps(side))
    return target


def test_sidecar_from_another_version_is_refused_before_loading(tiny_engines, tmp_path):
    engine = _copy(tiny_engines["fp16"], tmp_path, version="1.0.0.1")
    with pytest.raises(InputError, match=r"cannot load: built by TensorRT-RTX 1.0.0.1, this runtime is "
                       r"TensorRT-RTX [\d.]+\. Rebuild it on this machine: sapnet-export trt --onnx "):
        create_runner("tensorrt", model=str(engine))


def test_engine_from_the_other_flavour_is_refused(tiny_engines, tmp_path):
    engine = _copy(tiny_engines["fp16"], tmp_path, kind="tensorrt", name="TensorRT")
    with pytest.raises(InputError, match="built by TensorRT, not tensorrt-rtx"):
        create_runner("tensorrt-rtx", model=str(engine))


def test_engine_without_sidecar_is_refused(tiny_engines, tmp_path):
    shutil.copyfile(tiny_engines["fp32"], tmp_path / "bare.engine")
    with pytest.raises(InputError, match="no sidecar bare.engine.json"):
        create_runner("tensorrt", model=str(tmp_path / "bare.engine"))


def test_options_are_checked(tiny_engines):
    with pytest.raises(InputError, match="needs --model F.engine"):
        create_runner("tensorrt")
    with pytest.raises(InputError, match="--device cpu: TensorRT engines run on the GPU"):
        create_runner("tensorrt", model=str(tiny_engines["fp32"]), device="cpu")


@pytest.mark.skipif(GPU is not None, reason="this machine has a GPU")
def test_without_a_gpu_a_clear_error(tiny_engines):
    with pytest.raises(InputError, match=r"needs an NVIDIA GPU with CUDA, and none is visible here .*"
                       r"--backend onnxruntime --model .*fp32.onnx"):
        create_runner("tensorrt", model=str(tiny_engines["fp32"]))


@pytest.mark.skipif(GPU is None, reason="no CUDA GPU: running an engine needs one")
def test_engine_matches_onnxruntime_on_the_gpu(tiny_checkpoint, tmp_path):
    """On a GPU: build for it, run fp32 in and out of profile, compare with ONNX Runtime on the CPU."""
    from conftest import TINY_PROFILE, invoke_cli

    engine = tmp_path / "g.engine"
    code, output = invoke_cli("trt", "--weights", tiny_checkpoint, "--shapes", TINY_PROFILE, "-o", engine)
    assert code == 0, output
    runner = create_runner("tensorrt", model=str(engine))
    onnx = create_runner("onnxruntime", model=str(engine.with_suffix(".onnx")))
    batch = np.random.default_rng(0).random((1, 3, 24, 40), dtype=np.float32)
    np.testing.assert_allclose(runner.run(batch), onnx.run(batch), atol=2e-3)
    with pytest.raises(InputError, match="outside the engine's optimization profile"):
        runner.run(np.zeros((1, 3, 8, 8), np.float32))
