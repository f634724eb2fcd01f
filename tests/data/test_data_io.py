"""read_image / read_label: every common image mode becomes RGB uint8 the same way (from a file or
its bytes); labels are indices."""

from __future__ import annotations

import gc
import io

import numpy as np
import pytest
from PIL import Image

from segnext.data import DataError, read_image, read_label
from segnext.data.io import decode_image


def _pattern(height=6, width=8):
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.arange(width)[None, :] * 30
    rgb[..., 1] = np.arange(height)[:, None] * 40
    rgb[..., 2] = 200
    return rgb


def test_rgb_png_roundtrip(tmp_path):
    rgb = _pattern()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_is_replicated(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgba = np.dstack([_pattern(), np.zeros((6, 8), np.uint8)])  # fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")  # (H, W, 4) uint8 is RGBA
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), _pattern())


def test_palette_image_gives_its_colours(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    image = Image.frombytes("P", (2, 2), indices.tobytes())
    image.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 759)
    image.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out[0, 1], [40, 50, 60])
    np.testing.assert_array_equal(out[1, 0], [70, 80, 90])


def test_16bit_grayscale_keeps_the_top_byte(tmp_path):
    values = np.array([[0, 255, 256, 65535], [4660, 32768, 1000, 512]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as saved:
        assert saved.mode.startswith("I")
    out = read_image(tmp_path / "d.png")
    np.testing.assert_array_equal(out[..., 0], (values >> 8).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 2], (values >> 8).astype(np.uint8))


def test_16bit_rgb_png(tmp_path):
    import cv2

    rgb16 = (_pattern().astype(np.uint16) << 8) | 0x7F
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), _pattern())


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red in CMYK
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (6, 8, 3)
    assert out[..., 0].min() > 200 and out[..., 1].max() < 60 and out[..., 2].max() < 60


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((4, 10, 3), dtype=np.uint8)  # wide image, left half white
    rgb[:, :5] = 255
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (10, 4, 3)  # displayed upright: portrait
    assert out[:4].mean() > 200 and out[-4:].mean() < 50  # left half went to the top


# A file left open by a failed read (a server reads many bad uploads) fails the test.
@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_truncated_and_garbage_files_raise_naming_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="junk.png"):
        read_label(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(IsADirectoryError, match="a folder, not an image file; pass its files one by one"):
        read_image(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such file \(a wildcard pattern: pass the files it matches"):
        read_image(tmp_path / "*.png")
    with pytest.raises(DataError, match="upload.jpg: cannot read this file"):
        decode_image(b"not an image at all", name="upload.jpg")
    gc.collect()  # where a file the failed reads left open would warn


def test_the_bytes_of_an_image_file_read_as_the_file(tmp_path):
    """What a web service receives: the file's bytes, or a file object."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(_pattern(12, 16)).save(path, quality=95)
    expected = read_image(path)
    data = path.read_bytes()
    for source in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        assert np.array_equal(decode_image(source), expected)
    with open(path, "rb") as file:
        assert np.array_equal(decode_image(file), expected)


def test_palettised_label_reads_indices_not_colours(tmp_path):
    indices = np.array([[0, 15, 255], [3, 3, 0]], dtype=np.uint8)
    image = Image.frombytes("P", (3, 2), indices.tobytes())
    image.putpalette([200, 100, 50] * 256)  # every index has the same colour
    image.save(tmp_path / "l.png")
    out = read_label(tmp_path / "l.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, indices)


def test_label_modes(tmp_path):
    gray = np.array([[1, 2], [255, 0]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label(tmp_path / "l.png"), gray)
    Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "gray_as_rgb.png")  # some tools save ids as RGB
    np.testing.assert_array_equal(read_label(tmp_path / "gray_as_rgb.png"), gray)
    Image.fromarray(gray.astype(np.uint16)).save(tmp_path / "l16.png")
    np.testing.assert_array_equal(read_label(tmp_path / "l16.png"), gray)


def test_bad_labels_are_refused_with_advice(tmp_path):
    colour = np.zeros((2, 2, 3), dtype=np.uint8)
    colour[0, 0] = (0, 0, 63)
    Image.fromarray(colour).save(tmp_path / "mask.png")
    with pytest.raises(DataError, match=r"mask\.png.*colour.*`segnext data prepare folder SRC DST`"):
        read_label(tmp_path / "mask.png")
    Image.fromarray(np.array([[300, 1]], dtype=np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big\.png.*300"):
        read_label(tmp_path / "big.png")
