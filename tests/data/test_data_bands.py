"""Images of other channels than RGB: reading files of bands, their statistics, their pictures, and
the training pipeline and datasets on them."""

from __future__ import annotations

import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import segnext.data.bands
from segnext.data import DataError, TrainTransform, build_dataset, display_rgb, read_bands, read_image
from segnext.data.bands import channel_statistics, decode_bands, read_image_or_bands
from segnext.data.io import decode_image
from segnext.data.resize import resize_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_])
def test_an_array_of_bands_is_read_as_float32_in_its_own_units(tmp_path, dtype):
    bands = (np.random.default_rng(0).uniform(0, 3000, (7, 9, 5)) > 1500 if dtype == np.bool_ else
             np.random.default_rng(0).uniform(0, 200, (7, 9, 5))).astype(dtype)
    np.save(tmp_path / "b.npy", bands)
    read = read_bands(tmp_path / "b.npy", 5)
    assert read.dtype == np.float32 and read.shape == (7, 9, 5)
    assert np.array_equal(read, bands.astype(np.float32))
    assert read_bands(tmp_path / "b.npy").shape == (7, 9, 5)  # no channels given: the file's own


def test_one_band_may_be_stored_without_its_axis(tmp_path):
    np.save(tmp_path / "elevation.npy", np.arange(12, dtype=np.int16).reshape(3, 4) - 5)
    read = read_bands(tmp_path / "elevation.npy", 1)
    assert read.shape == (3, 4, 1) and read[0, 0, 0] == -5


def test_files_of_other_bands_than_the_model_takes_are_named_with_what_to_do(tmp_path):
    np.save(tmp_path / "three.npy", np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(DataError, match="three.npy: holds 3 channel\\(s\\), and the model takes 4 \\(in_channels\\)"):
        read_bands(tmp_path / "three.npy", 4)
    np.save(tmp_path / "planar.npy", np.zeros((4, 6, 8), np.uint8))
    with pytest.raises(DataError, match="planar.npy: its 4 channels come first \\(\\(4, 6, 8\\)\\); store the image as "
                                        "\\(height, width, channels\\)"):
        read_bands(tmp_path / "planar.npy", 4)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="objects.npy: holds Python objects \\(a pickle\\), which are never loaded"):
        read_bands(tmp_path / "objects.npy", 4)
    (tmp_path / "cut.npy").write_bytes(np.lib.format.MAGIC_PREFIX + b"\x01\x00")
    with pytest.raises(DataError, match="cut.npy: cannot read this array"):
        read_bands(tmp_path / "cut.npy", 4)
    with pytest.raises(FileNotFoundError, match="missing.npy: no such file"):
        read_bands(tmp_path / "missing.npy", 4)
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(DataError, match="text.npy: values of type <U1; image bands must be integers, floats or bools"):
        read_bands(tmp_path / "text.npy", 2)


def test_an_array_given_to_an_rgb_reader_says_where_arrays_are_read(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((6, 8, 4), np.uint16))
    with pytest.raises(DataError, match="b.npy: a NumPy array, not an image file, read here as RGB; arrays of bands "
                                        "are the images of models of other input channels"):
        read_image(tmp_path / "b.npy")


