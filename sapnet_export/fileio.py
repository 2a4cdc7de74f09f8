"""Atomic file output, the output-path check every writing command runs first, JSON reports and hashing.

Promises (docs/reliability.md):

- :func:`check_output` refuses, before any work, an output path that is a directory (where a file is
  written) or a file (where a folder is written), whose parent is a file, whose folder is not writable,
  or that exists without ``--force``: an :class:`~sapnet_export.errors.InputError` (exit 2) naming the
  path and the reason.
- :func:`atomic_output` / :func:`atomic_outputs` write temporaries beside the destinations and rename
  them into place only when the whole block succeeded; a model and its companions (report, sidecar)
  land together or not at all.
- A process killed mid-write (SIGKILL) may leave a hidden temporary ``.NAME.<pid>.<random>.tmp``
  beside the destination, never a file at it; the next check or write into that folder removes the
  temporaries of this pattern whose process is gone (:func:`clean_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import InputError

#: Temporaries of :func:`atomic_output`: ``.<destination name>.<writer pid>.<8 hex>.tmp`` (and
#: ``...bak.tmp`` for a replaced file kept aside until its replacement has landed).
TEMPORARY_PATTERN = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}(\.bak)?\.tmp$")


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Return the lowercase hex sha256 of the file at ``path`` (read in ``chunk_bytes`` pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (or ``path`` itself) that exists."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: its target's folder is what matters, report the link
            return probe
        probe = probe.parent
    return probe


def check_output(path: str | os.PathLike, *, force: bool = True, kind: str = "file",
                 option: str | None = None) -> Path:
    """Check that ``path`` can be written, before any work: the one output check of every command.

    Args:
        path: the destination (a file, or a folder when ``kind`` is ``"folder"``).
        force: when False, an existing destination is refused (``--force`` replaces it). An existing
            folder with ``kind="folder"`` is refused only when it is not empty.
        kind: ``"file"`` (a model, a report, a video) or ``"folder"`` (a set of files written into it).
        option: the option that named the path (``--json``...), for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Stale temporaries of dead writers beside it are removed.

    Raises:
        InputError: the path is a directory (``kind="file"``) or a file (``kind="folder"``), an
            ancestor is a file, the nearest existing folder is not writable, or it exists without
            ``force``; the message names the path and the reason.
    """
    final = Path(path)
    label = f"{option} {final}" if option else str(final)
    if kind == "file" and final.is_dir():
        raise InputError(f"{label}: is a directory; give a file name (e.g. {final / 'out'}{final.suffix})")
    if kind == "folder" and final.exists() and not final.is_dir():
        raise InputError(f"{label}: is a file, not a folder; give a folder path")
    ancestor = _existing_ancestor(final if kind == "folder" else final.parent)
    if not ancestor.is_dir():
        raise InputError(f"{label}: cannot be created: {ancestor} is a file, not a folder")
    _probe_writable(ancestor, label)
    if not force and final.exists() and (kind == "file" or any(final.iterdir())):
        raise InputError(f"{label}: already exists; pass --force to replace it")
    clean_stale_temporaries(final.parent)
    return final


def _probe_writable(folder: Path, label: str) -> None:
    """Create and remove a temporary in ``folder`` (os.access says yes to root on read-only or
    special file systems; a real creation does not)."""
    try:
        probe = temporary_path(folder / "probe")
    except InputError as exc:
        reason = str(exc).rpartition(": ")[2]
        raise InputError(f"{label}: cannot be written: folder {folder} is not writable ({reason})") from None
    probe.unlink(missing_ok=True)


def check_outputs(paths: Sequence[str | os.PathLike | None], *, force: bool = True) -> None:
    """:func:`check_output` on each path that is not None (a model and its companions, checked
    together before any work)."""
    for path in paths:
        if path is not None:
            check_output(path, force=force)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of :data:`TEMPORARY_PATTERN` in ``folder`` whose writer process is gone
    (killed mid-write); return what was removed. Files of other patterns, and temporaries of a live
    process (a concurrent write), are left alone."""
    removed = []
    folder = Path(folder)
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY_PATTERN.match(entry.name)
        if match and int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    return removed


def temporary_path(final: str | os.PathLike, *, folder: bool = False, suffix: str = ".tmp") -> Path:
    """Create an empty temporary file (or folder) beside ``final``, named by :data:`TEMPORARY_PATTERN`
    (so a killed writer's leftovers are cleaned on the next run), and return its path. The caller
    renames it onto ``final`` or removes it.

    Raises:
        InputError: it cannot be created (the folder is not writable, the disk is full...).
    """
    final = Path(final)
    while True:
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
        try:
            if folder:
                tmp.mkdir()
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{final}: cannot be written: {exc.strerror}") from exc
        return tmp



@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike], *, force: bool = True) -> Iterator[list[Path]]:
    """Yield temporaries beside each of ``paths``; when the block succeeds, rename them all into place.

    All destinations are checked first (:func:`check_output`). Files being replaced are moved aside
    before the renames and put back if one fails, so the group lands together or not at all; on any
    failure every temporary is removed.

    Raises:
        InputError: a destination fails :func:`check_output`, or its folder cannot be created.
    """
    finals = [Path(p) for p in paths]
    for final in finals:
        check_output(final, force=force)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{final.parent}: cannot create the output folder: {exc.strerror}") from exc
    temps: list[Path] = []
    try:
        temps.extend(temporary_path(final) for final in finals)
        yield temps
        _land(temps, finals)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _land(temps: list[Path], finals: list[Path]) -> None:
    """Rename ``temps`` onto ``finals``: existing finals aside first, restored if a rename fails."""
    aside: list[tuple[Path, Path]] = []
    landed: list[Path] = []
    try:
        for final in finals:
            if final.exists() or final.is_symlink():
                backup = temporary_path(final, suffix=".bak.tmp")
                os.replace(final, backup)
                aside.append((backup, final))
        for tmp, final in zip(temps, finals):
            os.replace(tmp, final)
            landed.append(final)
    except OSError as exc:
        for final in landed:
            final.unlink(missing_ok=True)
        for backup, final in aside:
            with contextlib.suppress(OSError):
                os.replace(backup, final)
        raise InputError(f"{finals[len(landed)]}: cannot be written: {exc.strerror}; nothing was "
                         "replaced") from exc
    for backup, _ in aside:
        backup.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary (``.NAME.<pid>.<random>.tmp``) lives in the destination folder, so the rename is
    atomic on POSIX, and is removed if the block raises: a failed write never leaves a half-written
    or stale file. One file of :func:`atomic_outputs`.

    Args:
        path: the final destination; its parent folder is created when missing.
        force: when False and ``path`` exists, raise before anything is written.

    Raises:
        InputError: ``path`` fails :func:`check_output` (a directory, exists without ``force``,
            unwritable folder) or its folder cannot be created.
    """
    with atomic_outputs([path], force=force) as (tmp,):
        yield tmp


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
