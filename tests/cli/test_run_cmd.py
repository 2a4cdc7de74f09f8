from conftest import invoke_cli as invoke
from sapnet_export.stream import open_source
from test_stream import _frames, write_video


def test_run_derains_a_video_into_a_video_with_a_summary(tmp_path, tiny_checkpoint):
    source = write_video(tmp_path / "in.mp4", _frames(4, 20, 24))
    code, output = invoke("run", source, "-o", tmp_path / "out.mp4", "--weights", tiny_checkpoint)
    assert code == 0, output
    for line in ("frames written", "failed frames", "dropped frames", "latency p50 / p99",
                 "fps reached", "torch / fp32 / cpu"):
        assert line in output
    assert len(list(open_source(tmp_path / "out.mp4"))) == 4


def test_run_with_onnxruntime_tiles_and_measure_only(tmp_path, tiny_onnx):
    source = write_video(tmp_path / "in.mp4", _frames(2, 40, 56))
    code, output = invoke("run", source, "--backend", "onnxruntime", "--model", tiny_onnx,
                          "--tile", "24x24", "--overlap", "8")
    assert code == 0, output
    assert "onnxruntime / fp32 / cpu" in output and "nothing (measure only)" in output
    assert "tiles 24x24 overlap 8" in output


def test_run_errors_exit_2(tmp_path, tiny_checkpoint):
    code, output = invoke("run", tmp_path / "missing.mp4", "--weights", tiny_checkpoint)
    assert code == 2 and "missing.mp4: no such file" in output
    source = write_video(tmp_path / "in.mp4", _frames(1, 16, 16))
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    code, output = invoke("run", source, "-o", tmp_path / "out.mp4", "--weights", tiny_checkpoint)
    assert code == 2 and "--force" in output and (tmp_path / "out.mp4").read_bytes() == b"keep me"
    code, output = invoke("run", source, "--tile", "big", "--weights", tiny_checkpoint)
    assert code == 2 and "--tile 'big'" in output
