import pytest

from sapnet_export.errors import InputError
from sapnet_export.shapes import parse_hw, parse_nchw, parse_one_size, parse_sizes, shape_text


def test_parse_hw():  # moved from tests/export/test_onnx_export.py
    assert parse_hw("480x640") == (480, 640)
    for bad in ("480", "0x4", "ax3", "4x5x6"):
        with pytest.raises(InputError, match="expected HxW"):
            parse_hw(bad)


def test_parse_sizes():  # moved from tests/measure/test_latency.py
    assert parse_sizes("321x481, 720x1280") == [(321, 481), (720, 1280)]
    for bad in ("321", "0x10", "axb", "10x10,"):
        with pytest.raises(InputError, match="expected HxW"):
            parse_sizes(bad)


def test_one_size_and_nchw():
    assert parse_one_size("320x480", "--tile") == (320, 480)
    with pytest.raises(InputError, match="--tile '320x480,8x8': expected one HxW"):
        parse_one_size("320x480,8x8", "--tile")
    assert parse_nchw("16x16") == (1, 3, 16, 16)
    assert parse_nchw("2x3x64x80") == (2, 3, 64, 80)
    for bad, why in (("2x4x64x80", "3 channels"), ("1x3x64", "expected NxCxHxW"), ("0x3x8x8", "expected")):
        with pytest.raises(InputError, match=why):
            parse_nchw(bad)
    assert shape_text(parse_nchw("1x3x480x640")) == "1x3x480x640"