def test_image_files_give_their_own_bands_at_full_depth(tmp_path):
    """RGBA (RGB + near infrared) as four bands, 16-bit grey as one band of 16 bits, the EXIF
    orientation applied; a palette image holds no bands."""
    rgba = np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgbn.png")
    assert np.array_equal(read_bands(tmp_path / "rgbn.png", 4), rgba.astype(np.float32))
    grey = np.array([[0, 300], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "depth.png")
    assert read_bands(tmp_path / "depth.png", 1)[:, :, 0].tolist() == [[0, 300], [40000, 65535]]
    rotated = Image.fromarray(rgba, "RGBA")
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    rotated.save(tmp_path / "turned.png", exif=exif)
    assert read_bands(tmp_path / "turned.png", 4).shape == (7, 5, 4)
    Image.fromarray(rgba[:, :, 0]).convert("P").save(tmp_path / "palette.png")
    with pytest.raises(DataError, match="palette.png: a palette image holds colour indices, not bands"):
        read_bands(tmp_path / "palette.png", 1)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: cannot read this file"):
        read_bands(tmp_path / "broken.png", 4)


def _png_with_orientation(png: bytes, orientation: int) -> bytes:
    """The PNG `png` with an eXIf chunk of this EXIF orientation after its header (IHDR)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    chunk = len(data).to_bytes(4, "big") + b"eXIf" + data + zlib.crc32(b"eXIf" + data).to_bytes(4, "big")
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, IHDR's length, type, 13 bytes and CRC
    return png[:end_of_header] + chunk + png[end_of_header:]


def test_colour_pngs_of_16_bits_keep_all_their_bits_upright(tmp_path, monkeypatch):
    """Pillow decodes 16-bit RGB(A) to 8 bits a sample (12-bit data would become 0..15): such a PNG
    is read with OpenCV, in RGB order, its EXIF orientation applied as Pillow applies it; without
    OpenCV (or a 16-bit colour TIFF without tifffile) the error says what to install."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install opencv-python-headless): "
                                            "16-bit colour PNGs untested")
    rng = np.random.default_rng(4)
    for channels in (3, 4):
        bands = rng.integers(0, 4096, (5, 7, channels), dtype=np.uint16)
        png = cv2.imencode(".png", bands[:, :, [2, 1, 0, 3][:channels]])[1].tobytes()
        (tmp_path / "wide.png").write_bytes(png)
        assert np.array_equal(read_bands(tmp_path / "wide.png", channels), bands.astype(np.float32))
        assert np.array_equal(decode_bands(png, channels), bands.astype(np.float32))
    for orientation in range(1, 9):  # each of EXIF's turns, against Pillow's on the 8-bit picture
        (tmp_path / "turned.png").write_bytes(_png_with_orientation(png, orientation))
        picture = Image.fromarray((bands >> 4).astype(np.uint8), "RGBA")
        exif = picture.getexif()
        exif[0x0112] = orientation
        picture.save(tmp_path / "picture.png", exif=exif)
        upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "picture.png")))
        assert np.array_equal(read_bands(tmp_path / "turned.png", 4).astype(np.uint16) >> 4, upright), orientation

    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    with pytest.raises(DataError, match="wide.png: a PNG of 16-bit colour, which Pillow reads at 8 bits a sample; "
                                        "install OpenCV"):
        read_bands(tmp_path / "wide.png", 4)


