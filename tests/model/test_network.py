from pathlib import Path

import numpy as np
import pytest
import torch

from sapnet_export.model.network import SAPNet, count_parameters
from sapnet_export.model.checkpoints import load_weights

GOLDEN = Path(__file__).parents[1] / "fixtures" / "official_golden.npz"

# Parameter names of the official Modeling/network.py (without DataParallel's "module.").
OFFICIAL_BLOCK_KEYS = ["0.weight", "0.bias", "1.conv_du.0.weight", "1.conv_du.2.weight",
                       "1.conv_1_1.weight", "3.weight", "3.bias", "4.conv_du.0.weight",
                       "4.conv_du.2.weight", "4.conv_1_1.weight"]
OFFICIAL_KEYS = (["conv0.0.weight", "conv0.0.bias"]
                 + [f"res_conv{b}.{k}" for b in range(1, 6) for k in OFFICIAL_BLOCK_KEYS]
                 + [f"conv_{g}.0.{p}" for g in "ifgo" for p in ("weight", "bias")]
                 + ["conv.0.weight", "conv.0.bias"])


def test_state_dict_keys_are_the_official_names():
    assert list(SAPNet().state_dict()) == OFFICIAL_KEYS


def test_state_dict_keys_match_the_published_checkpoint(official_checkpoint):
    state = torch.load(official_checkpoint, map_location="cpu", weights_only=True)
    assert [k.removeprefix("module.") for k in state] == OFFICIAL_KEYS


def test_parameter_count_and_dilations():
    model = SAPNet()
    assert count_parameters(model) == 180_483
    dilations = [model.get_submodule(f"res_conv{b}")[i].dilation[0] for b in range(1, 6) for i in (0, 3)]
    assert dilations == [1, 1, 2, 2, 4, 4, 8, 8, 16, 16]
    assert [model.get_submodule(f"res_conv{b}")[0].padding[0] for b in range(1, 6)] == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 5, 7), (1, 3, 33, 20)])
def test_any_size_keeps_shape_and_dtype(tiny_model, shape):
    with torch.inference_mode():
        out = tiny_model(torch.rand(shape))
    assert out.shape == shape and out.dtype == torch.float32


def test_stages_early_exit_returns_that_stage(tiny_model):
    x = torch.rand(1, 3, 16, 12)
    with torch.inference_mode():
        every = tiny_model.forward_stages(x)
        first = tiny_model(x, stages=1)
    assert len(every) == 2
    torch.testing.assert_close(first, every[0], rtol=0, atol=0)
    assert not torch.equal(every[0], every[1])


@pytest.mark.parametrize("bad", [0, 3, -1])
def test_stages_out_of_range_is_refused(tiny_model, bad):
    with pytest.raises(ValueError, match="stages must be in 1..2"):
        tiny_model(torch.rand(1, 3, 4, 4), stages=bad)


def test_constructor_rejects_bad_configuration():
    with pytest.raises(ValueError, match="stages"):
        SAPNet(stages=0)
    with pytest.raises(ValueError, match="dilations"):
        SAPNet(dilations=(1, 2, 4))


def test_batch_items_are_independent(tiny_model):
    x = torch.rand(3, 3, 10, 9)
    with torch.inference_mode():
        together = tiny_model(x)
        alone = torch.cat([tiny_model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_matches_official_implementation_outputs(official_checkpoint):
    """Every stage equals the official code's output (tests/fixtures/make_official_golden.py) within 1e-5."""
    golden = np.load(GOLDEN)
    model, _ = load_weights(official_checkpoint)
    for index in (0, 1):
        with torch.inference_mode():
            stages = model.forward_stages(torch.from_numpy(golden[f"input{index}"]))
        ours = np.stack([s.numpy() for s in stages])
        assert ours.shape == golden[f"stages{index}"].shape
        assert np.max(np.abs(ours - golden[f"stages{index}"])) <= 1e-5


def test_pool_weights_of_one_whole_frame_are_the_global_average():
    """Shared pooling over a single 'tile' that is the whole frame is the official global average."""
    torch.manual_seed(0)
    net = SAPNet(stages=2).eval()
    frame = torch.rand(1, 3, 20, 28)
    weights = torch.full((1, 1, 20, 28), 1.0 / (20 * 28))
    with torch.inference_mode():
        torch.testing.assert_close(net(frame, pool_weights=weights), net(frame), rtol=1e-5, atol=1e-5)
