import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.runners.base import Runner, RunnerInfo


class Identity(Runner):
    info = RunnerInfo(backend="identity", precision="fp32", device="cpu", model="-", stages=1)

    def _run(self, batch):
        return batch.copy()


class Cropping(Identity):
    def _run(self, batch):
        return batch[:, :, 1:]


@pytest.mark.parametrize("bad", [np.zeros((1, 3, 4, 4), np.float64), np.zeros((3, 4, 4), np.float32),
                                 np.zeros((1, 4, 4, 4), np.float32), np.zeros((0, 3, 4, 4), np.float32),
                                 [[0.0]]])
def test_input_is_checked(bad):
    with pytest.raises(InputError, match=r"identity runner: expected float32 \[N, 3, H, W\]"):
        Identity().run(bad)


def test_output_shape_is_checked():
    with pytest.raises(RuntimeError, match="returned"):
        Cropping().run(np.zeros((1, 3, 4, 4), np.float32))


def test_non_contiguous_input_is_accepted():
    batch = np.zeros((1, 4, 4, 3), np.float32).transpose(0, 3, 1, 2)
    assert Identity()(batch).shape == (1, 3, 4, 4)