def test_a_colour_tiff_of_16_bits_read_without_tifffile_says_to_install_it(tmp_path, monkeypatch):
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed: no 16-bit colour TIFF to write")
    bands = np.random.default_rng(5).integers(0, 4096, (5, 7, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "scene.tif", bands, photometric="rgb")
    assert np.array_equal(read_bands(tmp_path / "scene.tif", 3), bands.astype(np.float32))
    monkeypatch.setattr(segnext.data.bands, "_tifffile", lambda: None)  # Pillow reads it instead
    with pytest.raises(DataError, match="scene.tif: a TIFF of 16-bit colour, which Pillow reads at 8 bits a sample; "
                                        "install tifffile"):
        read_bands(tmp_path / "scene.tif", 3)


def test_a_tiff_of_bands_read_as_rgb_is_refused_saying_how_to_read_it(tmp_path):
    """Three grey 16-bit samples a pixel, interleaved or planar (as GDAL writes bands), are no picture
    Pillow reads: the error says to read them as bands, which reads them right; so for an upload."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed: no such TIFF to write")
    colour = np.random.default_rng(6).integers(0, 4096, (6, 9, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "contig.tif", colour, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(colour, -1, 0), photometric="minisblack",
                     planarconfig="separate")
    for name in ("contig.tif", "planar.tif"):
        with pytest.raises(DataError, match=f"{name}: cannot read this file .*; re-download or re-convert it; a TIFF "
                                            f"of bands \\(16-bit colour, other channels than RGB\\) is read as bands: "
                                            f"--bands or --channels N"):
            read_image(tmp_path / name)
        with pytest.raises(DataError, match="re-convert it; a TIFF of bands"):  # an upload: told by its first bytes
            decode_image((tmp_path / name).read_bytes())
        assert np.array_equal(read_bands(tmp_path / name, 3), colour.astype(np.float32))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="re-convert it$"):  # no word of bands for what is not a TIFF
        read_image(tmp_path / "broken.png")


def test_a_tiff_of_many_bands_is_read_interleaved_planar_or_a_page_a_band(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): multi-band "
                                                      "TIFFs untested")
    bands = np.random.default_rng(2).integers(0, 10000, (6, 9, 7), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "contig.tif", bands, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(bands, -1, 0), photometric="minisblack",
                     planarconfig="separate")
    tifffile.imwrite(tmp_path / "pages.tif", np.moveaxis(bands, -1, 0), photometric="minisblack")  # a page a band
    for name in ("contig.tif", "planar.tif", "pages.tif"):
        assert np.array_equal(read_bands(tmp_path / name, 7), bands.astype(np.float32)), name
        assert read_image_or_bands(tmp_path / name).shape[:2] == (6, 9), name  # what `segnext data check` reads
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    with pytest.raises(DataError, match="broken.tif: cannot read this TIFF file"):
        read_bands(tmp_path / "broken.tif", 7)


def picture_at_once(bands):
    """The picture of `display_rgb` written plainly: each band's percentiles by np.percentile, the
    whole band stretched at once."""
    shown = bands[:, :, :3].astype(np.float32)
    picture = np.empty(shown.shape, dtype=np.uint8)
    for band in range(3):
        values = shown[:, :, band]
        low, high = np.percentile(values[np.isfinite(values)], (2, 98))
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        picture[:, :, band] = np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0) + 0.5, 0, 255)
    return picture


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.float32])
def test_the_picture_made_in_bands_of_rows_is_the_picture_made_at_once(monkeypatch, dtype):
    """Integer percentiles from a histogram (ties everywhere in the second case) and the stretch in
    bands of rows give the very pixels of the plain computation."""
    from segnext.data import bands as bands_module

    monkeypatch.setattr(bands_module, "STATISTICS_CHUNK", 7 * 61)  # bands of 7 rows
    rng = np.random.default_rng(5)
    low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else (-2.0, 3.0)
    spread = rng.uniform(low, high, (45, 61, 4)).astype(dtype)
    few = rng.integers(0, 4, (45, 61, 4)).astype(dtype)
    for image in (spread, few):
        assert np.array_equal(display_rgb(image), picture_at_once(image))


def test_the_picture_of_bands_stretches_the_first_three_between_their_percentiles():
    rng = np.random.default_rng(3)
    bands = rng.uniform(0, 1000, (50, 60, 5)).astype(np.float32)
    bands[:, :, 1] *= 0.01  # another scale: each band is stretched on its own
    picture = display_rgb(bands)
    assert picture.dtype == np.uint8 and picture.shape == (50, 60, 3)
    for band in range(3):
        low, high = np.percentile(bands[:, :, band], (2, 98))
        expected = np.clip((bands[:, :, band] - low) * (255 / (high - low)) + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(picture[:, :, band].astype(int) - expected).max() <= 1
        assert (picture[:, :, band] == 0).mean() == pytest.approx(0.02, abs=0.01)
        assert (picture[:, :, band] == 255).mean() == pytest.approx(0.02, abs=0.01)
    grey = display_rgb(bands[:, :, 3])  # one band: grey
    assert np.array_equal(grey[:, :, 0], grey[:, :, 2]) and grey.max() == 255
    flat = display_rgb(np.full((4, 4, 2), 7.0))  # one value everywhere: black, not a division by zero
    assert flat.shape == (4, 4, 3) and not flat.any()
    with_nan = bands[:, :, :3].copy()
    with_nan[0, 0] = np.nan
    assert display_rgb(with_nan)[0, 0].tolist() == [0, 0, 0]
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert display_rgb(rgb) is rgb  # an 8-bit RGB image is its own picture


def test_channel_statistics_are_the_mean_and_std_over_every_pixel(monkeypatch):
    from segnext.data import bands

    rng = np.random.default_rng(4)
    images = [rng.normal(loc=(10, 200, 3000), scale=(1, 20, 300), size=(h, w, 3)) for h, w in ((8, 9), (20, 5))]
    stats = channel_statistics(iter(images))
    pixels = np.concatenate([image.reshape(-1, 3) for image in images])
    assert np.allclose(stats["mean"], pixels.mean(0)) and np.allclose(stats["std"], pixels.std(0))
    assert stats["images"] == 2 and stats["pixels"] == len(pixels)
    assert channel_statistics(images, max_images=1)["images"] == 1
    monkeypatch.setattr(bands, "STATISTICS_CHUNK", 7)  # summed a few pixels at a time: the same numbers
    chunked = channel_statistics([image.astype(np.float32) for image in images])
    assert np.allclose(chunked["mean"], pixels.mean(0), rtol=1e-6) and np.allclose(chunked["std"], pixels.std(0),
                                                                                   rtol=1e-5)
    with_nan = images[0].copy()
    with_nan[0, 0, 1] = np.nan  # no data: left out of its channel alone
    assert channel_statistics([with_nan])["mean"][1] == pytest.approx(np.delete(images[0][:, :, 1].ravel(), 0).mean())
    with pytest.raises(ValueError, match="image 1 has 2 channels and the ones before it 3"):
        channel_statistics([images[0], images[1][:, :, :2]])
    with pytest.raises(ValueError, match="no images"):
        channel_statistics([])


def test_resizing_keeps_the_axis_of_one_channel():
    image = np.random.default_rng(5).uniform(0, 1, (10, 12, 1)).astype(np.float32)
    assert resize_image(image, 6, 5).shape == (5, 6, 1)


def _folder_of_bands(root, channels: int, names=("a", "b", "c")):
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text('{"classes": ["field", "forest", "water"]}')
    rng = np.random.default_rng(6)
    for name in names:
        np.save(root / "images" / "train" / f"{name}.npy", rng.integers(0, 5000, (40, 48, channels), dtype=np.uint16))
        Image.fromarray(rng.integers(0, 3, (40, 48), dtype=np.uint8)).save(root / "labels" / "train" / f"{name}.png")
    return root


def test_a_folder_dataset_of_arrays_reads_bands_for_a_model_of_their_channels(tmp_path):
    root = _folder_of_bands(tmp_path / "fields", 6)
    dataset = build_dataset("folder", root, "train", channels=6)
    sample = dataset[0]
    assert dataset.channels == 6 and len(dataset) == 3
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (40, 48, 6)
    assert np.array_equal(sample["image"], np.load(root / "images" / "train" / "a.npy").astype(np.float32))
    with pytest.raises(DataError, match="folder train dataset index 0: .*a.npy: a NumPy array, not an image file"):
        build_dataset("folder", root, "train")[0]
    with pytest.raises(DataError, match="a.npy: holds 6 channel\\(s\\), and the model takes 4"):
        build_dataset("folder", root, "train", channels=4)[0]


def test_the_training_pipeline_takes_bands_as_it_takes_rgb(tmp_path):
    """Resize, crop, flip and normalisation as for RGB (the same random choices), one mean and std per
    band, zero padding of every band; the RGB photometric distortion refused."""
    root = _folder_of_bands(tmp_path / "fields", 4)
    mean, std = (1000.0, 2000.0, 3000.0, 4000.0), (100.0, 200.0, 300.0, 400.0)
    transform = TrainTransform(crop_size=(64, 64), img_scale=(60, 40), ratio_range=(0.5, 2.0), photometric=False,
                               mean=mean, std=std)
    dataset = build_dataset("folder", root, "train", transform=transform, channels=4)
    sample = dataset[1]
    assert sample["image"].shape == (4, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["label"].shape == (64, 64)
    # The same random stream gives each band what it gives an RGB copy of it (float, unrounded).
    raw = build_dataset("folder", root, "train", channels=4).load(1)
    rng, again = dataset.rng_for(1), dataset.rng_for(1)
    image, label = transform.random_resize(raw["image"], raw["label"], rng)
    image, label = transform.random_crop(image, label, rng)
    image, label = transform.random_flip(image, label, rng)
    expected = transform.normalize_and_pad(image, label)
    assert torch.equal(transform(dict(raw), again)["image"], expected["image"])
    height, width = label.shape
    assert torch.equal(sample["image"], expected["image"]) and torch.equal(sample["label"], expected["label"])
    assert not sample["image"][:, height:, :].any() and not sample["image"][:, :, width:].any()  # padding: zeros
    band = (image[:, :, 3] - mean[3]) / std[3]
    assert torch.allclose(sample["image"][3, :height, :width], torch.from_numpy(band.astype(np.float32)), atol=1e-5)
    with pytest.raises(ValueError, match="the photometric distortion .* is for RGB images, and these have 4 channels"):
        TrainTransform(mean=mean, std=std)
    with pytest.raises(ValueError, match="mean and std need one value per image channel each, got 4 and 3"):
        TrainTransform(mean=mean, std=std[:3], photometric=False)


def test_bytes_of_bands_are_read_by_their_kind_and_refused_over_a_pixel_limit_before_decoding():
    import io

    from segnext.data.bands import PixelLimitError, decode_bands

    bands = np.random.default_rng(9).integers(0, 900, (30, 20, 4)).astype(np.uint16)
    npy, png = io.BytesIO(), io.BytesIO()
    np.save(npy, bands)
    Image.fromarray(bands[:, :, :4].astype(np.uint8), "RGBA").save(png, format="PNG")
    assert np.array_equal(decode_bands(npy.getvalue(), 4), bands.astype(np.float32))
    assert decode_bands(png.getvalue(), 4, name="upload").shape == (30, 20, 4)
    for data in (npy.getvalue(), png.getvalue()):
        with pytest.raises(PixelLimitError, match="upload is 20x30 = 600 pixels, over the limit of 599"):
            decode_bands(data, 4, name="upload", max_pixels=599)
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed: TIFF bytes untested")
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, bands, photometric="minisblack", planarconfig="contig")
    assert np.array_equal(decode_bands(tiff.getvalue(), 4), bands.astype(np.float32))
    with pytest.raises(PixelLimitError, match="over the limit of 599"):
        decode_bands(tiff.getvalue(), 4, max_pixels=599)


def test_data_check_names_images_of_other_bands(tmp_path, capsys):
    from segnext.cli.main import main

    root = _folder_of_bands(tmp_path / "fields", 4)
    assert main(["data", "check", "folder", str(root), "--split", "train", "--channels", "4", "--no-frequencies",
                 "--workers", "0"]) == 0
    np.save(root / "images" / "train" / "b.npy", np.zeros((40, 48, 3), np.uint16))
    capsys.readouterr()
    assert main(["data", "check", "folder", str(root), "--split", "train", "--no-frequencies", "--workers", "0"]) == 1
    assert (f"folder train: the images hold different numbers of channels: 1 image of 3 (e.g. "
            f"{root / 'images' / 'train' / 'b.npy'}) and 2 images of 4 (e.g. {root / 'images' / 'train' / 'a.npy'}); "
            f"a model takes one") in capsys.readouterr().out
    assert main(["data", "check", "folder", str(root), "--split", "train", "--channels", "4", "--no-frequencies",
                 "--workers", "0"]) == 1
    assert "b.npy: holds 3 channel(s), and the model takes 4 (in_channels)" in capsys.readouterr().out


def test_the_channel_statistics_of_a_tiff_scene_are_those_of_its_pixels(tmp_path, monkeypatch, capsys):
    """channel_statistics of a TiffScene (read a band of rows at a time, NaN left out) are those of its
    array; `data stats` measures TIFF scenes so, without reading them whole."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import json

    from segnext.cli.main import main
    from segnext.data import open_tiff_scene
    from segnext.data.bands import channel_statistics

    monkeypatch.setattr(segnext.data.bands, "STATISTICS_CHUNK", 500)  # bands of 5 rows
    rng = np.random.default_rng(0)
    image = rng.normal((100.0, 2000.0, 5.0), (10.0, 300.0, 1.0), (60, 100, 3)).astype(np.float32)
    image[7, 3:9, 1] = np.nan
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig", tile=(16, 32))
    from_scene = channel_statistics([open_tiff_scene(tmp_path / "scene.tif")])
    from_array = channel_statistics([image])
    assert from_scene["pixels"] == from_array["pixels"] == 6000
    assert np.allclose(from_scene["mean"], from_array["mean"], rtol=1e-12)
    assert np.allclose(from_scene["std"], from_array["std"], rtol=1e-9)
    assert np.allclose(from_array["mean"], np.nanmean(image.astype(np.float64).reshape(-1, 3), 0))

    root = tmp_path / "fields"
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "water"]}))
    (tmp_path / "scene.tif").rename(root / "images/train/scene.tif")
    Image.fromarray(np.zeros((60, 100), np.uint8)).save(root / "labels/train/scene.png")
    import segnext.data.datasets as datasets

    monkeypatch.setattr(datasets, "read_bands", lambda *args, **kwargs: pytest.fail("read whole"))
    assert main(["data", "stats", "folder", str(root), "--channels", "3", "--bands"]) == 0
    printed = capsys.readouterr().out
    mean = json.loads(printed.split("data.mean=")[1].split(" data.std=")[0])
    assert np.allclose(mean, np.round(from_array["mean"], 4))


