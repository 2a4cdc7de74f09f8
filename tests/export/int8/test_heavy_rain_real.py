"""The default INT8 recipe on heavy rain, with the published checkpoint (marked ``real``).

Heavy rain (the renderer's ``heavy`` preset, as ``benchmarks/heavy_rain_set.py`` makes it) over crops of
three Rain100L clean targets; calibration as the README recommends: crops of the real-rain photographs
and of the bundled clean photographs with the renderer's mixed rain (``calib build --clean photos/train
--synthetic-rain mixed``), every other option the export's default (the tensorrt profile, ``auto``
calibration method, ``conv0`` and ``conv`` float). Small crops keep it near a minute on 2 cores;
docs/measurements.md ("The default recipe") has the full-size tables this test stands for.
"""

from pathlib import Path

import numpy as np
import pytest

from conftest import need_shared
from sapnet_export.data.images import read_image, write_png
from sapnet_export.data.synthetic_rain import PRESETS, make_rainy
from sapnet_export.export.int8.calibration import build_calibration
from sapnet_export.export.onnx_export import Int8Options, export_onnx
from sapnet_export.model.checkpoints import load_weights
from training.photos import write_bundled


@pytest.mark.real
def test_default_int8_recipe_holds_on_heavy_rain(official_checkpoint, tmp_path):
    real_rain = need_shared("data/real-rain")
    targets = need_shared("data/rain100l/target")
    write_bundled(tmp_path / "photos")
    calibration, _ = build_calibration([str(real_rain)], tmp_path / "calib", size=(160, 240), count=12,
                                       seed=0, clean=[str(tmp_path / "photos" / "train")],
                                       synthetic_rain="mixed")
    assert calibration.synthetic_frames > 0
    images = []
    for i, name in enumerate(("20.png", "55.png", "90.png")):
        clean = np.ascontiguousarray(read_image(targets / name)[:, :160, :240])
        rainy, _ = make_rainy(clean, (17, i), PRESETS["heavy"])
        write_png(tmp_path / "gt" / name, clean)
        images.append(write_png(tmp_path / "heavy" / name, rainy))
    model, info = load_weights(official_checkpoint)
    result = export_onnx(model, info, tmp_path / "q.onnx", precision="int8", images=images,
                         gt_dir=tmp_path / "gt",
                         int8=Int8Options(calibration=calibration))
    fidelity = [r.fidelity.psnr_db for r in result.held_out]
    assert np.mean(fidelity) >= 40.0 and min(fidelity) >= 33.0, fidelity  # issue 17's targets
    summary = result.report["held_out"]["summary"]
    assert summary["quality"]["psnr_y"] - summary["reference_quality"]["psnr_y"] >= -1.0
    assert float(result.metadata["int8_mac_share"]) >= 0.9
    assert (result.metadata["calib_method"], result.metadata["keep_fp32"]) == ("minmax", "conv0,conv")
    assert result.report["held_out"]["source"] == "--images"
    assert Path(result.path).is_file()
