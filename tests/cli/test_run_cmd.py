from conftest import invoke_cli as invoke, write_rgb
from sapnet_export.data.stream import open_source
from conftest import block_frames as _frames, write_frames_video as write_video


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
    assert "onnxruntime runs each tile of" in output  # what tiling costs there, said, with the fix
    assert "--shared-pooling" in output


def test_run_with_a_shared_pooling_export_tiles_as_one_batch(tmp_path, tiny_checkpoint):
    code, output = invoke("onnx", "--weights", tiny_checkpoint, "--shared-pooling", "-o", tmp_path / "s.onnx")
    assert code == 0, output
    assert "shared pooling (input pool_weights)" in output and "(shared pooling)" in output
    source = write_video(tmp_path / "in.mp4", _frames(2, 40, 56))
    code, output = invoke("run", source, "-o", tmp_path / "out.mp4", "--backend", "onnxruntime",
                          "--model", tmp_path / "s.onnx", "--tile", "24x24", "--overlap", "8")
    assert code == 0, output
    assert "tiles run as one batch whose channel attention pools over the whole frame" in output
    assert "runs each tile" not in output and len(list(open_source(tmp_path / "out.mp4"))) == 2


def test_run_errors_exit_2(tmp_path, tiny_checkpoint):
    code, output = invoke("run", tmp_path / "missing.mp4", "--weights", tiny_checkpoint)
    assert code == 2 and "missing.mp4: no such file" in output
    source = write_video(tmp_path / "in.mp4", _frames(1, 16, 16))
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    code, output = invoke("run", source, "-o", tmp_path / "out.mp4", "--weights", tiny_checkpoint)
    assert code == 2 and "--force" in output and (tmp_path / "out.mp4").read_bytes() == b"keep me"
    code, output = invoke("run", source, "--tile", "big", "--weights", tiny_checkpoint)
    assert code == 2 and "--tile 'big'" in output


def test_run_target_fps_chooses_a_measured_configuration(tmp_path, tiny_models, tiny_configs):
    source = tmp_path / "frames"
    source.mkdir()
    for n in range(2):
        write_rgb(source / f"{n}.png", 24, 32, seed=n)
    code, output = invoke("run", source, "--target-fps", "0.001", "--configs", tiny_configs,
                          "--weights", tiny_models["checkpoint"])
    assert code == 0, output
    assert "configurations measured on this machine" in output and "chose " in output
    assert "0.001" in output and "frames written" in output
    code, output = invoke("run", source, "--target-fps", "1e9", "--configs", tiny_configs,
                          "--weights", tiny_models["checkpoint"], "--backend", "onnxruntime")
    assert code == 0, output
    assert "no measured configuration reaches 1e+09 fps" in output
    assert "not considered: torch, 1 stage: not --backend onnxruntime" in output
    assert "onnxruntime / fp32 / cpu" in output


def test_run_target_fps_usage_errors(tmp_path, tiny_models, tiny_configs):
    source = tmp_path / "frames"
    source.mkdir()
    write_rgb(source / "0.png", 24, 32)
    code, output = invoke("run", source, "--target-fps", "5", "--weights", tiny_models["checkpoint"])
    assert code == 2 and "--target-fps needs --configs" in output
    code, output = invoke("run", source, "--target-fps", "5", "--configs", tiny_configs, "--stages", "1")
    assert code == 2 and "drop --model/--stages" in output
    code, output = invoke("run", source, "--configs", tiny_configs)
    assert code == 2 and "only with --target-fps" in output
    code, output = invoke("run", source, "--target-fps", "5", "--configs", tiny_configs, "--backend", "torch")
    assert code == 2 and "torch, 1 stage: measured with weights sha256" in output \
        and "no usable measured configuration" in output


def test_target_fps_counts_the_pixels_of_the_tiles():
    from sapnet_export.model.tiling import plan_tiles  # was cli._budget._pixels; the plan is made once

    def _pixels(size, tile, overlap):
        return plan_tiles(*size, tile, None, overlap).pixels

    assert _pixels((100, 100), None, 64) == 10000
    assert _pixels((321, 481), (160, 160), 64) == 15 * 160 * 160
    assert _pixels((321, 481), (400, 400), 64) == 321 * 2 * 400  # one row of two tiles, each 321 high
