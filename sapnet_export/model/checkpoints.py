"""Finding, verifying and loading SAPNet checkpoints.

``--weights`` takes a checkpoint path, ``default`` or ``official``. Three checkpoint layouts load:

- the official one, saved from ``nn.DataParallel`` (every key starts with ``module.``);
- a plain state dict with the official parameter names;
- the project's own format, written by :func:`save_checkpoint`: a dict with ``format`` equal to
  :data:`CHECKPOINT_FORMAT`, the ``state_dict``, and metadata (``stages``, ``dilations``,
  ``provenance`` and the ``sha256`` of the state dict).

``default`` (the CLI's default) is the toolkit's own checkpoint, shipped inside the package
(:data:`DEFAULT_WEIGHTS`, under 1 MB): trained by ``sapnet-train`` on synthetic rain over photographs
bundled with scikit-image and matplotlib, so every command runs offline with no download. Its
recipe, data, steps, device and time are in its metadata and in ``training/README.md``.

``official`` is the published checkpoint (Model11, trained on RainTrainH), looked up in this order:
``$SAPNET_WEIGHTS``; the torch hub checkpoint cache (``<torch.hub.get_dir()>/checkpoints``, so
``$TORCH_HOME`` moves it); a download from :data:`OFFICIAL_URL` into that cache. Whatever the source,
its sha256 must equal :data:`OFFICIAL_SHA256`. ``$SAPNET_WEIGHTS_URL`` replaces the download address
(a mirror).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sapnet_export.errors import WeightsError
from sapnet_export.fileio import atomic_output, sha256_file
from .network import OFFICIAL_DILATIONS, OFFICIAL_STAGES, SAPNet

OFFICIAL_URL = (
    "https://github.com/ShenZheng2000/SAPNet-for-image-deraining/raw/main/"
    "logs/SAPNet/Model11/net_latest.pth"
)
OFFICIAL_SHA256 = "807bb16685280a493236f3e5fa804274198044ad838b5cc060bf66af03a259cb"
#: File name in the torch hub cache; the ``-<8 hex>`` suffix is torch hub's hash-prefix convention.
OFFICIAL_CACHE_NAME = f"sapnet_official_model11-{OFFICIAL_SHA256[:8]}.pth"
#: Environment variable that points at a local copy of the published checkpoint.
WEIGHTS_ENV = "SAPNET_WEIGHTS"
#: Environment variable that replaces :data:`OFFICIAL_URL` (a mirror; the sha256 is still checked).
WEIGHTS_URL_ENV = "SAPNET_WEIGHTS_URL"
#: The toolkit's own checkpoint, shipped in the package (``--weights default``).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "sapnet_default.pth"
#: The ``format`` tag of the project's own checkpoints.
CHECKPOINT_FORMAT = "sapnet-export/checkpoint-v1"


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from.

    Attributes:
        name: ``default``, ``official`` or the path as given.
        path: the resolved checkpoint file.
        sha256: hex sha256 of the checkpoint file's bytes.
        source: how it was found: ``path``, ``package`` (``default``), ``$SAPNET_WEIGHTS``,
            ``torch-hub-cache`` or ``download``.
        layout: ``dataparallel``, ``state_dict`` or ``sapnet-export``.
        stages: recurrent stages the weights were trained for.
        dilations: dilations of the five residual blocks.
        metadata: the metadata of a project-format checkpoint (empty for the other layouts).
    """

    name: str
    path: Path
    sha256: str
    source: str
    layout: str
    stages: int = OFFICIAL_STAGES
    dilations: tuple[int, ...] = OFFICIAL_DILATIONS
    metadata: dict[str, Any] = field(default_factory=dict)


def official_cache_path() -> Path:
    """Path of the published checkpoint in the torch hub checkpoint cache (may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_CACHE_NAME


def _verify_official(path: Path, where: str) -> str:
    digest = sha256_file(path)
    if digest != OFFICIAL_SHA256:
        raise WeightsError(
            f"{path} ({where}): sha256 {digest} is not the published SAPNet checkpoint's "
            f"{OFFICIAL_SHA256}; remove or replace the file"
        )
    return digest


def resolve_official(url: str | None = None) -> tuple[Path, str, str]:
    """Find (or download) the published checkpoint and verify its sha256.

    Args:
        url: where to download from when no local copy exists; default ``$SAPNET_WEIGHTS_URL``,
            else :data:`OFFICIAL_URL`.

    Returns:
        ``(path, sha256, source)`` with source ``$SAPNET_WEIGHTS``, ``torch-hub-cache`` or ``download``.

    Raises:
        WeightsError: ``$SAPNET_WEIGHTS`` names a missing file, a file's sha256 differs from
            :data:`OFFICIAL_SHA256`, or no copy is cached and the download fails (offline); the message
            says how to supply the file.
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: ${WEIGHTS_ENV} names a file that does not exist")
        return path, _verify_official(path, f"${WEIGHTS_ENV}"), f"${WEIGHTS_ENV}"
    url = url or os.environ.get(WEIGHTS_URL_ENV) or OFFICIAL_URL
    cached = official_cache_path()
    if cached.is_file():
        return cached, _verify_official(cached, "torch hub cache"), "torch-hub-cache"
    try:
        with atomic_output(cached) as tmp:
            torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=False)
            digest = _verify_official(tmp, f"downloaded from {url}")
    except WeightsError:
        raise
    except Exception as exc:  # urllib raises URLError, OSError, HTTPError, ssl errors...
        raise WeightsError(
            f"cannot download the published SAPNet checkpoint from {url}: {exc}\n"
            f"No cached copy at {cached}. Supply the file (net_latest.pth of the official SAPNet "
            f"repository, sha256 {OFFICIAL_SHA256}) in one of these ways:\n"
            f"  export {WEIGHTS_ENV}=/path/to/net_latest.pth\n"
            f"  cp /path/to/net_latest.pth {cached}\n"
            f"  sapnet-export ... --weights /path/to/net_latest.pth"
        ) from exc
    return cached, digest, "download"


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex sha256 over the names, dtypes, shapes and bytes of a state dict's tensors, in key order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


