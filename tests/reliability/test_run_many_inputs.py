"""Hostile inputs of ``run`` with several sources (issue 19): exit 2, nothing written."""

from conftest import invoke_cli


def test_several_sources_need_a_folder_and_no_target_fps(tiny_models, tmp_path):
    data = tiny_models["data"]
    code, output = invoke_cli("run", data, data, "-o", tmp_path / "out.mp4", "--backend", "onnxruntime",
                              "--model", tiny_models["fp32"])
    assert code == 2 and "give a folder" in output, output
    code, output = invoke_cli("run", data, data, "--target-fps", "5")
    assert code == 2 and "--target-fps" in output, output
    (tmp_path / "file").write_text("x")
    code, output = invoke_cli("run", data, data, "-o", tmp_path / "file", "--backend", "onnxruntime",
                              "--model", tiny_models["fp32"])
    assert code == 2 and "file" in output, output
    assert not (tmp_path / "out.mp4").exists()
