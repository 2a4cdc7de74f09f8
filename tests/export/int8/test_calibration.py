import json

import numpy as np
import pytest
from PIL import Image

from conftest import write_rgb, write_rgb_folder
from sapnet_export.export.int8.calibration import (FRAMES_NAME, MANIFEST_NAME, MIN_RECOMMENDED_FRAMES,
                                       build_calibration, load_calibration)
from sapnet_export.errors import InputError
from sapnet_export.fileio import sha256_file
from conftest import write_grey_video as write_video


@pytest.fixture
def sources(tmp_path):
    folder = write_rgb_folder(tmp_path / "src", 5, 30, 40, prefix="f")
    return folder


def test_build_writes_frames_and_manifest(sources, tmp_path):
    out = tmp_path / "calibration" / "cam"
    result, warnings = build_calibration([str(sources)], out, size=(24, 32), count=3, seed=7)
    assert sorted(p.name for p in out.iterdir()) == [FRAMES_NAME, MANIFEST_NAME]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["count"] == 3 and manifest["shape"] == [3, 3, 24, 32] and manifest["seed"] == 7
    assert manifest["frames_sha256"] == sha256_file(out / FRAMES_NAME)
    assert manifest["preprocessing"]["fit"] == "crop" and manifest["preprocessing"]["size"] == [24, 32]
    assert [s["sha256"] for s in manifest["sources"]] == [sha256_file(sources / f"f{i}.png")
                                                         for i in range(5)]
    assert manifest["sapnet_export_version"]
    with np.load(out / FRAMES_NAME) as data:
        frames = data["frames"]
    assert frames.dtype == np.float32 and frames.shape == (3, 3, 24, 32)
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    # A crop of the source at native scale, exactly as inference reads it.
    first = manifest["frames"][0]
    source = np.asarray(Image.open(manifest["sources"][first["source"]]["path"]), dtype=np.float32) / 255
    crop = source[first["top"]:first["top"] + 24, first["left"]:first["left"] + 32].transpose(2, 0, 1)
    np.testing.assert_array_equal(frames[0], crop)
    assert any(f"only 3 calibration frames (fewer than {MIN_RECOMMENDED_FRAMES})" in w for w in warnings)


def test_same_seed_same_frames_other_seed_other_frames(sources, tmp_path):
    a, _ = build_calibration([str(sources)], tmp_path / "a", size=(16, 16), count=3, seed=1)
    b, _ = build_calibration([str(sources / "*.png")], tmp_path / "b", size=(16, 16), count=3, seed=1)
    c, _ = build_calibration([str(sources)], tmp_path / "c", size=(16, 16), count=3, seed=2)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


def test_more_frames_than_sources_reuses_them_with_new_crops(sources, tmp_path):
    result, warnings = build_calibration([str(sources)], tmp_path / "x", size=(16, 16), count=12)
    assert result.frames.shape[0] == 12
    assert any("used up to 3 times" in w for w in warnings)
    assert len({f.tobytes() for f in result.frames}) == 12
    resized, warnings = build_calibration([str(sources)], tmp_path / "y", size=(15, 20), count=12,
                                          fit="resize")
    assert resized.frames.shape == (5, 3, 15, 20) and any("capped" in w for w in warnings)


def test_small_sources_are_scaled_up_to_the_size(tmp_path):
    write_rgb(tmp_path / "small.png", 10, 12)
    result, _ = build_calibration([str(tmp_path / "small.png")], tmp_path / "s", size=(20, 30), count=1)
    assert result.frames.shape == (1, 3, 20, 30)
    assert result.manifest["frames"][0]["scale"] == 2.5


def test_video_sources(tmp_path):
    video = write_video(tmp_path / "cam.mp4", frames=8)
    result, _ = build_calibration([str(video)], tmp_path / "v", size=(32, 48), count=4, seed=0)
    assert result.frames.shape == (4, 3, 32, 48)
    picked = [f["frame"] for f in result.manifest["frames"]]
    assert picked == sorted(picked) and len(set(picked)) == 4
    levels = [round(float(f.mean()) * 255 / 20) for f in result.frames]
    assert levels == picked  # frame k is grey level 20 k
    assert result.manifest["sources"][0]["kind"] == "video"
    assert result.manifest["sources"][0]["frames"] == 8


