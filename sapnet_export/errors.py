"""Errors the toolkit raises on bad input or failed checks, with the exit code the CLI returns.

Exit codes (the same for every command):
    0: success; 1: a check failed (fidelity below the threshold, some images failed);
    2: usage or input error (missing or malformed file, wrong checkpoint, unreachable weights).
"""

from __future__ import annotations


class SapnetError(Exception):
    """Base class: a message for the user and the CLI exit code (2, usage or input error)."""

    exit_code = 2


class InputError(SapnetError):
    """A file or argument cannot be used: missing, unreadable, malformed or out of range."""


class WeightsError(InputError):
    """A checkpoint cannot be found, fetched, verified or loaded into the network."""


class ImageError(InputError):
    """An image file cannot be decoded; the message names the file and the reason."""


class CheckFailed(SapnetError):
    """A quality or parity check failed (exit code 1); the message says which and by how much."""

    exit_code = 1
