import numpy as np
import pytest

from conftest import write_grey_video as write_video
from sapnet_export.errors import ImageError
from sapnet_export.data.video import count_frames, is_video, read_frames


def test_count_and_read_frames(tmp_path):
    video = write_video(tmp_path / "cam.mp4")
    assert is_video(video) and not is_video(tmp_path / "x.png")
    assert count_frames(video) == 6
    frames = read_frames(video, [1, 4])
    assert sorted(frames) == [1, 4]
    assert frames[4].shape == (3, 32, 48) and frames[4].dtype == np.float32
    assert abs(float(frames[4].mean()) - 80 / 255) < 0.02
    assert abs(float(frames[1].mean()) - 20 / 255) < 0.02


def test_bad_video_and_missing_frame_are_named(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ImageError, match="bad.mp4"):
        count_frames(tmp_path / "bad.mp4")
    video = write_video(tmp_path / "short.mp4", frames=3)
    with pytest.raises(ImageError, match="short.mp4: video has no frame 7"):
        read_frames(video, [0, 7])
