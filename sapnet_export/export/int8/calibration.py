"""Calibration sets for INT8: a deterministic sample of deployment-like frames, preprocessed like inference.

A set is a folder ``calibration/NAME`` with

- ``frames.npz``: one array ``frames``, float32 [N, 3, H, W], RGB in [0, 1] (the network's input);
- ``manifest.json``: sources with sha256, count, shape, preprocessing, seed, toolkit version, chosen frames
  (source, frame number, crop box), the sha256 of ``frames.npz`` (docs/formats.md).

Sampling: each image and each video frame is a candidate; ``count`` are drawn without replacement by
``numpy.random.default_rng(seed)``, kept in source order. ``fit="crop"`` may ask for more frames than
candidates, which are then reused with new random crops. Same sources, size, count, seed, fit: same frames.

Synthetic rain: frames drawn from ``clean`` sources get rain after the crop (``make_rainy`` of
:mod:`sapnet_export.data.synthetic_rain`, seeded ``(seed, frame index)``) at a density (``light``,
``moderate``, ``heavy``, or ``mixed``: light and heavy in turn), to cover rain the camera has not
recorded; the manifest records the preset's ranges and each frame's parameters.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sapnet_export import __version__
from sapnet_export.data.synthetic_rain import MIXED, PRESETS, make_rainy, preset_for
from sapnet_export.errors import InputError
from sapnet_export.fileio import check_output, sha256_file, temporary_path
from sapnet_export.provenance import stamp
from .frame_sampling import decode_picks, describe_sources, draw_frames, expand_sources, fit_frame

#: v2 adds ``synthetic_rain``, ``synthetic_frames`` and each source's ``role``; v1 sets still load.
MANIFEST_FORMAT = "sapnet-export/calibration-v2"
READABLE_FORMATS = ("sapnet-export/calibration-v1", MANIFEST_FORMAT)
#: ``--synthetic-rain`` choices: the renderer's presets and their mix.
SYNTHETIC_RAIN = (*PRESETS, "mixed")
MANIFEST_NAME, FRAMES_NAME = "manifest.json", "frames.npz"
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
    def synthetic_frames(self) -> int:
        """Frames (0..N) with rain rendered by ``calib build --synthetic-rain``; 0 for a v1 manifest."""
        return int(self.manifest.get("synthetic_frames") or 0)

    @property
    def sha256(self) -> str:
        """sha256 of ``frames.npz`` (as recorded in, and checked against, the manifest)."""
        return self.manifest["frames_sha256"]


def _synthetic_record(preset: str, seed: int) -> dict:
    """The manifest's ``synthetic_rain`` entry: the preset, the ranges of every preset it draws from
    and how each frame's generator is seeded."""
    names = MIXED if preset == "mixed" else (preset,)
    return {"preset": preset, "ranges": {name: asdict(PRESETS[name]) for name in names},
            "renderer": "sapnet_export.data.synthetic_rain.make_rainy",
            "seeding": f"numpy.random.default_rng(({seed}, frame index)) per rendered frame",
            "mixed_order": list(MIXED) if preset == "mixed" else None}


def _check_build_options(count: int, fit: str, clean: list[str], synthetic_rain: str | None) -> None:
    """Refuse what :func:`build_calibration` cannot build (the messages name the CLI options)."""
    if count < 1:
        raise InputError(f"--count {count}: need at least 1 frame")
    if fit not in FITS:
        raise InputError(f"--fit {fit}: choose one of {', '.join(FITS)}")
    if synthetic_rain is not None and synthetic_rain not in SYNTHETIC_RAIN:
        raise InputError(f"--synthetic-rain {synthetic_rain}: choose one of {', '.join(SYNTHETIC_RAIN)}")
    if bool(clean) != (synthetic_rain is not None):
        raise InputError("--synthetic-rain renders rain on the --clean frames: give both, or neither")


def _described_sources(sources: list[str], clean: list[str]) -> list[dict]:
    """Every source file of ``sources`` (role ``as-is``) and ``clean`` (role ``clean``), described.

    Raises:
        InputError: no source, or unreadable ones (all of them named).
    """
    files = expand_sources(list(sources)) if sources else []
    clean_files = expand_sources(list(clean)) if clean else []
    if not files and not clean_files:
        raise InputError("no calibration source given")
    described, errors = describe_sources(files + clean_files)
    if errors:
        raise InputError("unreadable calibration sources:\n  " + "\n  ".join(errors))
    for i, source in enumerate(described):
        source["role"] = "clean" if i >= len(files) else "as-is"
    return described


def _fit_frames(described: list[dict], picks: list[tuple[int, int]], size: tuple[int, int], fit: str,
                rng: np.random.Generator, synthetic_rain: str | None,
                seed: int, warnings: list[str]) -> tuple[np.ndarray, list[dict], int]:
    """Decode the picked frames, fit each to ``size`` and render rain on the clean ones: float32
    [N, 3, H, W], one record per frame (source, frame, crop box, rain parameters), the rendered count."""
    height, width = size
    frames = np.empty((len(picks), 3, height, width), dtype=np.float32)
    records = []
    decoded = decode_picks(described, picks)
    if fit == "crop":  # native scale: a small source is scaled up at most MAX_CROP_UPSCALE times, with a warning
        warnings += _check_native_scale(described, decoded, height, width)
    rendered = 0
    for n, (i, k) in enumerate(picks):
        frames[n], box = fit_frame(decoded[(i, k)], height, width, fit, rng)
        record = {"source": i, "frame": k, **box}
        if described[i]["role"] == "clean":
            preset, ranges = preset_for(synthetic_rain, rendered)
            frames[n], params = make_rainy(frames[n], (seed, n), ranges)
            record["synthetic_rain"] = {"preset": preset, "params": params.as_dict()}
            rendered += 1
        records.append(record)
    return frames, records, rendered


