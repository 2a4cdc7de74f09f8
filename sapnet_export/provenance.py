"""The provenance stamp every written artefact carries: the command line that made it and when (UTC).

Written into the ONNX ``metadata_props``, the engine sidecar, the calibration manifest and the bench
log, so each says how to make it again.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path


def command_line() -> str:
    """This process's command line as one shell-quoted string, the program by its file name
    (``sapnet-export onnx --precision fp16 ...``)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-12-01T20:45:17+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stamp(command: str | None = None) -> dict[str, str]:
    """``{"command": ..., "created_utc": ...}``; ``command`` None: this process's
    (:func:`command_line`)."""
    return {"command": command or command_line(), "created_utc": utc_now()}
