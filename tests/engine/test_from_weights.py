"""``export_and_build``: weights -> OUTPUT.onnx (checked) -> engine, as ``trt --weights`` does."""

import json

import pytest

from conftest import TINY_PROFILE
from sapnet_export.engine.build import BuildOptions
from sapnet_export.engine.from_weights import export_and_build
from sapnet_export.engine.sidecar import parse_profile
from sapnet_export.errors import InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.export.onnx_export import ExportOptions
from sapnet_export.model.checkpoints import load_weights

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")


def test_export_then_build_records_the_checkpoint(tiny_checkpoint, tmp_path):
    model, info = load_weights(str(tiny_checkpoint))
    build = BuildOptions(builder="tensorrt-rtx", targets=("sm89",), profile=parse_profile(TINY_PROFILE))
    seen = []
    exported, engine = export_and_build(model, info, tmp_path / "e.engine", ExportOptions(precision="fp16"),
                                        build, on_exported=seen.append)
    assert seen == [exported] and exported.path == tmp_path / "e.onnx"
    side = json.loads(engine.sidecar_path.read_text())
    assert side["precision"] == "fp16" and side["sha256"]["checkpoint"] == info.sha256
    assert side["sha256"]["onnx"] == sha256_file(exported.path)  # built from the file just exported
    # an ONNX already there is refused before anything is exported (build from it with --onnx)
    (tmp_path / "again.onnx").write_bytes(b"kept")
    with pytest.raises(InputError, match="again.onnx: the ONNX this command exports already exists"):
        export_and_build(model, info, tmp_path / "again.engine", ExportOptions(), build)
    assert (tmp_path / "again.onnx").read_bytes() == b"kept" and not (tmp_path / "again.engine").exists()
