import numpy as np
import pytest

from conftest import write_rgb
from sapnet_export.measure.evaluation import prepare_held_out
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.export.int8.sensitivity import Int8Session, describe_mix, group_sensitivity, meet_budget
from sapnet_export.export.int8.quantize import GROUPS, select_nodes
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def session(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    write_rgb(tmp_path / "h.png", 16, 24, seed=5)
    held_out = prepare_held_out(TorchRunner(model, info), [(tmp_path / "h.png", tmp_path / "h.png")])
    frames = np.random.default_rng(0).random((3, 3, 16, 24), dtype=np.float32)
    fp32 = to_onnx_proto(model, 2, 17, None)
    s = Int8Session(fp32, frames, held_out, profile="tensorrt", workdir=tmp_path / "work")
    yield s
    s.close()


def test_session_groups_and_mac_shares(session):
    assert session.quantizable_groups == tuple(g for g in GROUPS if g != "lstm_cell")
    trial = session.trial(["conv0"])
    assert trial.int8_groups == ("conv0",) and "conv0" not in trial.float_groups
    assert 0 < trial.int8_mac_share < 0.05  # conv0 is about 1 % of the MACs
    assert session.cache_path.is_file()  # calibrated once, reused by the next trials
    full = session.trial(session.quantizable_groups)
    assert full.int8_mac_share == pytest.approx(1.0) and full.float_groups == ()
    assert np.isfinite(full.min_psnr_db) and full.min_psnr_db <= full.mean_psnr_db


def test_sensitivity_ranks_lowest_psnr_first(session):
    ranking = group_sensitivity(session)
    assert sorted(t.int8_groups[0] for t in ranking) == sorted(session.quantizable_groups)
    assert [t.min_psnr_db for t in ranking] == sorted(t.min_psnr_db for t in ranking)


def test_budget_keeps_harmful_groups_in_float_until_met(session):
    easy = meet_budget(session, 1.0)
    assert easy.met and easy.ranking == [] and easy.chosen.int8_mac_share == pytest.approx(1.0)
    full_psnr = easy.chosen.min_psnr_db
    target = full_psnr + 3.0  # more than full INT8 gives: some groups must stay float
    result = meet_budget(session, target)
    assert result.ranking and len(result.tried) >= 2
    assert result.tried[1].float_groups == (result.ranking[0].int8_groups[0],)
    if result.met:
        assert result.chosen.min_psnr_db >= target and result.chosen.int8_mac_share < 1.0
    impossible = meet_budget(session, 1000.0)
    assert not impossible.met
    assert describe_mix(impossible.chosen)["int8_mac_share"] < 1.0


def test_keep_fp32_nodes_are_float_in_every_trial(session):
    session.keep_fp32 = select_nodes(session.fp32, ["conv"])
    trial = session.trial(session.quantizable_groups)
    assert trial.int8_mac_share < 1.0


@pytest.mark.parametrize("profile, floats", [("cpu", True), ("tensorrt", False)])
def test_cpu_profile_keeps_the_attention_paths_float(session, tmp_path, profile, floats):
    from sapnet_export.export.int8.groups import attention_nodes

    attention = set(attention_nodes(session.fp32))
    other = Int8Session(session.fp32, session.frames, session.held_out, profile=profile,
                        calib_method="minmax", workdir=tmp_path / profile)
    try:
        _, graph, share = other.quantize(other.quantizable_groups)
    finally:
        other.close()
    producer = {out: n for n in graph.graph.node for out in n.output}
    # float: past the pooling (which reads the feature map), no attention node reads a dequantized
    # tensor: the pooled vector goes through conv_du, conv_1_1, Add and Sigmoid in float
    reads_int8 = [n.name for n in graph.graph.node if n.name in attention and n.op_type != "GlobalAveragePool"
                  and any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in n.input)]
    assert attention and bool(reads_int8) is not floats, reads_int8
    assert (share < 1.0) is floats and share > 0.999  # 2e-4 of the MACs at 16x24
