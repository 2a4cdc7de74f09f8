"""Engine provenance: the ``OUT.engine.json`` sidecar, its check against the runtime, optimization profiles.

A TensorRT engine runs only on the TensorRT flavour and version that built it, on a GPU it was compiled
for; loading a mismatched engine fails deep inside the runtime ("The engine plan file is not compatible
with this version of TensorRT ... version tag does not match"). The sidecar written beside every engine
records what built it, for what, from what; :func:`check_runtime` compares it with the runtime before
the engine is deserialized and says what differs and how to rebuild.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.fileio import sha256_file

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


def _parse_shape(text: str) -> tuple[int, int, int, int]:
    parts = text.lower().strip().split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) not in (2, 4):
        raise InputError(f"{text!r}: expected NxCxHxW (e.g. 1x3x480x640) or HxW, positive integers")
    dims = [int(p) for p in parts]
    if len(dims) == 2:
        dims = [1, 3, *dims]
    if dims[1] != 3:
        raise InputError(f"{text!r}: SAPNet takes 3 channels (RGB), got {dims[1]}")
    return tuple(dims)  # type: ignore[return-value]


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
    profile = Profile(*(_parse_shape(p) for p in pieces))
    if not all(lo <= mid <= hi for lo, mid, hi in zip(profile.min, profile.opt, profile.max)):
        raise InputError(f"--shapes {text!r}: need min <= opt <= max in every dimension")
    return profile


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
