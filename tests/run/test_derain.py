import numpy as np
import pytest
from PIL import Image

from conftest import write_rgb
from sapnet_export.run.derain import derain_files
from sapnet_export.errors import ImageError, InputError
from sapnet_export.data.images import discover_images
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def runner(tiny_checkpoint):
    return TorchRunner(*load_weights(tiny_checkpoint))


def test_writes_pngs_with_relative_names(runner, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_rgb(folder / "a.jpg", 10, 12)
    write_rgb(folder / "sub" / "b.png", 9, 7)
    summary = derain_files(runner, discover_images([folder]), tmp_path / "out")
    assert summary.written == [tmp_path / "out" / "a.png", tmp_path / "out" / "sub" / "b.png"]
    assert np.asarray(Image.open(summary.written[1])).shape == (9, 7, 3)
    assert len(summary.latencies_s) == 2 and summary.median_s > 0 and summary.megapixels_per_s > 0


def test_bad_file_is_recorded_and_the_rest_goes_on(runner, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.png").write_text("garbage")
    write_rgb(folder / "2.png", 8, 8)
    summary = derain_files(runner, discover_images([folder]), tmp_path / "out")
    assert [p.name for p in summary.written] == ["2.png"]
    assert summary.failures[0][0].name == "1.png" and "not an image" in summary.failures[0][1]


def test_fail_fast_raises_the_first_error(runner, tmp_path):
    (tmp_path / "1.png").write_text("garbage")
    with pytest.raises(ImageError, match="1.png"):
        derain_files(runner, discover_images([tmp_path / "1.png"]), tmp_path / "out", fail_fast=True)


def test_frames_above_the_megapixel_limit_are_refused(runner, tmp_path):
    write_rgb(tmp_path / "big.png", 100, 100)
    summary = derain_files(runner, discover_images([tmp_path / "big.png"]), tmp_path / "out",
                           max_megapixels=0.005)
    assert not summary.written and "above --max-megapixels 0.005" in summary.failures[0][1]


def test_output_name_clash_is_refused(runner, tmp_path):
    write_rgb(tmp_path / "a.png")
    write_rgb(tmp_path / "a.jpg")
    with pytest.raises(InputError, match="two inputs would write"):
        derain_files(runner, discover_images([tmp_path / "a.png", tmp_path / "a.jpg"]), tmp_path / "o")