def build_calibration(sources: list[str], output: str | os.PathLike, *, size: tuple[int, int],
                      count: int, seed: int = 0, fit: str = "crop", force: bool = False,
                      command: str | None = None, clean: list[str] = (),
                      synthetic_rain: str | None = None) -> tuple[CalibrationSet, list[str]]:
    """Sample, preprocess and save a calibration set (see the module docstring).

    Args:
        sources: image files, folders, glob patterns and video files, used as they are.
        output: the set's folder (created; replaced only with ``force``), written atomically: the
            folder is assembled under a temporary name and renamed into place.
        size: (H, W) of every frame: the shape the engine's optimization profile is tuned at.
        count: N, frames to keep (>= 1), drawn from the frames of ``sources`` and ``clean`` together.
        seed: seed of the frame draw, crop positions and rendered rain.
        fit: ``crop`` (random H x W window at native scale; smaller frames are scaled up to cover it)
            or ``resize`` (whole frame scaled, aspect kept, to cover H x W, then centre-cropped).
        clean: sources of clean (dry) frames; every frame drawn from them gets synthetic rain.
        synthetic_rain: the rain rendered on ``clean`` frames, a key of
            :data:`~sapnet_export.data.synthetic_rain.PRESETS` or ``mixed`` (presets of
            :data:`~sapnet_export.data.synthetic_rain.MIXED` in turn); required with ``clean``.

    Returns:
        ``(set, warnings)``: warnings say when fewer than :data:`MIN_RECOMMENDED_FRAMES` frames were
        kept or ``count`` was capped.

    Raises:
        InputError: no source, an unreadable source (all of them are named), bad count/fit/preset,
            ``clean`` without ``synthetic_rain`` or the reverse, or ``output`` exists without ``force``.
    """
    _check_build_options(count, fit, clean, synthetic_rain)
    output = check_output(output, kind="folder", force=force, option="--output")
    described = _described_sources(sources, clean)
    candidates = [(i, k) for i, src in enumerate(described) for k in range(src["frames"])]
    rng = np.random.default_rng(seed)
    picks, warnings = draw_frames(candidates, count, fit, rng)
    height, width = size
    frames, records, rendered = _fit_frames(described, picks, size, fit, rng, synthetic_rain, seed, warnings)
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
        "synthetic_rain": _synthetic_record(synthetic_rain, seed) if synthetic_rain else None,
        "synthetic_frames": rendered,
        "sources": described,
        "frames": records,
        "frames_file": FRAMES_NAME,
        "sapnet_export_version": __version__,
        **stamp(command),
    }
    _write_set(output, frames, manifest, force)
    return CalibrationSet(path=output, frames=frames, manifest=manifest), warnings


#: Largest factor ``--fit crop`` scales a source smaller than ``--size`` up by (with a warning); beyond
#: it the source is refused: a 1x1 image scaled 32 times is a flat frame, not calibration data.
MAX_CROP_UPSCALE = 2.5


def _check_native_scale(described: list[dict], decoded: dict, height: int, width: int) -> list[str]:
    """``--fit crop`` is native scale: a source frame smaller than the crop is scaled up only by up to
    :data:`MAX_CROP_UPSCALE`, with a warning naming it; beyond that it is refused.

    Raises:
        InputError: a source that would be scaled up more than :data:`MAX_CROP_UPSCALE` times.
    """
    warnings = []
    for (i, k), image in sorted(decoded.items()):
        scale = max(height / image.shape[1], width / image.shape[2])
        if scale <= 1.0:
            continue
        where = described[i]["path"] + (f" (frame {k})" if described[i]["kind"] == "video" else "")
        text = (f"{where}: {image.shape[1]}x{image.shape[2]} is smaller than --size {height}x{width}")
        if scale > MAX_CROP_UPSCALE:
            raise InputError(f"{text}: --fit crop keeps native scale and would scale it up {scale:.1f} "
                             f"times (at most {MAX_CROP_UPSCALE:g}); use --fit resize, a smaller --size, "
                             "or drop this source")
        warnings.append(f"{text}: --fit crop scaled it up {scale:.2f} times (not native scale)")
    return warnings


def _write_set(output: Path, frames: np.ndarray, manifest: dict, force: bool) -> None:
    """Assemble the folder under a temporary name beside ``output``, then rename it into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(output, folder=True)
    try:
        np.savez(tmp / FRAMES_NAME, frames=frames)
        manifest["frames_sha256"] = sha256_file(tmp / FRAMES_NAME)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if output.exists():
            if not force and any(output.iterdir()):
                raise InputError(f"{output}: already exists; pass --force to replace it")
            old = temporary_path(output, folder=True, suffix=".bak.tmp")
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
        if manifest.get("format") not in READABLE_FORMATS:
            raise ValueError(f"format is {manifest.get('format')!r}, expected one of "
                             f"{', '.join(READABLE_FORMATS)}")
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
