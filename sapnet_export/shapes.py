"""Sizes and shapes written on the command line: ``HxW``, ``HxW,HxW``, ``NxCxHxW``.

One parser serves every option that takes a size (``onnx --static``, ``calib build --size``,
``verify/bench --sizes``, ``run --tile``, ``trt --shapes``) and the sizes stored in reports, so they
all accept and refuse the same text.
"""

from __future__ import annotations

from collections.abc import Sequence

from sapnet_export.errors import InputError


def _positive_ints(text: str) -> list[int] | None:
    """``"480x640"`` -> ``[480, 640]``; None unless every ``x``-separated piece is a positive integer."""
    pieces = [p.strip() for p in text.strip().lower().split("x")]
    if not all(p.isdigit() and int(p) > 0 for p in pieces):
        return None
    return [int(p) for p in pieces]


def parse_hw(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``480x640``) into ``(H, W)`` pixels.

    Raises:
        InputError: unless both are positive integers.
    """
    dims = _positive_ints(text)
    if dims is None or len(dims) != 2:
        raise InputError(f"{text!r}: expected HxW with positive integers, e.g. 480x640")
    return dims[0], dims[1]


def parse_sizes(text: str, option: str = "--sizes") -> list[tuple[int, int]]:
    """``321x481,720x1280`` -> ``[(321, 481), (720, 1280)]`` (H, W pixels).

    ``option`` names the command-line option in the error message.

    Raises:
        InputError: an entry is not ``HxW`` with positive integers.
    """
    sizes = []
    for part in text.split(","):
        dims = _positive_ints(part)
        if dims is None or len(dims) != 2:
            raise InputError(f"{option} {text!r}: expected HxW[,HxW...], e.g. 321x481,720x1280")
        sizes.append((dims[0], dims[1]))
    return sizes


def parse_one_size(text: str, option: str) -> tuple[int, int]:
    """One ``HxW`` given to ``option`` (e.g. ``--tile 320x480``) as (H, W).

    Raises:
        InputError: not ``HxW``, or more than one size.
    """
    sizes = parse_sizes(text, option)
    if len(sizes) != 1:
        raise InputError(f"{option} {text!r}: expected one HxW, e.g. 320x480")
    return sizes[0]


def parse_nchw(text: str, channels: int = 3) -> tuple[int, int, int, int]:
    """``NxCxHxW`` (or ``HxW``, meaning ``1xCxHxW``) -> ``(N, C, H, W)``.

    Raises:
        InputError: not 2 or 4 positive integers, or C other than ``channels`` (SAPNet: 3, RGB).
    """
    dims = _positive_ints(text)
    if dims is None or len(dims) not in (2, 4):
        raise InputError(f"{text!r}: expected NxCxHxW (e.g. 1x3x480x640) or HxW, positive integers")
    if len(dims) == 2:
        dims = [1, channels, *dims]
    if dims[1] != channels:
        raise InputError(f"{text!r}: SAPNet takes {channels} channels (RGB), got {dims[1]}")
    return dims[0], dims[1], dims[2], dims[3]


def shape_text(shape: Sequence[int]) -> str:
    """``(1, 3, 480, 640)`` -> ``1x3x480x640`` (the inverse of the parsers above)."""
    return "x".join(str(int(v)) for v in shape)
