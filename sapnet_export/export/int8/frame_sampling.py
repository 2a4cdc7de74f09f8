"""Frame sampling for calibration sets: sources to files, frames fitted to the set's size, sources described.

Used by :mod:`sapnet_export.export.int8.calibration` (see its docstring for the sampling rules).
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
from PIL import Image

from sapnet_export.errors import ImageError, InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.data.images import IMAGE_SUFFIXES, natural_key, read_image
from sapnet_export.data.video import VIDEO_SUFFIXES, count_frames, is_video, read_frames


def expand_sources(sources: list[str]) -> list[Path]:
    """Files, folders (images and videos inside, natural order) and globs -> files."""
    files: list[Path] = []
    for source in sources:
        text = str(source)
        if any(ch in text for ch in "*?["):
            matches = sorted((Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()),
                             key=natural_key)
            if not matches:
                raise InputError(f"{text}: the pattern matches no file")
            files.extend(matches)
        elif Path(text).is_dir():
            suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            found = sorted((p for p in Path(text).rglob("*")
                            if p.is_file() and p.suffix.lower() in suffixes), key=natural_key)
            if not found:
                raise InputError(f"{text}: folder holds no image or video ({', '.join(sorted(suffixes))})")
            files.extend(found)
        elif Path(text).is_file():
            files.append(Path(text))
        else:
            raise InputError(f"{text}: no such file, folder or matching pattern")
    return files


def _scale_to_cover(image: np.ndarray, height: int, width: int,
                    shrink: bool) -> tuple[np.ndarray, float]:
    """Scale float [3, h, w] (aspect kept; bilinear, per channel in Pillow's float mode) so that it just
    covers ``height`` x ``width``. Frames already larger are shrunk only when ``shrink``.
    Returns the image and the scale factor (1.0 when untouched)."""
    _, h, w = image.shape
    scale = max(height / h, width / w)
    if scale == 1.0 or (scale < 1.0 and not shrink):
        return image, 1.0
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    channels = [np.asarray(Image.fromarray(c, mode="F").resize(size, Image.Resampling.BILINEAR))
                for c in image]
    return np.stack(channels).astype(np.float32), scale


def fit_frame(image: np.ndarray, height: int, width: int, fit: str,
         rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Bring one frame to [3, height, width]: a random crop at native scale (``crop``; smaller frames are
    scaled up first) or the whole frame scaled to cover the size and centre-cropped (``resize``)."""
    image, scale = _scale_to_cover(image, height, width, shrink=fit == "resize")
    if fit == "resize":
        top, left = (image.shape[1] - height) // 2, (image.shape[2] - width) // 2
    else:
        top = int(rng.integers(0, image.shape[1] - height + 1))
        left = int(rng.integers(0, image.shape[2] - width + 1))
    crop = image[:, top:top + height, left:left + width]
    return np.clip(crop, 0.0, 1.0), {"scale": round(float(scale), 6), "top": top, "left": left}


def describe_sources(files: list[Path]) -> tuple[list[dict], list[str]]:
    sources, errors = [], []
    for path in files:
        try:
            kind = "video" if is_video(path) else "image"
            if kind == "image":
                read_image(path)  # decodable (the error names the file); decoded again when sampled
            frames = count_frames(path) if kind == "video" else 1
            sources.append({"path": str(path), "absolute_path": str(path.resolve()), "kind": kind,
                            "frames": frames, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        except (ImageError, OSError) as exc:
            errors.append(str(exc))
    return sources, errors


def draw_frames(candidates: list[tuple[int, int]], count: int, fit: str,
                rng: np.random.Generator) -> tuple[list[tuple[int, int]], list[str]]:
    """``count`` (source, frame) picks in source order, reusing candidates (new crops) when more are
    asked than there are with ``fit="crop"``; the warnings say when they were reused or capped."""
    if count <= len(candidates):
        return [candidates[j] for j in sorted(rng.choice(len(candidates), count, replace=False))], []
    if fit == "crop":
        cycles, rest = divmod(count, len(candidates))
        extra = sorted(rng.choice(len(candidates), rest, replace=False)) if rest else []
        return sorted(candidates * cycles + [candidates[j] for j in extra]), [
            f"{count} frames from {len(candidates)} source frames: each is used up to "
            f"{cycles + (1 if rest else 0)} times, with different crops"]
    return candidates, [f"--count {count} capped to the {len(candidates)} source frames "
                        "(--fit resize gives one frame per source frame)"]


def decode_picks(described: list[dict], picks: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """Decode every picked frame once (videos in one pass per file)."""
    by_source: dict[int, list[int]] = {}
    for i, k in picks:
        by_source.setdefault(i, []).append(k)
    decoded: dict[tuple[int, int], np.ndarray] = {}
    for i, ks in by_source.items():
        path = Path(described[i]["path"])
        if described[i]["kind"] == "video":
            decoded.update({(i, k): f for k, f in read_frames(path, ks).items()})
        else:
            decoded[(i, 0)] = read_image(path)
    return decoded
