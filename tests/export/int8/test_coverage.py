"""Coverage of calibration ranges, with the real (2-stage) network and real ONNX Runtime calibration."""

import numpy as np
import onnx
import pytest

from conftest import write_rgb
from sapnet_export.export.int8.coverage import (Coverage, compare_ranges, node_stages, observed_ranges,
                                                read_calibration_ranges)
from sapnet_export.export.int8.quantize import node_groups
from sapnet_export.export.int8.sensitivity import Int8Session
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.measure.evaluation import prepare_held_out
from sapnet_export.model.checkpoints import load_weights
from sapnet_export.runners.torch_runner import TorchRunner


@pytest.fixture
def dim_session(tiny_checkpoint, tmp_path):
    """Calibrated (minmax) on dark frames only, values in [0, 0.3]; the held-out image is bright noise."""
    model, info = load_weights(tiny_checkpoint)
    write_rgb(tmp_path / "h.png", 16, 24, seed=5)
    held_out = prepare_held_out(TorchRunner(model, info), [(tmp_path / "h.png", tmp_path / "h.png")])
    dark = 0.3 * np.random.default_rng(0).random((3, 3, 16, 24), dtype=np.float32)
    session = Int8Session(to_onnx_proto(model, 2, 17, None), dark, held_out, profile="tensorrt",
                          calib_method="minmax", workdir=tmp_path / "work")
    yield session, dark
    session.close()


def test_calibration_frames_are_covered_and_brighter_frames_are_not(dim_session):
    session, dark = dim_session
    own = session.coverage(frames=list(dark), source="the calibration frames")
    assert isinstance(own, Coverage) and own.tensors
    assert own.exceeding == [] and own.warning() is None
    assert max(t.excess for t in own.tensors) < 1e-4  # minmax ranges are these frames' own
    held = session.coverage()
    assert held.source == "1 held-out images" and held.frames == 1
    assert held.exceeding and held.tensors[0].excess > 0.25
    assert held.tensors == sorted(held.tensors, key=lambda t: -t.excess)
    assert "exceed their calibration range" in held.warning() and "--synthetic-rain" in held.warning()
    worst = held.tensors[0]
    assert worst.high > worst.calib_high or worst.low < worst.calib_low
    assert set(held.by_stage()) <= {1, 2} and held.as_dict()["exceeding"] == len(held.exceeding)


def test_ranges_match_a_direct_computation(dim_session, tmp_path):
    session, dark = dim_session
    calibrated = session.calibrated_ranges()
    assert calibrated == read_calibration_ranges(session.cache_path)
    observed = observed_ranges(session.fp32_path, list(dark), tensors=list(calibrated), op_types=("Conv",))
    assert set(observed) == set(calibrated)
    # minmax calibration on the same frames gives the same ranges as measuring them again
    for name, (low, high) in observed.items():
        assert low == pytest.approx(calibrated[name][0], rel=1e-5, abs=1e-6)
        assert high == pytest.approx(calibrated[name][1], rel=1e-5, abs=1e-6)


def test_symmetric_ranges_and_margin(dim_session):
    session, _ = dim_session
    name = next(iter(session.calibrated_ranges()))
    calibrated = {name: (-1.0, 2.0)}
    inside_symmetric = {name: (-1.9, 1.0)}  # below -1, but inside [-2, 2]
    asym = compare_ranges(session.fp32, calibrated, inside_symmetric, frames=1, source="x", symmetric=False)
    sym = compare_ranges(session.fp32, calibrated, inside_symmetric, frames=1, source="x", symmetric=True)
    assert asym.tensors[0].excess == pytest.approx(0.9 / 3.0) and sym.tensors[0].excess == 0.0
    loose = compare_ranges(session.fp32, calibrated, inside_symmetric, frames=1, source="x",
                           symmetric=False, margin=0.5)
    assert asym.exceeding and not loose.exceeding
    with pytest.raises(ValueError, match="negative"):
        compare_ranges(session.fp32, calibrated, inside_symmetric, frames=1, source="x", symmetric=True,
                       margin=-0.1)


def test_every_node_has_a_stage_in_order(dim_session):
    session, _ = dim_session
    stages = node_stages(session.fp32)
    groups = node_groups(session.fp32)
    assert set(stages.values()) == {1, 2}
    order = [stages[n.name] for n in session.fp32.graph.node]
    assert order == sorted(order)  # stage after stage
    firsts = [n.name for n in session.fp32.graph.node if n.op_type == "Conv" and groups[n.name] == "conv0"]
    assert [stages[n] for n in firsts] == [1, 2]


def test_only_the_tensors_the_graph_quantizes_count(dim_session):
    """A group kept in float cannot clip: with the chosen graph, coverage skips its tensors."""
    session, _ = dim_session
    full = session.coverage()
    path, quantized, _ = session.quantize([g for g in session.quantizable_groups if g != "res_conv1"])
    inputs = {n.input[0] for n in quantized.graph.node if n.op_type == "QuantizeLinear"}
    partial = session.coverage(quantized=quantized)
    assert partial.tensors and {t.name for t in partial.tensors} <= inputs
    assert len(partial.tensors) < len(full.tensors)
