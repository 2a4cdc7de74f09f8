import pytest

from conftest import invoke_cli as invoke, need_shared, write_rgb


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_derain_command(backend, tiny_checkpoint, tiny_onnx, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        write_rgb(folder / f"{index}.jpg", 12, 16, seed=index)
    extra = ["--model", tiny_onnx] if backend != "torch" else ["--weights", tiny_checkpoint]
    code, output = invoke("derain", folder, "-o", tmp_path / "out", "--backend", backend, *extra)
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]
    assert backend in output and "fp32" in output and "median" in output


def test_derain_corrupt_file_exits_1_and_names_it(tiny_checkpoint, tmp_path):
    write_rgb(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    code, output = invoke("derain", tmp_path / "good.png", tmp_path / "bad.png", "-o",
                          tmp_path / "out", "--weights", tiny_checkpoint)
    assert code == 1
    assert "bad.png" in output and "1 of 2 images failed" in output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_derain_missing_input_exits_2(tiny_checkpoint, tmp_path):
    code, output = invoke("derain", tmp_path / "nope", "-o", tmp_path / "out", "--weights",
                          tiny_checkpoint)
    assert code == 2 and "nope: no such file or folder" in output


@pytest.mark.real
def test_main_job_on_real_images(seeded_official_cache, tmp_path):
    """The README quickstart: official weights (from the seeded cache) -> ONNX -> derain real rain."""
    folder = need_shared("data/real-rain")
    model = tmp_path / "sapnet.onnx"
    code, output = invoke("onnx", "--weights", "official", "-o", model)
    assert code == 0, output
    images = sorted(folder.glob("*.png"))[:2]
    code, output = invoke("derain", *images, "-o", tmp_path / "out", "--backend", "onnxruntime",
                          "--model", model)
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images)