def test_data_stats_leaves_out_where_a_scene_holds_no_data(tmp_path, capsys):
    """A satellite scene of float bands whose borders hold its "no data" value (-9999) and an RGBA
    orthophoto (alpha 0 outside): `data stats` measures their pixels with data alone; channel_statistics
    takes the masks beside the images."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import json

    from segnext.cli.main import main

    rng = np.random.default_rng(7)
    bands = rng.normal((500.0, 900.0, 2000.0, 40.0), (50.0, 90.0, 200.0, 4.0), (50, 60, 4)).astype(np.float32)
    outside = np.zeros((50, 60), dtype=bool)
    outside[:, 45:] = outside[:6] = True
    bands[outside] = -9999.0
    root = tmp_path / "scenes"
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["land", "water"]}))
    tifffile.imwrite(root / "images/train/s2.tif", bands, photometric="minisblack", planarconfig="contig",
                     extratags=[(42113, "s", 0, "-9999", True)])
    Image.fromarray(np.zeros((50, 60), np.uint8)).save(root / "labels/train/s2.png")
    assert main(["data", "stats", "folder", str(root), "--channels", "4"]) == 0
    captured = capsys.readouterr()
    assert "1 of them hold no data in places" in captured.err
    mean = json.loads(captured.out.split("data.mean=")[1].split(" data.std=")[0])
    inside = bands[~outside].astype(np.float64)
    assert np.allclose(mean, np.round(inside.mean(0), 4)) and f"over {len(inside):,} pixels" in captured.out
    assert "data.nodata=-9999" in captured.out  # the value the scene declares, for training to read as NaN

    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[20:] = 0
    rgb[20:] = 0
    tifffile.imwrite(tmp_path / "ortho.tif", np.dstack([rgb, alpha]), photometric="rgb", extrasamples=[2])
    from segnext.data.geotiff import no_data_of

    stats = channel_statistics([rgb], no_data=[no_data_of(tmp_path / "ortho.tif")])
    assert np.allclose(stats["mean"], rgb[:20].reshape(-1, 3).mean(0)) and stats["pixels"] == 20 * 40
    with pytest.raises(ValueError, match="image 0 is 40x30 and its no-data mask 40x20"):
        channel_statistics([rgb], no_data=[alpha[:20] == 0])
