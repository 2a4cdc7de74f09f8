import numpy as np
import pytest

from sapnet_export.errors import ImageError
from sapnet_export.video import count_frames, is_video, read_frames


def write_video(path, frames=6, height=32, width=48):
    """A short MPEG-4 video whose frame k is a flat grey of level 20 * k (decodable, lossy)."""
    import imageio.v3 as iio

    data = np.stack([np.full((height, width, 3), 20 * k, dtype=np.uint8) for k in range(frames)])
    iio.imwrite(path, data, plugin="pyav", codec="mpeg4", fps=5)
    return path


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
