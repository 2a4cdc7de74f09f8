"""Calibration sets for INT8: a deterministic sample of deployment-like frames, preprocessed like inference.

A set is a folder ``calibration/NAME`` with

- ``frames.npz``: one array ``frames``, float32 [N, 3, H, W], RGB in [0, 1] (the network's input);
- ``manifest.json``: the sources with their sha256, count, shape, preprocessing, seed, toolkit version,
  the chosen frames (source, frame number, crop box) and the sha256 of ``frames.npz``.

Sampling: every image is one candidate frame, every video frame is one; ``count`` candidates are drawn
without replacement by ``numpy.random.default_rng(seed)`` and kept in source order. With ``fit="crop"``
more frames than candidates may be asked for: the candidates are then reused, each time with a new
random crop. The same sources, size, count, seed and fit give the same frames, bit for bit.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from sapnet_export import __version__
from sapnet_export.errors import ImageError, InputError
from sapnet_export.fileio import sha256_file
from sapnet_export.data.images import IMAGE_SUFFIXES, natural_key, read_image
from sapnet_export.data.video import VIDEO_SUFFIXES, count_frames, is_video, read_frames

MANIFEST_FORMAT = "sapnet-export/calibration-v1"
MANIFEST_NAME = "manifest.json"
FRAMES_NAME = "frames.npz"
#: Fewer frames than this gets a warning (TensorRT's and ModelOpt's guidance: a few hundred for
#: classification; the ranges of this small network settle with far fewer, see calibration/README.md).
MIN_RECOMMENDED_FRAMES = 32
FITS = ("crop", "resize")


@dataclass(frozen=True)
class CalibrationSet:
    """A loaded calibration set.

    Attributes:
        path: the set's folder.
        frames: float32 [N, 3, H, W], RGB in [0, 1].
        manifest: the parsed ``manifest.json``.
        stale: one line per source that is missing or whose sha256 changed since the set was built
            (empty when the sources still match).
    """

    path: Path
    frames: np.ndarray
    manifest: dict
    stale: list[str] = field(default_factory=list)

    @property
    def source_sha256(self) -> frozenset[str]:
        """sha256 of every source file (to keep calibration images out of held-out evaluation)."""
        return frozenset(source["sha256"] for source in self.manifest.get("sources", []))

    @property
    def sha256(self) -> str:
        """sha256 of ``frames.npz`` (as recorded in, and checked against, the manifest)."""
        return self.manifest["frames_sha256"]


def _expand_sources(sources: list[str]) -> list[Path]:
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


def _fit(image: np.ndarray, height: int, width: int, fit: str,
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


def _describe(files: list[Path]) -> tuple[list[dict], list[str]]:
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


def build_calibration(sources: list[str], output: str | os.PathLike, *, size: tuple[int, int],
                      count: int, seed: int = 0, fit: str = "crop", force: bool = False,
                      command: str | None = None) -> tuple[CalibrationSet, list[str]]:
    """Sample, preprocess and save a calibration set (see the module docstring).

    Args:
        sources: image files, folders, glob patterns and video files.
        output: the set's folder (created; replaced only with ``force``), written atomically: the
            folder is assembled under a temporary name and renamed into place.
        size: (H, W) of every frame: the shape the engine's optimization profile is tuned at.
        count: N, frames to keep (>= 1).
        seed: seed of the frame draw and crop positions.
        fit: ``crop`` (random H x W window at native scale; smaller frames are scaled up to cover it)
            or ``resize`` (whole frame scaled, aspect kept, to cover H x W, then centre-cropped).

    Returns:
        ``(set, warnings)``: warnings say when fewer than :data:`MIN_RECOMMENDED_FRAMES` frames were
        kept or ``count`` was capped.

    Raises:
        InputError: no source, an unreadable source (all of them are named), bad count/fit, or
            ``output`` exists without ``force``.
    """
    if count < 1:
        raise InputError(f"--count {count}: need at least 1 frame")
    if fit not in FITS:
        raise InputError(f"--fit {fit}: choose one of {', '.join(FITS)}")
    output = Path(output)
    if output.exists() and not force:
        raise InputError(f"{output}: already exists; pass --force to replace it")
    files = _expand_sources(sources)
    if not files:
        raise InputError("no calibration source given")
    described, errors = _describe(files)
    if errors:
        raise InputError("unreadable calibration sources:\n  " + "\n  ".join(errors))
    candidates = [(i, k) for i, src in enumerate(described) for k in range(src["frames"])]
    rng = np.random.default_rng(seed)
    warnings: list[str] = []
    if count <= len(candidates):
        picks = [candidates[j] for j in sorted(rng.choice(len(candidates), count, replace=False))]
    elif fit == "crop":
        cycles, rest = divmod(count, len(candidates))
        extra = sorted(rng.choice(len(candidates), rest, replace=False)) if rest else []
        picks = sorted(candidates * cycles + [candidates[j] for j in extra])
        warnings.append(f"{count} frames from {len(candidates)} source frames: each is used up to "
                        f"{cycles + (1 if rest else 0)} times, with different crops")
    else:
        picks = candidates
        warnings.append(f"--count {count} capped to the {len(candidates)} source frames "
                        "(--fit resize gives one frame per source frame)")
    height, width = size
    frames = np.empty((len(picks), 3, height, width), dtype=np.float32)
    records = []
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
    for n, (i, k) in enumerate(picks):
        frames[n], box = _fit(decoded[(i, k)], height, width, fit, rng)
        records.append({"source": i, "frame": k, **box})
    if len(picks) < MIN_RECOMMENDED_FRAMES:
        warnings.append(f"only {len(picks)} calibration frames (fewer than {MIN_RECOMMENDED_FRAMES}): "
                        "activation ranges may not cover what the camera sees")
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": output.name,
        "count": len(picks),
        "shape": list(frames.shape),
        "dtype": "float32",
        "layout": "NCHW, RGB, [0, 1]",
        "preprocessing": {"fit": fit, "size": [height, width], "resample": "bilinear (Pillow, float)",
                          "decode": "Pillow (images) / PyAV rgb24 (video), /255; as sapnet_export.data.images"},
        "seed": seed,
        "sources": described,
        "frames": records,
        "frames_file": FRAMES_NAME,
        "sapnet_export_version": __version__,
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_set(output, frames, manifest, force)
    return CalibrationSet(path=output, frames=frames, manifest=manifest), warnings


def _write_set(output: Path, frames: np.ndarray, manifest: dict, force: bool) -> None:
    """Assemble the folder under a temporary name beside ``output``, then rename it into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        np.savez(tmp / FRAMES_NAME, frames=frames)
        manifest["frames_sha256"] = sha256_file(tmp / FRAMES_NAME)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if output.exists():
            if not force:
                raise InputError(f"{output}: already exists; pass --force to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
            os.replace(output, old / "set")
        os.replace(tmp, output)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_calibration(path: str | os.PathLike) -> CalibrationSet:
    """Load a set made by :func:`build_calibration`, check it, and report stale sources.

    The frames must match the manifest's sha256, shape and dtype. Sources are re-hashed: a missing or
    changed source makes the set *stale* (listed in :attr:`CalibrationSet.stale`); the frames stay
    usable, but the manifest no longer says how to rebuild them.

    Raises:
        InputError: no such folder, no or malformed manifest, frames missing, altered or of the
            wrong shape.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{path}: not a calibration set (no {MANIFEST_NAME}); "
                         "make one with `sapnet-export calib build`")
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        frames_path = path / manifest["frames_file"]
        expected_sha, shape = manifest["frames_sha256"], tuple(manifest["shape"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path}: malformed calibration manifest: {exc}") from exc
    if not frames_path.is_file():
        raise InputError(f"{frames_path}: frames file missing; rebuild the set with the command in "
                         f"{manifest_path} ({manifest.get('command', 'sapnet-export calib build')})")
    actual_sha = sha256_file(frames_path)
    if actual_sha != expected_sha:
        raise InputError(f"{frames_path}: sha256 {actual_sha[:12]} does not match the manifest "
                         f"({expected_sha[:12]}); the file was altered: rebuild the set")
    with np.load(frames_path) as data:
        frames = data["frames"]
    if frames.dtype != np.float32 or frames.shape != shape or frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"{frames_path}: frames are {frames.dtype} {list(frames.shape)}, "
                         f"the manifest says float32 {list(shape)}")
    stale = []
    for source in manifest.get("sources", []):
        where = Path(source["path"])
        if not where.is_file():
            where = Path(source.get("absolute_path", source["path"]))
        if not where.is_file():
            stale.append(f"{source['path']}: missing")
        elif sha256_file(where) != source["sha256"]:
            stale.append(f"{source['path']}: changed (sha256 differs from the manifest)")
    return CalibrationSet(path=path, frames=frames, manifest=manifest, stale=stale)
