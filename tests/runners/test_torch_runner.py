import numpy as np
import pytest
import torch

from sapnet_export.errors import InputError
from sapnet_export.runners import create_runner
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights


def test_runs_the_model_and_describes_itself(tiny_checkpoint):
    runner = create_runner("torch", weights=str(tiny_checkpoint), stages=1)
    x = np.random.default_rng(0).random((2, 3, 8, 9), dtype=np.float32)
    with torch.inference_mode():
        expected = runner.model(torch.from_numpy(x), stages=1).numpy()
    np.testing.assert_array_equal(runner.run(x), expected)
    info = runner.info
    assert (info.backend, info.precision, info.device, info.stages) == ("torch", "fp32", "cpu", 1)
    assert info.versions["torch"] == torch.__version__


def test_stages_beyond_the_model_are_refused(tiny_checkpoint):
    with pytest.raises(InputError, match="stages must be in 1..2"):
        TorchRunner(*load_weights(tiny_checkpoint), stages=3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_not_replaced(tiny_checkpoint):
    with pytest.raises(InputError, match="sees no CUDA device"):
        TorchRunner(*load_weights(tiny_checkpoint), device="cuda")
