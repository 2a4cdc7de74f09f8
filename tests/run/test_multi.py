"""``run CAM1 CAM2 ... -o OUTDIR``: several sources concurrently against one backend; each stream's
output is what running that source alone writes."""

import imageio.v3 as iio
import numpy as np
from PIL import Image

from conftest import invoke_cli, write_grey_video


def test_two_sources_match_single_runs(tiny_models, tmp_path):
    video = write_grey_video(tmp_path / "cam.mp4", frames=5)
    model = ["--backend", "onnxruntime", "--model", tiny_models["fp32"]]
    code, output = invoke_cli("run", tiny_models["data"], video, "-o", tmp_path / "many", *model)
    assert code == 0, output
    assert "1-data" in output and "2-cam" in output
    code, output = invoke_cli("run", tiny_models["data"], "-o", tmp_path / "alone", *model)
    assert code == 0, output
    alone = sorted((tmp_path / "alone").glob("*.png"))
    assert len(alone) == 3
    for png in alone:
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / "many" / "1-data" / png.name)))
    frames = iio.imread(tmp_path / "many" / "2-cam.mp4", plugin="pyav")
    assert frames.shape[0] == 5


def test_a_missing_source_is_refused_before_any_stream_starts(tiny_models, tmp_path):
    code, output = invoke_cli("run", tiny_models["data"], str(tmp_path / "nope"), "-o", tmp_path / "o",
                              "--backend", "onnxruntime", "--model", tiny_models["fp32"])
    assert code == 2 and "nope" in output  # a missing source: refused before any stream starts
    assert not (tmp_path / "o").exists()
