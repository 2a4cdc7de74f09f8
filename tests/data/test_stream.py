import numpy as np
import pytest

from conftest import block_frames as _frames, write_frames_video as write_video, write_rgb
from sapnet_export.errors import InputError
from sapnet_export.data.stream import open_source
from sapnet_export.data.sinks import FolderSink, NullSink, VideoSink, open_sink


def test_a_video_round_trips_with_odd_sizes_padded_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "v.mp4"
    sink = VideoSink(path, 10.0)
    for i, frame in enumerate(_frames()):
        sink.write(i, frame)
    assert not path.exists()  # written beside it under a temporary name until closed
    sink.close()
    assert sink.padded and list(tmp_path.iterdir()) == [path]
    source = open_source(path)
    decoded = list(source)
    source.close()
    assert source.fps == pytest.approx(10.0) and not source.live
    assert [f.index for f in decoded] == [0, 1, 2, 3]
    assert decoded[0].image.shape == (22, 36, 3)
    # H.264 (4:2:0, CRF 18) is lossy: each decoded frame is still nearest to its own source frame.
    sources = _frames()
    for frame in decoded:
        errors = [np.abs(frame.image[:21, :35].astype(int) - s.astype(int)).mean() for s in sources]
        assert int(np.argmin(errors)) == frame.index


def test_abort_leaves_nothing(tmp_path):
    sink = VideoSink(tmp_path / "v.mp4", 10.0)
    sink.write(0, _frames(1)[0])
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_image_folder_frames_in_natural_order_with_unreadable_files_as_failed_frames(tmp_path):
    for i in (1, 2, 10):
        write_rgb(tmp_path / f"{i}.png", 8, 12, seed=i)
    (tmp_path / "3.png").write_bytes(b"broken")
    frames = list(open_source(tmp_path))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[2].image is None and "3.png" in frames[2].error
    assert frames[3].image.shape == (8, 12, 3) and frames[3].image.dtype == np.uint8


def test_unopenable_sources_and_unwritable_outputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "fake.mp4").write_text("not a video")
    with pytest.raises(InputError, match=r"fake\.mp4: cannot open as a video source"):
        open_source(tmp_path / "fake.mp4")
    with pytest.raises(InputError, match="unsupported video suffix"):
        open_sink(tmp_path / "out.webm", 25.0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create the output folder"):
        open_sink(tmp_path / "file" / "frames", 25.0)


def test_sinks_by_output_kind(tmp_path):
    assert isinstance(open_sink(None, None), NullSink)
    assert isinstance(open_sink(tmp_path / "frames", None), FolderSink)
    video = open_sink(tmp_path / "v.mkv", None)
    assert isinstance(video, VideoSink) and video.fps == 25.0
    video.abort()


def test_sources_declare_their_frame_size_before_decoding(tmp_path):
    """--target-fps chooses a configuration for the frame size before the first frame is decoded."""
    video = open_source(write_video(tmp_path / "in.mp4", _frames(2, 20, 24)))
    assert video.size == (20, 24)
    video.close()
    (tmp_path / "frames").mkdir()
    write_rgb(tmp_path / "frames" / "a.png", 17, 29)
    assert open_source(tmp_path / "frames").size == (17, 29)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    assert open_source(tmp_path / "broken").size is None
