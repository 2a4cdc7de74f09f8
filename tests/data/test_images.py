import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import need_shared, write_rgb
from sapnet_export.errors import ImageError, InputError
from sapnet_export.data.images import discover_images, read_image, to_uint8, write_png


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".tiff", ".jpeg"])
def test_formats_read_as_float_rgb(tmp_path, suffix):
    path = write_rgb(tmp_path / f"a{suffix}", 12, 20)
    image = read_image(path)
    assert image.shape == (3, 12, 20) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_lossless_png_values(tmp_path):
    path = write_rgb(tmp_path / "a.png", 5, 6)
    expected = np.asarray(Image.open(path)).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(read_image(path), expected, atol=1e-7)


def test_greyscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    Image.fromarray(grey).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.shape == (3, 4, 5)
    np.testing.assert_array_equal(image[0], image[2])
    np.testing.assert_allclose(image[1], grey / 255.0, atol=1e-7)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red stays red
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(image[0], 200 / 255.0, atol=1e-7)
    np.testing.assert_allclose(image[1:], 0.0)


def test_16_bit_greyscale_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(image[0, 0], [0.0, 32768 / 65535, 1.0], atol=1e-6)


def _png_rgb16(path, pixels):
    """Minimal 16-bit RGB PNG writer (Pillow cannot write this mode)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_16_bit_rgb_is_scaled_to_unit_range(tmp_path):
    pixels = np.array([[[65535, 0, 32896], [257 * 100, 65535, 0]]], dtype=np.uint16)
    _png_rgb16(tmp_path / "c16.png", pixels)
    image = read_image(tmp_path / "c16.png")
    np.testing.assert_allclose(image.transpose(1, 2, 0), pixels / 65535.0, atol=1 / 255)


def test_corrupt_and_non_image_files_are_named(tmp_path):
    good = write_rgb(tmp_path / "good.png", 32, 32)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="truncated.png: corrupt or truncated"):
        read_image(truncated)
    with pytest.raises(ImageError, match="notes.png: not an image file"):
        read_image(text)
    with pytest.raises(ImageError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")


def test_write_rounds_and_clips(tmp_path):
    values = np.array([0.5 / 255, 1.49 / 255, 1.51 / 255, -0.2, 1.7, 254.6 / 255], dtype=np.float32)
    image = np.broadcast_to(values, (3, 1, 6))
    path = write_png(tmp_path / "sub" / "o.png", image)
    written = np.asarray(Image.open(path))
    assert written.dtype == np.uint8 and written.shape == (1, 6, 3)
    assert written[0, :, 0].tolist() == [0, 1, 2, 0, 255, 255]
    assert list(path.parent.iterdir()) == [path]


def test_to_uint8_is_rounding_not_truncation():
    assert to_uint8(np.full((3, 1, 1), 0.999 / 255 * 200, dtype=np.float32))[0, 0, 0] == 200


def test_discover_files_and_folders_in_natural_order(tmp_path):
    folder = tmp_path / "frames"
    (folder / "sub").mkdir(parents=True)
    for name in ("10.png", "2.png", "1.jpg", "sub/3.bmp", "notes.txt"):
        (folder / name).write_bytes(b"x")
    single = write_rgb(tmp_path / "one.tif")
    found = discover_images([folder, single])
    assert [str(rel) for _, rel in found] == ["1.jpg", "2.png", "10.png", "sub/3.bmp", "one.tif"]


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder holds no image"):
        discover_images([tmp_path / "empty"])


def test_real_greyscale_photographs_become_rgb():
    folder = need_shared("data/real-rain")
    shapes = {read_image(p).shape for p, _ in discover_images([folder])}
    assert shapes <= {(3, 321, 481), (3, 481, 321)}
