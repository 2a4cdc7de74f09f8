import time

import numpy as np
import pytest

from sapnet_export.run.pipeline import run_stream
from sapnet_export.runners import create_runner
from sapnet_export.data.stream import Frame, FrameSource, open_source
from sapnet_export.data.sinks import FolderSink, NullSink, VideoSink
from conftest import block_frames as _frames, write_frames_video as write_video


@pytest.fixture
def runner(tiny_checkpoint):
    return create_runner("torch", weights=str(tiny_checkpoint))


class BurstCamera(FrameSource):
    """A live source that delivers frames faster than any model (a camera at a high frame rate);
    no camera exists on a CI machine, so the frames come from memory at a fixed interval."""

    live = True
    description = "burst camera"
    fps = 1000.0

    def __init__(self, count):
        self.count = count

    def __iter__(self):
        for i, image in enumerate(_frames(self.count, 16, 16)):
            time.sleep(0.001)
            yield Frame(i, image)


def test_a_video_file_is_derained_frame_by_frame_in_order(tmp_path, runner):
    source = open_source(write_video(tmp_path / "in.mp4", _frames(5, 20, 24)))
    sink = FolderSink(tmp_path / "out")
    stats = run_stream(source, runner, sink)
    assert stats.frames_written == 5 and stats.failed == 0 and stats.dropped == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"frame_{i:06d}.png" for i in range(5)]
    assert len(stats.latencies_s) == 5 and stats.fps > 0 and stats.latency_ms(99) >= stats.latency_ms(50)


def test_failed_frames_are_counted_and_skipped(tmp_path, runner):
    from conftest import write_rgb

    (tmp_path / "in").mkdir()
    write_rgb(tmp_path / "in" / "1.png", 16, 16)
    (tmp_path / "in" / "2.png").write_bytes(b"broken")
    write_rgb(tmp_path / "in" / "3.png", 16, 16)
    stats = run_stream(open_source(tmp_path / "in"), runner, NullSink())
    assert stats.frames_written == 2 and stats.failed == 1 and "2.png" in stats.failures[0]


def test_a_live_source_drops_frames_instead_of_falling_behind(runner):
    stats = run_stream(BurstCamera(60), runner, NullSink())
    assert stats.dropped > 0
    assert stats.frames_written + stats.dropped == 60


def test_a_file_source_never_drops(tmp_path, runner):
    source = open_source(write_video(tmp_path / "in.mp4", _frames(12, 16, 16)))
    stats = run_stream(source, runner, NullSink())
    assert stats.frames_written == 12 and stats.dropped == 0


def test_ctrl_c_finalizes_a_playable_video(tmp_path, runner):
    source = open_source(write_video(tmp_path / "in.mp4", _frames(10, 16, 16)))
    out = tmp_path / "out.mp4"

    def interrupt_after_three(stats):
        if stats.frames_written == 3:
            raise KeyboardInterrupt

    stats = run_stream(source, runner, VideoSink(out, 10.0), on_frame=interrupt_after_three)
    assert stats.interrupted and stats.frames_written == 3
    assert len(list(open_source(out))) == 3


def test_tiled_frames_match_the_tiling_module(tmp_path, runner):
    from sapnet_export.run.pipeline import derain_frame
    from sapnet_export.model.tiling import tile_count

    image = _frames(1, 40, 56)[0]
    whole = derain_frame(runner, image, None, 0)
    tiled = derain_frame(runner, image, (24, 24), 8)
    assert tiled.shape == whole.shape == image.shape
    assert 0 < np.abs(tiled.astype(int) - whole.astype(int)).mean() < 10
    stats = run_stream(open_source(write_video(tmp_path / "in.mp4", [image])), runner, NullSink(),
                       tile=(24, 24), overlap=8)
    assert stats.tiles_per_frame == tile_count(40, 56, (24, 24), 8) == 6


def test_frames_larger_than_the_runner_takes_are_tiled_automatically(tmp_path, runner):
    """A Runner with a largest input (an engine's optimization profile maximum) gets tiles, not the frame."""
    from sapnet_export.run.pipeline import derain_frame

    seen = []
    runner.max_frame = (24, 32)  # as TensorRTRunner sets it from its profile
    original = runner.run_tiles
    runner.run_tiles = lambda tiles, weights: seen.append(tiles.shape) or original(tiles, weights)
    image = _frames(1, 40, 56)[0]
    sink = FolderSink(tmp_path / "out")
    stats = run_stream(open_source(write_video(tmp_path / "in.mp4", [image])), runner, sink, overlap=8)
    assert stats.tiles_per_frame == 4 and seen and all(n == 4 and h <= 24 and w <= 32 for n, _, h, w in seen)
    runner.max_frame = None
    decoded = next(iter(open_source(tmp_path / "in.mp4"))).image
    written = next(iter(open_source(tmp_path / "out"))).image
    assert np.array_equal(written, derain_frame(runner, decoded, (24, 32), 8))
