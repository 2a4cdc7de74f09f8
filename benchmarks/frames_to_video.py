"""Make a test video from still frames (e.g. ../shared/data/real-rain), for `sapnet-export run`.

    python benchmarks/frames_to_video.py ../shared/data/real-rain -o engines/real-rain.mp4 --fps 5

Frames are taken in natural order and encoded as the toolkit writes video (H.264 yuv420p, CRF 18,
odd sizes padded to even: sapnet_export.data.sinks.VideoSink); every frame must have the same size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sapnet_export.data.stream import open_source

from sapnet_export.data.sinks import VideoSink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", help="folder of frames")
    parser.add_argument("-o", "--output", required=True, type=Path)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1, help="write each frame this many times")
    args = parser.parse_args()
    sink = VideoSink(args.output, args.fps)
    size = None
    count = 0
    for frame in open_source(args.frames):
        if frame.image is None:
            raise SystemExit(f"error: {frame.error}")
        if size is None:
            size = frame.image.shape
        elif frame.image.shape != size:
            sink.abort()
            raise SystemExit(f"error: frame {frame.index} is {frame.image.shape}, the first was {size}")
        for _ in range(args.repeat):
            sink.write(count, frame.image)
            count += 1
    sink.close()
    print(f"{count} frames, {size[1]}x{size[0]}, {args.fps:g} fps -> {args.output}")


if __name__ == "__main__":
    main()