#: Lines of torch's unpickling errors that advise ``weights_only=False``: unsafe for an untrusted
#: file (it runs arbitrary code), so they are not passed on.
_UNSAFE_HINTS = ("weights_only=False", "weights_only", "torch.serialization.add_safe_globals",
                 "safe_globals", "Check the documentation of torch.load")


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; every failure is a :class:`WeightsError` with a reason."""
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint: empty file (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, BadZipFile, EOFError, RuntimeError...
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()
                 and not any(hint in line for hint in _UNSAFE_HINTS)]
        reason = "; ".join(lines[:2]) or type(exc).__name__
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({size} bytes): "
                           f"{type(exc).__name__}: {reason}") from None


def check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Refuse a state dict holding NaN or infinite values, naming the checkpoint and the tensor.

    Raises:
        WeightsError: a floating-point tensor with a non-finite value (the first one, in key order,
            with how many values are bad).
    """
    for name in sorted(state):
        tensor = state[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(f"{path}: tensor {name} {tuple(tensor.shape)} holds {bad} NaN/Inf "
                               f"value{'s' if bad > 1 else ''}; the checkpoint is damaged or its "
                               "training diverged: use another checkpoint")


def _split_layout(path: Path, obj: Any) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """Return (state dict with official names, layout, metadata) of a loaded checkpoint object."""
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        state, meta = obj.get("state_dict"), {k: v for k, v in obj.items() if k != "state_dict"}
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: {CHECKPOINT_FORMAT} checkpoint without a state_dict")
        expected = meta.get("sha256")
        if expected and state_dict_sha256(state) != expected:
            raise WeightsError(f"{path}: the state dict does not match the sha256 recorded in it "
                               f"({expected}); the file is damaged")
        return state, "sapnet-export", meta
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(f"{path}: not a SAPNet checkpoint (expected a state dict of tensors, "
                           f"a DataParallel state dict or a {CHECKPOINT_FORMAT} file)")
    if all(k.startswith("module.") for k in obj):
        return {k.removeprefix("module."): v for k, v in obj.items()}, "dataparallel", {}
    return dict(obj), "state_dict", {}


def _check_keys(path: Path, model: SAPNet, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                   for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        def listed(title: str, items: list[str]) -> str:
            shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
            return f"\n  {title}: {shown}" if items else ""
        raise WeightsError(
            f"{path}: the checkpoint does not fit the SAPNet derain network"
            + listed("missing keys", missing) + listed("unexpected keys", unexpected)
            + listed("wrong shapes", wrong_shape)
        )


def load_weights(spec: str | os.PathLike = "default") -> tuple[SAPNet, WeightsInfo]:
    """Build the network and load weights into it with ``strict=True``, in eval mode on the CPU.

    Args:
        spec: ``default`` (:data:`DEFAULT_WEIGHTS`), ``official`` (see :func:`resolve_official`) or the
            path of a checkpoint in any of the three layouts of this module's docstring.

    Returns:
        ``(model, info)``: a float32 :class:`~sapnet_export.model.network.SAPNet` and where its weights came from.

    Raises:
        WeightsError: missing file, a directory, an empty or unreadable file, not a state dict,
            keys/shapes that do not fit (the message lists the missing, unexpected and wrongly
            shaped keys), or a tensor holding NaN/Inf (:func:`check_finite`, the one check at load).
    """
    name = str(spec)
    if name == "official":
        path, digest, source = resolve_official()
    elif name == "default":
        path, source = DEFAULT_WEIGHTS, "package"
        if not path.is_file():
            raise WeightsError(f"{path}: the toolkit's default weights are missing from this "
                               "installation; reinstall sapnet-export or use --weights official|PATH")
        digest = sha256_file(path)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            raise WeightsError(f"{path}: is a directory, not a checkpoint file (give the .pth inside "
                               "it, 'default' or 'official')")
        if not path.is_file():
            raise WeightsError(f"{path}: checkpoint file not found (use a path, 'default' or "
                               "'official')")
        digest, source = sha256_file(path), "path"
    state, layout, meta = _split_layout(path, _read_checkpoint(path))
    stages = int(meta.get("stages", OFFICIAL_STAGES))
    dilations = tuple(meta.get("dilations", OFFICIAL_DILATIONS))
    model = SAPNet(stages=stages, dilations=dilations)
    _check_keys(path, model, state)
    check_finite(path, state)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.eval()
    info = WeightsInfo(name=name, path=path, sha256=digest, source=source, layout=layout,
                       stages=stages, dilations=dilations, metadata=meta)
    return model, info


def save_checkpoint(model: SAPNet, path: str | os.PathLike, **metadata: Any) -> Path:
    """Write ``model`` in the project's checkpoint format (atomically) and return the path.

    The file holds ``format``, ``state_dict`` (official names, float32 on the CPU), ``stages``,
    ``dilations``, ``sha256`` (of the state dict, :func:`state_dict_sha256`) and ``metadata`` entries
    given as keyword arguments (e.g. ``provenance={...}``); values must be plain Python types, since
    the file is read back with ``torch.load(weights_only=True)``.
    """
    state = {k: v.detach().cpu().float().clone() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "stages": model.stages,
               "dilations": list(model.dilations), "sha256": state_dict_sha256(state), **metadata,
               "state_dict": state}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
