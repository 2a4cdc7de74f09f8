import json

import numpy as np
import onnx
import pytest

from conftest import need_shared, write_rgb
from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.export.int8.groups import attention_nodes
from sapnet_export.export.onnx_export import MIN_OPSET, export_onnx, to_onnx_proto
from sapnet_export.model.onnx_meta import graph_precision, load_onnx, metadata
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def tiny_export(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "tiny.onnx", command="pytest export")
    return model, info, result


def test_graph_io_dynamic_axes_and_checker(tiny_export):
    _, _, result = tiny_export
    proto = load_onnx(result.path)
    onnx.checker.check_model(proto, full_check=True)
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [i.name for i in proto.graph.input] == ["rainy"]
    assert [o.name for o in proto.graph.output] == ["derained"]
    assert dims(proto.graph.input[0]) == ["N", 3, "H", "W"]
    assert dims(proto.graph.output[0]) == ["N", 3, "H", "W"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.opset_import[0].version == MIN_OPSET
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == 2 * 46  # 46 convs per stage


def test_metadata_records_provenance(tiny_export):
    _, info, result = tiny_export
    meta = metadata(load_onnx(result.path))
    assert meta["stages"] == "2" and meta["checkpoint_sha256"] == info.sha256
    assert meta["input_layout"] == "NCHW, RGB" and meta["precision"] == "fp32"
    assert meta["command"] == "pytest export"
    for key in ("torch_version", "onnx_version", "sapnet_export_version", "model_name", "input_range"):
        assert meta[key]
    assert graph_precision(load_onnx(result.path)) == "fp32"


def test_parity_rows_cover_two_probe_shapes_and_images(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    image = write_rgb(tmp_path / "x.png", 20, 28)
    result = export_onnx(model, info, tmp_path / "m.onnx", images=[image])
    assert [r.shape for r in result.probes] == [(1, 3, 64, 64), (2, 3, 37, 53)]
    assert [r.shape for r in result.held_out] == [(1, 3, 20, 28)]
    assert all(r.fidelity.psnr_db >= 80 and r.fidelity.max_abs < 1e-4
               for r in result.probes + result.held_out)
    report = json.loads(result.report_path.read_text())
    assert result.report_path == tmp_path / "m.onnx.json"
    assert report["held_out"]["summary"]["images"] == 1
    assert report["held_out"]["images"][0]["image"] == str(image)
    assert report["metadata"]["precision"] == "fp32" and len(report["probes"]) == 2


def test_one_file_runs_at_two_sizes_like_pytorch(tiny_export):
    model, _, result = tiny_export
    runner = OnnxRuntimeRunner(result.path)
    import torch

    for shape in [(1, 3, 17, 40), (3, 3, 48, 9)]:
        x = np.random.default_rng(1).random(shape, dtype=np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(runner.run(x), expected, atol=1e-5)


def test_static_export_fixes_the_shape(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "s.onnx", static_hw=(16, 24), stages=1)
    proto = load_onnx(result.path)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 16, 24]
    assert metadata(proto)["stages"] == "1"
    runner = OnnxRuntimeRunner(result.path)
    with pytest.raises(Exception):
        runner.run(np.zeros((1, 3, 16, 25), dtype=np.float32))


def test_static_export_refuses_an_image_of_another_size(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    image = write_rgb(tmp_path / "big.png", 20, 28)
    with pytest.raises(InputError, match="big.png: 20x28 image, but the export is static 16x24"):
        export_onnx(model, info, tmp_path / "s.onnx", static_hw=(16, 24), images=[image])
    assert not (tmp_path / "s.onnx").exists()


def test_failed_fidelity_leaves_no_file(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    with pytest.raises(CheckFailed, match="the file was not written"):
        export_onnx(model, info, tmp_path / "m.onnx", min_psnr_db=1000.0)
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.pth"]


def test_existing_output_needs_force(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep")
    with pytest.raises(InputError, match="already exists"):
        export_onnx(model, info, target)
    assert target.read_bytes() == b"keep"
    export_onnx(model, info, target, force=True)
    assert load_onnx(target).graph.input[0].name == "rainy"


def test_bad_opset_and_stages(tiny_model):
    with pytest.raises(InputError, match="--opset 13"):
        to_onnx_proto(tiny_model, 2, 13, None)


@pytest.mark.real
def test_published_checkpoint_export_on_a_real_image(official_checkpoint, tmp_path):
    image = need_shared("data/real-rain/real-3.png")
    model, info = load_weights(official_checkpoint)
    result = export_onnx(model, info, tmp_path / "sapnet.onnx", images=[image])
    assert sum(n.op_type == "Conv" for n in load_onnx(result.path).graph.node) == 276
    assert min(r.fidelity.psnr_db for r in result.probes + result.held_out) >= 80


def _int8_options(calibration_dir, **kwargs):
    from sapnet_export.export.int8.calibration import load_calibration
    from sapnet_export.export.onnx_export import Int8Options

    return Int8Options(calibration=load_calibration(calibration_dir), **kwargs)


@pytest.mark.parametrize("profile, keep, kept, floats, source, full", [
    ("tensorrt", None, "conv0,conv", "conv0,conv", "profile default", False),
    ("cpu", None, "conv0,conv,lstm_cell", "conv0,lstm_cell,conv", "profile default", False),
    ("tensorrt", (), "none", "none", "--keep-fp32", True)])
def test_int8_profile_default_float_groups(tiny_checkpoint, tiny_calibration, tmp_path, profile, keep, kept,
                                           floats, source, full):
    """The tensorrt and cpu profiles keep conv0 and the output conv float (cpu: and the LSTM cell)
    unless --keep-fp32 says otherwise (``none``: the empty tuple); the metadata says which groups and
    where that came from."""
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", require_held_out=False,
                         int8=_int8_options(tiny_calibration, profile=profile, keep_fp32=keep))
    meta = metadata(load_onnx(result.path))
    assert (meta["keep_fp32"], meta["keep_fp32_from"]) == (kept, source)
    assert meta["float_groups"] == floats
    assert ("conv0" in meta["int8_groups"].split(",")) == full
    share = float(meta["int8_mac_share"])
    assert share == pytest.approx(1.0) if full else 0.9 < share < 0.99  # conv0 + conv: 1.5 % of MACs
    graph = load_onnx(result.path).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    attention = set(attention_nodes(load_onnx(result.path)))  # float in the cpu profile, always
    float_convs = {n.name.split("/")[2] for n in graph.node
                   if n.op_type == "Conv" and n.input[1] not in dequantized and n.name not in attention}
    assert float_convs == (set() if full else {"conv0", "conv"}), float_convs


def test_int8_export_report_and_metadata(tiny_checkpoint, tiny_calibration, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    held = write_rgb(tmp_path / "held.png", 16, 24, seed=42)
    (tmp_path / "gt").mkdir()
    write_rgb(tmp_path / "gt" / "held.png", 16, 24, seed=43)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", images=[held],
                         gt_dir=tmp_path / "gt", min_psnr_db=5.0,
                         int8=_int8_options(tiny_calibration, keep_fp32=("conv",)))
    meta = metadata(load_onnx(result.path))
    assert meta["precision"] == "int8" and meta["qdq_profile"] == "tensorrt"
    assert meta["calibration_frames_sha256"] and meta["keep_fp32"] == "conv"
    assert 0.9 < float(meta["int8_mac_share"]) < 1.0  # the output conv (0.5 % of MACs) stayed float
    report = json.loads(result.report_path.read_text())
    summary = report["held_out"]["summary"]
    assert summary["images"] == 1 and summary["quality"] is not None and summary["reference_quality"] is not None
    assert report["int8"]["budget_met"] and report["calibration"]["count"] == 4
    assert report["calibration"]["stale_sources"] == []
    assert OnnxRuntimeRunner(result.path).info.precision == "int8"


def test_int8_needs_calibration_and_held_out_images(tiny_checkpoint, tiny_calibration, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    with pytest.raises(InputError, match="needs a calibration set"):
        export_onnx(model, info, tmp_path / "q.onnx", precision="int8", images=[tmp_path])
    with pytest.raises(InputError, match="needs held-out images"):
        export_onnx(model, info, tmp_path / "q.onnx", precision="int8",
                    int8=_int8_options(tiny_calibration), heavy_rain_check=False)
    with pytest.raises(InputError, match="--calib is for --precision int8"):
        export_onnx(model, info, tmp_path / "q.onnx", int8=_int8_options(tiny_calibration))
    source = tmp_path / "calib_src" / "c0.png"
    with pytest.raises(InputError, match="c0.png: this image is in the calibration set"):
        export_onnx(model, info, tmp_path / "q.onnx", precision="int8", images=[source],
                    int8=_int8_options(tiny_calibration))
    assert not (tmp_path / "q.onnx").exists()


def test_int8_below_the_threshold_writes_nothing(tiny_checkpoint, tiny_calibration, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    held = write_rgb(tmp_path / "held.png", 16, 24, seed=42)
    with pytest.raises(CheckFailed, match="the file was not written"):
        export_onnx(model, info, tmp_path / "q.onnx", precision="int8", images=[held],
                    min_psnr_db=1000.0, int8=_int8_options(tiny_calibration, profile="cpu"))
    assert list(tmp_path.glob("q.onnx*")) == []


@pytest.mark.real
def test_published_checkpoint_int8_on_real_images(official_checkpoint, tmp_path):
    """Calibrated on real rain (crops), measured on a held-out Rain100L image: the tensorrt profile keeps
    >= 35 dB fidelity, follows TensorRT's rules and parses in TensorRT-RTX."""
    from conftest import parse_in_tensorrt_rtx
    from sapnet_export.export.int8.calibration import build_calibration

    real_rain = need_shared("data/real-rain")
    rain100l = need_shared("data/rain100l")
    build_calibration([str(real_rain)], tmp_path / "calib", size=(96, 128), count=8, seed=0)
    model, info = load_weights(official_checkpoint)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", min_psnr_db=35.0,
                         images=[rain100l / "input" / "1.png"], gt_dir=rain100l / "target",
                         int8=_int8_options(tmp_path / "calib", method="percentile"))
    summary = result.report["held_out"]["summary"]
    assert summary["fidelity"]["psnr_min_db"] >= 35.0
    assert summary["quality"]["psnr_y"] - summary["reference_quality"]["psnr_y"] > -1.5
    ok, errors, _ = parse_in_tensorrt_rtx(result.path)
    assert ok, errors


@pytest.fixture
def tiny_shared(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    return model, info, export_onnx(model, info, tmp_path / "shared.onnx", shared_pooling=True)


def test_shared_pooling_export_adds_pool_weights_and_checks_a_tile_batch(tiny_shared):
    _, _, result = tiny_shared
    proto = load_onnx(result.path)
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [i.name for i in proto.graph.input] == ["rainy", "pool_weights"]
    assert dims(proto.graph.input[1]) == ["N", 1, "H", "W"]
    ops = [n.op_type for n in proto.graph.node]
    assert "GlobalAveragePool" not in ops and ops.count("ReduceSum") == 2 * 10  # 10 CRA layers a stage
    assert metadata(proto)["pooling"].startswith("shared")
    # whole-frame probes, then the tile batch checked against PyTorch's shared pooling
    assert [r.shape for r in result.probes] == [(1, 3, 64, 64), (2, 3, 37, 53), (4, 3, 48, 56)]
    assert "shared pooling" in result.probes[-1].name
    assert all(r.fidelity.psnr_db >= 80 for r in result.probes)


def test_shared_pooling_fp16_keeps_the_pooling_in_float32(tiny_checkpoint, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "s16.onnx", precision="fp16", shared_pooling=True)
    proto = load_onnx(result.path)
    kept = result.metadata["fp32_nodes"].split(",")
    assert len(kept) == 2 * 2 * 10 and all(name.endswith(("/Mul", "/ReduceSum")) for name in kept)
    float32 = {v.name for v in proto.graph.value_info
               if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    reduce_sums = [n for n in proto.graph.node if n.op_type == "ReduceSum"]
    assert reduce_sums and all(n.output[0] in float32 for n in reduce_sums)
    assert all(r.fidelity.psnr_db >= 60 for r in result.probes)  # the tile batch included


def test_shared_pooling_int8_leaves_the_pooling_unquantized(tiny_checkpoint, tiny_calibration, tmp_path):
    from sapnet_export.model.onnx_meta import pooling_nodes

    model, info = load_weights(tiny_checkpoint)
    held = write_rgb(tmp_path / "held.png", 16, 24, seed=42)
    result = export_onnx(model, info, tmp_path / "s8.onnx", precision="int8", images=[held],
                         shared_pooling=True, int8=_int8_options(tiny_calibration, profile="cpu"))
    proto = load_onnx(result.path)
    producer = {out: node.op_type for node in proto.graph.node for out in node.output}
    pooling = [n for n in proto.graph.node if n.name in set(pooling_nodes(proto))]
    assert len(pooling) == 2 * 2 * 10 and {n.op_type for n in pooling} == {"Mul", "ReduceSum"}
    # the weights (about 1 / (H x W)) reach the Mul unquantized and the weighted sum stays float
    assert all(n.input[1] == "pool_weights" for n in pooling if n.op_type == "Mul")
    assert all(producer[n.input[0]] == "Mul" for n in pooling if n.op_type == "ReduceSum")
    assert OnnxRuntimeRunner(result.path).shared_pooling


def test_shared_pooling_needs_a_dynamic_shape(tiny_model):
    with pytest.raises(InputError, match="drop --static"):
        to_onnx_proto(tiny_model, 2, 17, (32, 32), shared_pooling=True)


def test_int8_without_images_checks_the_built_in_heavy_rain(tiny_checkpoint, tiny_calibration, tmp_path):
    model, info = load_weights(tiny_checkpoint)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", stages=1, min_psnr_db=5,
                         int8=_int8_options(tiny_calibration))
    report = json.loads(result.report_path.read_text())
    assert report["held_out"]["source"] == "built-in heavy rain (coffee, camera)"
    assert report["fidelity_measured"] is True and "warning" not in report["held_out"]
    summary = report["held_out"]["summary"]
    assert summary["images"] == summary["images_with_ground_truth"] == 4  # with ground truth
    assert summary["quality"]["psnr_y"] > 0 and summary["reference_quality"]["psnr_y"] > 0
    assert [r["shape"] for r in report["held_out"]["images"]] == [[1, 3, 24, 32]] * 4  # calibration size
    assert report["int8"]["coverage"]["source"] == "4 held-out images"


def test_built_in_heavy_rain_warns_instead_of_refusing(tiny_checkpoint, tiny_calibration, tmp_path,
                                                       monkeypatch):
    from sapnet_export.export import precision

    model, info = load_weights(tiny_checkpoint)
    # a 200 dB gate no int8 graph reaches: the built-in frames warn and the file is kept ...
    monkeypatch.setitem(precision.DEFAULT_MIN_PSNR_DB, "int8", 200.0)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", stages=1,
                         int8=_int8_options(tiny_calibration))
    assert result.path.is_file()
    assert "4 of 4 built-in heavy-rain frames are below 200 dB" in result.report["held_out"]["warning"]
    # ... while the user's own frames are refused at the same gate, and so are the built-in ones
    # when --min-psnr asks for a budget
    held = write_rgb(tmp_path / "held.png", 16, 24, seed=9)
    with pytest.raises(CheckFailed, match="threshold 200.0 dB"):
        export_onnx(model, info, tmp_path / "r.onnx", precision="int8", stages=1, images=[held],
                    int8=_int8_options(tiny_calibration))
    with pytest.raises(CheckFailed, match="threshold 200.0 dB"):
        export_onnx(model, info, tmp_path / "r.onnx", precision="int8", stages=1, min_psnr_db=200.0,
                    int8=_int8_options(tiny_calibration))
    assert not (tmp_path / "r.onnx").exists()


def test_built_in_heavy_rain_frames_are_deterministic_and_rainy(tmp_path):
    from sapnet_export.data.images import read_image
    from sapnet_export.export.int8.heavy_rain_check import write_heavy_rain_check

    items, gt = write_heavy_rain_check(tmp_path / "a", (40, 56), count=3)
    again, _ = write_heavy_rain_check(tmp_path / "b", (40, 56), count=3)
    assert [r.name for _, r in items] == ["coffee-0.png", "camera-1.png", "coffee-2.png"]
    for (path, relative), (other, _) in zip(items, again):
        rainy, clean = read_image(path), read_image(gt / relative)
        assert rainy.shape == clean.shape == (3, 40, 56)
        assert (read_image(other) == rainy).all()
        assert float((rainy - clean).mean()) > 0.03  # heavy rain brightens the frame
