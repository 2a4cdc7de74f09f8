import json

from conftest import invoke_cli as invoke, write_rgb


def test_bench_rows_json_log_and_report(tiny_models, tmp_path):
    code, output = invoke("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                          "--gt", tiny_models["gt"], "--calib", tiny_models["calibration"],
                          "--formats", "torch,onnx,onnx-fp16,onnx-int8-tensorrt,tensorrt",
                          "--workdir", tmp_path / "work", "--log", tmp_path / "bench.log",
                          "--json", tmp_path / "b.json", "--report", tmp_path / "report", "--runs", "1")
    assert code == 0, output
    payload = json.loads((tmp_path / "b.json").read_text())
    rows = {t["name"]: t for t in payload["targets"]}
    assert list(rows) == ["torch", "onnx", "onnx-fp16", "onnx-int8-tensorrt", "tensorrt"]
    assert rows["torch"]["speedup_vs_reference"] == 1.0
    assert rows["onnx"]["status"] == rows["onnx-fp16"]["status"] == "ok"
    assert rows["onnx-int8-tensorrt"]["precision"] == "int8" and rows["onnx-int8-tensorrt"]["size_mb"] > 0
    if payload["machine"]["gpu"] is None:
        assert rows["tensorrt"]["status"] == "failed" and "GPU" in rows["tensorrt"]["reason"]
    log = (tmp_path / "bench.log").read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["formats"]["onnx"]["status"] == "ok"
    assert (tmp_path / "report" / "latency.png").is_file()


def test_stage_lists():
    import pytest

    from sapnet_export.cli.bench_cmd import parse_stage_list
    from sapnet_export.errors import InputError

    assert parse_stage_list("6") == [6]
    assert parse_stage_list("1-3,6") == [1, 2, 3, 6]
    assert parse_stage_list("4,2,2") == [2, 4]
    for bad in ("0", "7", "1-9", "a", "", "-1"):
        with pytest.raises(InputError, match="--stages"):
            parse_stage_list(bad)


def test_a_stage_sweep_writes_a_report_per_stage_count(tiny_configs):
    for k in (1, 2):
        payload = json.loads((tiny_configs / f"k{k}.json").read_text())
        assert payload["reference"]["stages"] == k
        assert (tiny_configs / "work" / f"k{k}" / "onnx.onnx").is_file()
    assert len((tiny_configs / "bench.log").read_text().splitlines()) == 2


def test_a_stage_sweep_beyond_the_checkpoint_is_refused(tiny_models, tmp_path):
    code, output = invoke("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                          "--stages", "1-3", "--formats", "torch", "--runs", "0", "--log", tmp_path / "l")
    assert code == 2 and "has 2 stages" in output


def test_bench_openvino_formats_then_target_fps_chooses_among_them(tiny_models, tmp_path):
    from sapnet_export.machine import cpu_features

    code, output = invoke("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                          "--gt", tiny_models["gt"], "--calib", tiny_models["calibration"],
                          "--formats", "torch,openvino,openvino-bf16,openvino-int8",
                          "--workdir", tmp_path / "work", "--log", tmp_path / "bench.log",
                          "--json", tmp_path / "b.json", "--runs", "1", "--min-psnr", "5",
                          "--max-quality-drop", "50")
    assert code == 0, output
    payload = json.loads((tmp_path / "b.json").read_text())
    rows = {t["name"]: t for t in payload["targets"]}
    bf16 = ("bf16", "ok") if cpu_features()["native_bf16"] else ("fp32", "failed")
    assert [(rows[n]["backend"], rows[n]["precision"], rows[n]["status"]) for n in
            ("openvino", "openvino-bf16", "openvino-int8")] == [
        ("openvino", "fp32", "ok"), ("openvino", *bf16), ("openvino", "int8", "ok")]
    assert rows["openvino"]["file"] == str(tmp_path / "work" / "onnx.onnx")  # the fp32 file, shared
    assert rows["openvino-int8"]["file"].endswith("onnx-int8-openvino.onnx")
    assert rows["openvino"]["settings"]["inference_precision"] == "f32"
    assert rows["openvino"]["versions"]["openvino"]
    frames = tmp_path / "frames"
    frames.mkdir()
    write_rgb(frames / "0.png", 24, 32)
    code, output = invoke("run", frames, "--target-fps", "0.001", "--configs", tmp_path / "b.json",
                          "--weights", tiny_models["checkpoint"], "--backend", "openvino")
    assert code == 0, output
    assert "not considered: torch, 2 stages: not --backend openvino" in output
    assert "openvino / " in output and "frames written" in output
