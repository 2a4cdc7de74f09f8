"""Atomic file output, JSON reports and content hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Return the lowercase hex sha256 of the file at ``path`` (read in ``chunk_bytes`` pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file lives in the destination folder (so the rename is atomic on POSIX) and is
    removed if the block raises, so a failed write never leaves a half-written or stale file.

    Args:
        path: the final destination; its parent folder is created when missing.
        force: when False and ``path`` exists, raise before anything is written.

    Raises:
        InputError: ``path`` exists and ``force`` is False, or its folder cannot be created.
    """
    final = Path(path)
    if final.exists() and not force:
        raise InputError(f"{final}: already exists; pass --force to replace it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{final.parent}: cannot create the output folder: {exc.strerror}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the final file the usual mode
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def to_json(payload: dict) -> str:
    """``payload`` as indented JSON text; infinite and NaN floats (an identical output's PSNR) become
    the strings ``"inf"``, ``"-inf"`` and ``"nan"``, which strict JSON parsers accept."""
    return json.dumps(_finite(payload), indent=2) + "\n"


def to_json_line(payload: dict) -> str:
    """``payload`` as one line of JSON (for append-only logs), non-finite floats as in :func:`to_json`."""
    return json.dumps(_finite(payload), separators=(",", ":"))


def write_json(path: str | os.PathLike, payload: dict) -> Path:
    """Write :func:`to_json` of ``payload`` at ``path`` atomically (:func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_text(to_json(payload))
    return Path(path)


def _finite(value):  # noqa: ANN001, ANN202 - recursive JSON cleaning
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
