"""Quantization-aware fine-tuning (training/qat.py): the fake quantization is the int8 export's, the
fine-tuning lowers the distillation loss, and a QAT checkpoint exports to a TensorRT-ready QDQ graph
with its learned ranges (end to end through both CLIs, on the tiny model)."""

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from conftest import invoke_cli, invoke_train_cli, write_rgb_folder
from sapnet_export.export.int8.calibration import load_calibration
from sapnet_export.export.int8.qat_ranges import QAT_METHOD, graph_ranges, read_qat_ranges
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from sapnet_export.export.onnx_export import to_onnx_proto
from sapnet_export.model.checkpoints import load_weights
from training.fake_quant import FakeQuantizedSAPNet
from training.qat import QatConfig, _crops, qat_finetune


train_cli = invoke_train_cli


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _l1_to_teacher(student, teacher, batch) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.l1_loss(student(batch, stages=2), teacher(batch, stages=2)))


def test_discover_shares_one_quantizer_per_tensor(tiny_model):
    quant = FakeQuantizedSAPNet(copy.deepcopy(tiny_model), stages=2)
    quant.discover(torch.rand(1, 3, 16, 16))
    quant.observe_ranges(torch.rand(2, 3, 16, 16))
    ranges = quant.ranges()
    inputs = [r for r in ranges.ranges if not r.output]
    gates = [r for r in inputs if "conv_i.0" in r.convs]
    # the four LSTM gates read one concatenation, a CRA layer's two first Convs one pooled vector
    assert [set(r.convs) for r in gates] == [{"conv_i.0", "conv_f.0", "conv_g.0", "conv_o.0"}] * 2
    assert {"res_conv3.1.conv_du.0", "res_conv3.1.conv_1_1"} in [set(r.convs) for r in inputs]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in tiny_model.modules())
    # one range per Conv input and stage (shared where Convs read one tensor), none on Conv outputs
    assert not any(r.output for r in ranges.ranges)
    assert sum(len(r.convs) for r in ranges.ranges) == 2 * convs
    assert all(r.absmax > 0 for r in ranges.ranges)


def test_fine_tuning_lowers_the_distillation_loss(tiny_model):
    frames = np.random.default_rng(1).random((3, 3, 32, 32), dtype=np.float32)
    config = QatConfig(steps=40, batch_size=4, patch=16, lr=1e-5, stages=2, seed=0)
    before = copy.deepcopy(tiny_model)
    result = qat_finetune(tiny_model, frames, config, torch.device("cpu"))
    assert len(result.losses) == 40 and all(np.isfinite(result.losses))
    batch = _crops(torch.from_numpy(frames), 16, 8, np.random.default_rng(5))
    scores = []
    for weights in (tiny_model, result.model):
        student = copy.deepcopy(weights)
        quant = FakeQuantizedSAPNet(student, 2)
        quant.discover(batch[:1])
        quant.set_ranges(result.ranges)
        scores.append(_l1_to_teacher(student, tiny_model, batch))
    assert scores[1] < 0.98 * scores[0], scores  # a small but real gain at a fine-tuning rate
    # the teacher was not touched; the result has no fake quantization left
    assert not any("parametrizations" in k for k in result.model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.state_dict().values(),
                                                  before.state_dict().values()))