def test_errors_name_the_problem(sources, tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        build_calibration([str(tmp_path / "*.jpg")], tmp_path / "e", size=(8, 8), count=1)
    with pytest.raises(InputError, match="need at least 1 frame"):
        build_calibration([str(sources)], tmp_path / "e", size=(8, 8), count=0)
    (tmp_path / "bad.png").write_bytes(b"junk")
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    with pytest.raises(InputError, match="bad.png.*\n.*bad.mp4") as caught:
        build_calibration([str(sources), str(tmp_path / "bad.png"), str(tmp_path / "bad.mp4")],
                          tmp_path / "e", size=(8, 8), count=1)
    assert "unreadable calibration sources" in str(caught.value)
    assert not (tmp_path / "e").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no image or video"):
        build_calibration([str(empty)], tmp_path / "e", size=(8, 8), count=1)


def test_existing_set_needs_force(sources, tmp_path):
    build_calibration([str(sources)], tmp_path / "s", size=(8, 8), count=2)
    with pytest.raises(InputError, match="already exists"):
        build_calibration([str(sources)], tmp_path / "s", size=(8, 8), count=2)
    result, _ = build_calibration([str(sources)], tmp_path / "s", size=(8, 8), count=3, force=True)
    assert load_calibration(tmp_path / "s").frames.shape[0] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_load_detects_stale_sources_and_altered_frames(sources, tmp_path):
    out = tmp_path / "s"
    build_calibration([str(sources)], out, size=(8, 8), count=2)
    assert load_calibration(out).stale == []
    write_rgb(sources / "f1.png", 30, 40, seed=99)
    (sources / "f3.png").unlink()
    stale = load_calibration(out).stale
    assert len(stale) == 2 and "f1.png: changed" in stale[0] and "f3.png: missing" in stale[1]
    with np.load(out / FRAMES_NAME) as data:
        frames = data["frames"]
    np.savez(out / FRAMES_NAME, frames=frames * 0.5)
    with pytest.raises(InputError, match="does not match the manifest"):
        load_calibration(out)


def test_load_refuses_a_folder_that_is_not_a_set(tmp_path):
    with pytest.raises(InputError, match="not a calibration set"):
        load_calibration(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{}")
    with pytest.raises(InputError, match="malformed calibration manifest"):
        load_calibration(tmp_path)


def test_synthetic_rain_on_clean_frames_is_deterministic_and_recorded(sources, tmp_path):
    from sapnet_export.data.synthetic_rain import PRESETS, make_rainy

    rainy = tmp_path / "rainy"
    rainy.mkdir()
    write_rgb(rainy / "r0.png", 30, 40, seed=99)
    a, _ = build_calibration([str(rainy)], tmp_path / "a", size=(24, 32), count=6, seed=3,
                             clean=[str(sources)], synthetic_rain="mixed")
    b, _ = build_calibration([str(rainy)], tmp_path / "b", size=(24, 32), count=6, seed=3,
                             clean=[str(sources)], synthetic_rain="mixed")
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.sha256 == b.sha256  # bit for bit, including the rendered rain
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert manifest["format"] == "sapnet-export/calibration-v2"
    assert manifest["synthetic_rain"]["preset"] == "mixed"
    assert manifest["synthetic_rain"]["ranges"]["heavy"]["density"] == list(PRESETS["heavy"].density)
    roles = [s["role"] for s in manifest["sources"]]
    assert roles == ["as-is"] + ["clean"] * 5
    rendered = [f for f in manifest["frames"] if "synthetic_rain" in f]
    assert manifest["synthetic_frames"] == len(rendered) == sum(
        manifest["sources"][f["source"]]["role"] == "clean" for f in manifest["frames"])
    assert [f["synthetic_rain"]["preset"] for f in rendered][:2] == ["light", "heavy"]
    # A rendered frame is the crop of its clean source with the recorded rain on it, seeded (seed, n).
    n = next(i for i, f in enumerate(manifest["frames"]) if "synthetic_rain" in f)
    frame = manifest["frames"][n]
    source = np.asarray(Image.open(manifest["sources"][frame["source"]]["path"]), dtype=np.float32) / 255
    crop = np.ascontiguousarray(source[frame["top"]:frame["top"] + 24,
                                       frame["left"]:frame["left"] + 32].transpose(2, 0, 1))
    expected, params = make_rainy(crop, (3, n), PRESETS[frame["synthetic_rain"]["preset"]])
    np.testing.assert_array_equal(a.frames[n], expected)
    assert json.loads(json.dumps(params.as_dict())) == frame["synthetic_rain"]["params"]
    assert not np.array_equal(a.frames[n], crop)
    # Frames used as they are carry no rain of ours; the set loads back and is not stale.
    plain = [i for i, f in enumerate(manifest["frames"]) if "synthetic_rain" not in f]
    assert len(plain) + len(rendered) == 6
    assert load_calibration(tmp_path / "a").stale == []


def test_heavy_rain_renders_more_rain_than_light(sources, tmp_path):
    light, _ = build_calibration([], tmp_path / "l", size=(24, 32), count=5, seed=0,
                                 clean=[str(sources)], synthetic_rain="light")
    heavy, _ = build_calibration([], tmp_path / "h", size=(24, 32), count=5, seed=0,
                                 clean=[str(sources)], synthetic_rain="heavy")
    plain, _ = build_calibration([str(sources)], tmp_path / "p", size=(24, 32), count=5, seed=0)
    rain_light = float(np.mean(light.frames - plain.frames))  # same draw and crops: same seed
    rain_heavy = float(np.mean(heavy.frames - plain.frames))
    assert 0.0 < rain_light < rain_heavy


@pytest.mark.parametrize("kwargs, message", [
    ({"synthetic_rain": "heavy"}, "give both, or neither"),
    ({"clean": ["CLEAN"]}, "give both, or neither"),
    ({"clean": ["CLEAN"], "synthetic_rain": "drizzle"}, "--synthetic-rain drizzle: choose one of"),
])
def test_synthetic_rain_options_are_checked(sources, tmp_path, kwargs, message):
    kwargs = {k: ([str(sources)] if v == ["CLEAN"] else v) for k, v in kwargs.items()}
    with pytest.raises(InputError, match=message):
        build_calibration([str(sources)], tmp_path / "x", size=(16, 16), count=2, **kwargs)
    assert not (tmp_path / "x").exists()


def test_version_1_sets_still_load(sources, tmp_path):
    build_calibration([str(sources)], tmp_path / "v1", size=(16, 16), count=2)
    path = tmp_path / "v1" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["format"] = "sapnet-export/calibration-v1"
    for key in ("synthetic_rain", "synthetic_frames"):
        del manifest[key]
    path.write_text(json.dumps(manifest))
    assert load_calibration(tmp_path / "v1").frames.shape == (2, 3, 16, 16)
