"""Engine provenance: the ``OUT.engine.json`` sidecar (its writer and its reader), its check against the
runtime, optimization profiles.

A TensorRT engine runs only on the TensorRT flavour and version that built it, on a GPU it was compiled
for; loading a mismatched engine fails deep inside the runtime ("The engine plan file is not compatible
with this version of TensorRT ... version tag does not match"). The sidecar written beside every engine
records what built it, for what, from what (:func:`make_sidecar`, written with the engine by
:func:`write_engine`); :func:`load_sidecar` reads it back and :func:`check_runtime` compares it with the
runtime before the engine is deserialized and says what differs and how to rebuild.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sapnet_export import __version__
from sapnet_export.errors import InputError
from sapnet_export.fileio import atomic_outputs, sha256_file, to_json
from sapnet_export.provenance import stamp
from sapnet_export.shapes import parse_nchw

#: The sidecar's ``format`` value.
SIDECAR_FORMAT = "sapnet-export/engine-v1"


def sidecar_path(engine: str | os.PathLike) -> Path:
    """``OUT.engine`` -> ``OUT.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


@dataclass(frozen=True)
class Profile:
    """An optimization profile of the engine's input: min, opt and max shapes [N, 3, H, W] (int)."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def to_json(self) -> dict:
        """``{"min": [...], "opt": [...], "max": [...]}``."""
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: dict) -> "Profile":
        """Inverse of :meth:`to_json`."""
        return cls(*(tuple(int(v) for v in data[k]) for k in ("min", "opt", "max")))

    def __str__(self) -> str:
        return ":".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))

    def contains(self, shape: tuple[int, ...]) -> bool:
        """True when every dimension of ``shape`` lies within [min, max]."""
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def parse_profile(text: str) -> Profile:
    """Parse ``--shapes MIN:OPT:MAX`` (each ``NxCxHxW`` or ``HxW`` meaning ``1x3xHxW``).

    Example: ``1x3x64x64:1x3x480x640:1x3x1080x1920``.

    Raises:
        InputError: not three shapes, a malformed shape, channels other than 3, or not
            min <= opt <= max in every dimension.
    """
    pieces = text.split(":")
    if len(pieces) != 3:
        raise InputError(f"--shapes {text!r}: expected MIN:OPT:MAX, e.g. 1x3x64x64:1x3x480x640:1x3x1080x1920")
    profile = Profile(*(parse_nchw(p) for p in pieces))
    if not all(lo <= mid <= hi for lo, mid, hi in zip(profile.min, profile.opt, profile.max)):
        raise InputError(f"--shapes {text!r}: need min <= opt <= max in every dimension")
    return profile


def _calibration_provenance(meta: dict[str, str]) -> dict | None:
    """The calibration set an int8 graph was quantized with, from its ONNX metadata (None otherwise)."""
    if "calibration" not in meta:
        return None
    manifest = Path(meta["calibration"]) / "manifest.json"
    return {"path": meta["calibration"], "frames_sha256": meta.get("calibration_frames_sha256"),
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
            "shape": meta.get("calibration_shape"), "method": meta.get("calib_method"),
            "method_from": meta.get("calib_method_from")}


def make_sidecar(*, builder: dict, target: dict, precision: str, meta: dict[str, str], profile: Profile,
                 input_name: str, io: list[dict], layers: dict, onnx_path: Path, checkpoint: dict | None,
                 build_s: float, settings: dict, builder_warnings: list[str], warnings: list[str],
                 command: str | None = None) -> dict:
    """The sidecar of a fresh build, before the engine is written (``sha256.engine`` and ``size_bytes``
    are filled by :func:`write_engine`).

    Args:
        builder: ``{"kind", "name", "version", "onnx_parser_version"}``; target:
            ``{"compute_capabilities": ["sm89", ...], "gpu", "built_on_gpu"}``.
        precision: the graph's (``fp32``, ``fp16``, ``int8``); meta: its ONNX ``metadata_props``.
        profile: the optimization profile of ``input_name``; io: ``[{"name", "mode", "dtype", "shape"}]``.
        layers: ``{"count", "precisions", "list"}`` of the network definition.
        onnx_path: the graph built from; checkpoint: ``{"name", "path", "sha256"}`` when known (the
            metadata's ``checkpoint_sha256`` is recorded otherwise).
        build_s: seconds in ``build_serialized_network``; settings: builder settings as recorded.
        command: the command line (default: this process's; :func:`sapnet_export.provenance.stamp`).
    """
    calibration = _calibration_provenance(meta)
    return {
        "format": SIDECAR_FORMAT,
        "toolkit": {"name": "sapnet-export", "version": __version__},
        "builder": builder,
        "target": target,
        "precision": precision,
        "stages": int(meta["stages"]) if "stages" in meta else None,
        "profile": {"input": input_name, **profile.to_json()},
        "io": io,
        "sha256": {"engine": None, "onnx": sha256_file(onnx_path),
                   "checkpoint": (checkpoint or {}).get("sha256") or meta.get("checkpoint_sha256"),
                   "calibration_manifest": calibration["manifest_sha256"] if calibration else None},
        "files": {"onnx": str(onnx_path), "checkpoint": (checkpoint or {}).get("path")
                  or meta.get("checkpoint")},
        "calibration": calibration,
        "build_seconds": build_s,
        "settings": settings,
        "layers": layers,
        "builder_warnings": builder_warnings[:50],
        "warnings": warnings,
        "onnx_metadata": meta,
        **stamp(command),
    }


def write_engine(output: Path, blob: object, sidecar: dict, *, force: bool = False) -> Path:
    """Write the serialized engine ``blob`` (bytes or TensorRT ``IHostMemory``) at ``output`` and its
    ``sidecar`` beside it, through temporary files renamed into place together
    (:func:`sapnet_export.fileio.atomic_outputs`: both land or neither); fills the
    sidecar's ``sha256.engine`` and ``size_bytes``.

    Returns:
        The sidecar's path (:func:`sidecar_path`).

    Raises:
        InputError: ``output`` exists without ``force``, or a destination is not writable
            (:func:`sapnet_export.fileio.check_output`).
    """
    side = sidecar_path(output)
    with atomic_outputs([output, side], force=force) as (tmp, tmp_side):
        with open(tmp, "wb") as handle:
            handle.write(blob)
        sidecar["sha256"]["engine"] = sha256_file(tmp)
        sidecar["size_bytes"] = tmp.stat().st_size
        tmp_side.write_text(to_json(sidecar))
    return side


def check_in_profile(shape: tuple[int, ...], profile: Profile, engine: str | os.PathLike) -> None:
    """Refuse an input shape outside the engine's optimization profile (before anything runs).

    Raises:
        InputError: naming the engine, the shape and the profile.
    """
    if not profile.contains(tuple(shape)):
        raise InputError(f"{engine}: input {'x'.join(map(str, shape))} is outside the engine's "
                         f"optimization profile (min {'x'.join(map(str, profile.min))}, max "
                         f"{'x'.join(map(str, profile.max))}); rebuild with a wider --shapes, or tile "
                         "the frame")


def load_sidecar(engine: str | os.PathLike, *, verify_sha256: bool = True) -> dict:
    """Read ``engine``'s sidecar and check that it describes this engine file.

    Raises:
        InputError: the engine or its sidecar is missing or unreadable, the sidecar is not one of this
            toolkit's, or (``verify_sha256``) the engine's sha256 differs from the recorded one (the
            engine was replaced after the sidecar was written).
    """
    engine = Path(engine)
    side = sidecar_path(engine)
    if not engine.is_file():
        raise InputError(f"{engine}: engine file not found")
    if not side.is_file():
        raise InputError(f"{engine}: no sidecar {side.name} beside it, so what built it is unknown; "
                         "build engines with 'sapnet-export trt'")
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: not a readable sidecar: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise InputError(f"{side}: not a sapnet-export engine sidecar (format "
                         f"{data.get('format') if isinstance(data, dict) else None!r}, expected "
                         f"{SIDECAR_FORMAT!r})")
    if verify_sha256:
        actual = sha256_file(engine)
        if actual != data["sha256"]["engine"]:
            raise InputError(f"{engine}: sha256 {actual[:12]} differs from its sidecar's "
                             f"{data['sha256']['engine'][:12]}; the engine was replaced or damaged "
                             "after it was built: rebuild it with 'sapnet-export trt'")
    return data


def runtime_mismatches(sidecar: dict, kind: str, version: str, gpu_capability: str | None) -> list[str]:
    """What differs between the sidecar and this runtime, one sentence each (empty when compatible).

    Compared: builder kind (a TensorRT engine does not load in TensorRT-RTX or the reverse), the exact
    version (engines are tied to the version that built them), and, when ``gpu_capability`` is known,
    whether the engine was compiled for it.
    """
    built = sidecar["builder"]
    differences = []
    if built["kind"] != kind:
        differences.append(f"built by {built['name']}, this runtime is {kind}")
    elif built["version"] != version:
        differences.append(f"built by {built['name']} {built['version']}, this runtime is "
                           f"{built['name']} {version}")
    targets = sidecar["target"]["compute_capabilities"]
    if gpu_capability is not None and gpu_capability not in targets:
        differences.append(f"compiled for {', '.join(targets)}, this GPU is {gpu_capability}")
    return differences


def check_runtime(engine: str | os.PathLike, sidecar: dict, kind: str, version: str,
                  gpu_capability: str | None) -> None:
    """Refuse to load ``engine`` when :func:`runtime_mismatches` finds a difference.

    Raises:
        InputError: saying what differs and the command that rebuilds the engine here.
    """
    differences = runtime_mismatches(sidecar, kind, version, gpu_capability)
    if differences:
        target = f" --target {gpu_capability}" if gpu_capability and kind == "tensorrt-rtx" else ""
        source = sidecar["files"].get("onnx") or "MODEL.onnx"
        raise InputError(f"{engine}: cannot load: {'; '.join(differences)}. Rebuild it on this machine: "
                         f"sapnet-export trt --onnx {source}{target} -o {engine} --force")