def test_qat_checkpoint_exports_with_its_learned_ranges(tiny_checkpoint, tiny_calibration, tmp_path):
    qat = tmp_path / "qat.pth"
    code, output = train_cli("qat", "--weights", tiny_checkpoint, "--calib", tiny_calibration, "-o", qat,
                             "--steps", 3, "--batch-size", 2, "--patch", 16, "--device", "cpu")
    assert code == 0, output
    model, info = load_weights(qat)
    ranges = read_qat_ranges(info.metadata, str(qat))
    assert ranges is not None and ranges.stages == 2
    assert info.metadata["training"]["teacher"]["sha256"] == load_weights(tiny_checkpoint)[1].sha256

    images = write_rgb_folder(tmp_path / "held", 2, 24, 32, prefix="h")
    out = tmp_path / "q.onnx"
    code, output = invoke_cli("onnx", "--weights", qat, "-o", out, "--precision", "int8", "--calib",
                              tiny_calibration, "--images", images)
    assert code == 0, output
    assert "learned by quantization-aware training" in output and f"--weights {tiny_checkpoint}" in output
    report = json.loads((tmp_path / "q.onnx.json").read_text())
    assert report["metadata"]["calib_method"] == QAT_METHOD
    assert report["calibration"]["ranges"] == "qat"
    assert report["int8"]["qat"]["ranges"] == ranges.as_dict()["ranges"]

    graph = onnx.load(out)
    assert tensorrt_qdq_violations(graph) == []
    # every activation scale is the learned range / 127, exactly as ONNX Runtime writes it
    learned = graph_ranges(to_onnx_proto(model, 2, 17, None), ranges)
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    quantized = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]
    assert {n.input[0] for n in quantized} == set(learned)
    for node in quantized:
        np.testing.assert_allclose(inits[node.input[1]], np.float32(learned[node.input[0]][1] / 127),
                                   rtol=1e-6)
    # and ONNX Runtime's int8 graph computes what the fake-quantized network computes
    frame = load_calibration(tiny_calibration).frames[:1]
    student = copy.deepcopy(model)
    quant = FakeQuantizedSAPNet(student, 2)
    quant.discover(torch.from_numpy(frame))
    quant.set_ranges(ranges)
    with torch.no_grad():
        emulated = student(torch.from_numpy(frame), stages=2).numpy()
        fp32 = model(torch.from_numpy(frame), stages=2).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    int8 = session.run(None, {"rainy": frame})[0]
    assert _psnr(int8, emulated) > 50
    assert _psnr(int8, emulated) >= _psnr(int8, fp32) - 3


@pytest.mark.parametrize("record, needle", [
    ({"format": "other"}, "is not a sapnet-export/qat-ranges-v1 record"),
    ({"format": "sapnet-export/qat-ranges-v1", "profile": "cpu", "stages": 1, "ranges": []}, "'cpu'"),
    ({"format": "sapnet-export/qat-ranges-v1", "profile": "tensorrt", "stages": 1,
      "ranges": [{"convs": ["conv0.0"], "stage": 0, "output": False, "absmax": -1.0}]}, "not finite"),
    ({"format": "sapnet-export/qat-ranges-v1", "profile": "tensorrt", "stages": 1,
      "ranges": [{"convs": ["conv0.0"]}]}, "malformed"),
])
def test_malformed_records_are_refused(record, needle):
    from sapnet_export.errors import InputError

    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        read_qat_ranges({"qat": record}, "ck.pth")
    assert read_qat_ranges({}, "ck.pth") is None


def test_ranges_can_come_from_other_frames(tiny_model):
    crops = np.full((2, 3, 24, 24), 0.1, dtype=np.float32)
    bright = np.ones((1, 3, 24, 24), dtype=np.float32)
    config = QatConfig(steps=1, batch_size=1, patch=16, lr=1e-6, stages=2)
    own = qat_finetune(tiny_model, crops, config, torch.device("cpu"))
    other = qat_finetune(tiny_model, crops, config, torch.device("cpu"), range_frames=bright)
    first = {(r.convs, r.stage, r.output): r.absmax for r in own.ranges.ranges}
    # the graph input's range is the frames' own maximum: 0.1 for the crops, 1.0 for the bright frame
    key = (("conv0.0",), 0, False)
    assert first[key] == pytest.approx(0.1, rel=1e-6)
    assert {(r.convs, r.stage, r.output): r.absmax for r in other.ranges.ranges}[key] == pytest.approx(1.0)


def test_qat_checkpoint_builds_a_tensorrt_rtx_engine(tiny_checkpoint, tiny_calibration, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    model, _ = load_weights(tiny_checkpoint)
    result = qat_finetune(model, load_calibration(tiny_calibration).frames,
                          QatConfig(steps=1, batch_size=1, patch=16), torch.device("cpu"))
    from sapnet_export.model.checkpoints import save_checkpoint

    qat = save_checkpoint(result.model, tmp_path / "qat.pth", qat=result.ranges.as_dict())
    code, output = invoke_cli("trt", "--weights", qat, "--int8", "--calib", tiny_calibration, "--target",
                              "sm89", "--shapes", "16x16:24x32:64x64", "-o", tmp_path / "q.engine")
    assert code == 0, output
    assert "learned by quantization-aware training" in output
    sidecar = json.loads((tmp_path / "q.engine.json").read_text())
    assert sidecar["onnx_metadata"]["calib_method"] == QAT_METHOD
    assert sidecar["layers"]["precisions"]["CONVOLUTION int8"] == 92  # every Conv of the 2 stages
