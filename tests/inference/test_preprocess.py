"""Test-time preprocessing: the official keep-ratio resize (mmcv's rounding, SegNeXt's AlignResize)
and normalisation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import segnext.data.bands
from segnext.constants import IMAGENET_MEAN, IMAGENET_STD
from segnext.data import DataError, TiffScene, display_rgb, open_tiff_scene
from segnext.inference import TestConfig, preprocess, resize_for_test, to_tensor
from segnext.inference.preprocess import prepare, read_in_windows


def _image(height, width):
    return np.random.default_rng(height + width).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_keep_ratio_resize_and_size_divisor():
    assert resize_for_test(_image(512, 683), (2048, 512)).shape == (512, 683, 3)
    small = _image(300, 400)
    assert resize_for_test(small, (2048, 512)).shape == (512, 683, 3)
    aligned = resize_for_test(small, (2048, 512), size_divisor=32)
    assert aligned.shape == (512, 704, 3)  # 683 -> resized up to 704, not padded
    assert aligned[:, -8:].sum() > 0  # the right border holds image, not padding
    assert resize_for_test(small, None).shape == (300, 400, 3)
    assert resize_for_test(small, None, ratio=0.5).shape == (150, 200, 3)
    assert resize_for_test(small, (2048, 512), ratio=0.5).shape == (256, 341, 3)


def test_to_tensor_normalises_rgb():
    image = _image(5, 7)
    x = to_tensor(image)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    expected = (image.astype(np.float64) - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_to_tensor_has_standard_channels_last_strides():
    """A permuted HWC array passes PyTorch's channels-last check with a batch stride of 3, and
    oneDNN runs much slower on it: to_tensor gives the standard strides, and a batch of its
    tensors concatenates to the same layout (image i of a batch is laid out as it is alone)."""
    x = to_tensor(_image(6, 9))
    assert x.stride() == (6 * 9 * 3, 1, 9 * 3, 3)
    batch = torch.cat([x, to_tensor(_image(6, 9))])
    assert batch.stride() == (6 * 9 * 3, 1, 9 * 3, 3) and batch[1:2].stride() == x.stride()


def test_bands_are_kept_in_their_own_type_until_a_window_is_normalised(tmp_path):
    """A 16-bit scene at its own size stays uint16 (half of a float32 copy): normalised, it gives the
    float32 copy's numbers exactly (float32 holds every 16-bit value; made float32 in NumPy, which
    PyTorch before 2.3 needs). A resized view is resized from float32, unrounded; a type float32
    cannot hold exactly (int32, float64) is made float32 at once."""
    from segnext.inference import TestConfig, prepare

    colour = np.random.default_rng(0).integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    mean, std = (30000.0, 31000.0, 32000.0), (15000.0, 16000.0, 17000.0)
    assert torch.equal(to_tensor(colour, mean, std), to_tensor(colour.astype(np.float32), mean, std))
    np.save(tmp_path / "scene.npy", colour)
    own_size = TestConfig(img_scale=None, mean=mean, std=std, bands=True)
    for image in (colour, tmp_path / "scene.npy"):
        (view,) = prepare(image, own_size).views
        assert view.dtype == np.uint16 and np.array_equal(view, colour)
    scaled = TestConfig(img_scale=None, scales=(1.0, 0.5), mean=mean, std=std, bands=True)
    same, half = prepare(colour, scaled).views
    assert same.dtype == np.uint16 and half.dtype == np.float32 and half.shape == (15, 20, 3)
    assert np.array_equal(half, resize_for_test(colour.astype(np.float32), None, 0.5))
    (view,) = prepare(colour.astype(np.int32), own_size).views
    assert view.dtype == np.float32


def test_a_large_tiff_scene_tested_at_its_own_size_is_read_in_windows(tmp_path, monkeypatch):
    """A TIFF of more than READ_IN_WINDOWS_ABOVE bytes, tested in sliding windows at its own size (one
    scale), is prepared as a TiffScene; any other test (whole image, resized, several scales), a
    smaller file, another kind of file or a type float32 does not hold reads it whole."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    image = np.random.default_rng(0).integers(0, 4000, (60, 80, 4)).astype(np.uint16)
    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig", tile=(16, 16), compression="zlib")
    slide = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24), flip=True,
                       mean=(500.0,) * 4, std=(200.0,) * 4)
    assert read_in_windows(path, slide) is None  # a small file: read whole
    monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    prepared = prepare(path, slide, keep_image=True)
    assert isinstance(prepared.views[0], TiffScene) and prepared.size == (60, 80)
    assert np.array_equal(prepared.rgb, display_rgb(image))
    assert np.array_equal(np.asarray(prepared.views[0]), image)
    for other in (replace(slide, mode="whole"), replace(slide, scales=(0.5,)), replace(slide, scales=(1.0, 1.5)),
                  replace(slide, img_scale=(40, 30))):
        assert read_in_windows(path, other) is None
        assert all(isinstance(view, np.ndarray) for view in prepare(path, other).views)
    np.save(tmp_path / "scene.npy", image)
    tifffile.imwrite(tmp_path / "wide.tif", image.astype(np.float64), photometric="minisblack", planarconfig="contig")
    for other_file in ("scene.npy", "wide.tif"):
        assert read_in_windows(tmp_path / other_file, slide) is None
    # A TiffScene given is read in windows whatever its size, and whole by a test that needs all of it.
    monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 1 << 62)
    scene = open_tiff_scene(path)
    assert prepare(scene, slide).views[0] is scene
    assert np.array_equal(prepare(scene, replace(slide, mode="whole")).views[0], image)
    with pytest.raises(DataError, match="scene.tif: holds 4 channel\\(s\\), and the model takes 3"):
        prepare(scene, replace(slide, mean=(500.0,) * 3, std=(200.0,) * 3, bands=True))


def test_a_large_rgb_tiff_scene_is_read_in_windows_where_its_pixels_are_the_picture(tmp_path, monkeypatch):
    """For an RGB model: an upright 8-bit RGB TIFF (interleaved or band by band, with an alpha band
    beside its colour, which Pillow drops too) is read in windows, its picture for overlays read
    whole; a TIFF whose picture Pillow makes otherwise (turned by its orientation, grey) or whose
    compression tifffile cannot decode (LZW without imagecodecs) is read whole by `read_image`, as
    before."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from PIL import Image

    from segnext.data import read_image

    monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    slide = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24))
    tifffile.imwrite(tmp_path / "rgb.tif", image, photometric="rgb", tile=(16, 16), compression="zlib")
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(image, -1, 0), photometric="rgb", planarconfig="separate")
    alpha = np.dstack([image, image[:, :, :1]])
    tifffile.imwrite(tmp_path / "alpha.tif", alpha, photometric="rgb", extrasamples=[2])
    tifffile.imwrite(tmp_path / "alpha_planes.tif", np.moveaxis(alpha, -1, 0), photometric="rgb", extrasamples=[2],
                     planarconfig="separate", rowsperstrip=8)
    for name in ("rgb.tif", "planes.tif", "alpha.tif", "alpha_planes.tif"):
        prepared = prepare(tmp_path / name, slide, keep_image=True)
        assert isinstance(prepared.views[0], TiffScene) and np.array_equal(prepared.rgb, image)
        assert np.array_equal(np.asarray(prepared.views[0]), read_image(tmp_path / name))
    tifffile.imwrite(tmp_path / "turned.tif", image, photometric="rgb", extratags=[(274, "H", 1, 3, True)])
    tifffile.imwrite(tmp_path / "grey.tif", image[:, :, 0], photometric="minisblack")
    Image.fromarray(image).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    others = ["turned.tif", "grey.tif"]
    try:
        import imagecodecs  # noqa: F401  (tifffile decodes LZW with it)
    except ImportError:
        others.append("lzw.tif")
    for name in others:
        assert read_in_windows(tmp_path / name, slide) is None, name
        assert np.array_equal(prepare(tmp_path / name, slide, keep_image=True).views[0], read_image(tmp_path / name))


def test_the_units_of_a_scene_read_in_windows_are_told_from_bands_of_its_rows(tmp_path, monkeypatch):
    """normalised_channel_means of a TiffScene: the means of a few bands of rows spread over it, near
    the whole scene's, far from 0 for a scene in other units than the normalisation's."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    image = np.random.default_rng(0).normal((1000, 3000), 100, (400, 50, 2)).astype(np.float32)
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig", rowsperstrip=8)
    monkeypatch.setattr(segnext.data.bands, "STATISTICS_CHUNK", 100)  # bands of 2 rows: 8 read, a strip each
    scene = open_tiff_scene(tmp_path / "scene.tif")
    rows_read = []
    monkeypatch.setattr(scene, "_decode", lambda start, stop, decode=scene._decode: rows_read.append(stop - start)
                        or decode(start, stop))
    sampled = preprocess.normalised_channel_means(scene, (1000.0, 3000.0), (100.0, 100.0))
    assert np.allclose(sampled, preprocess.normalised_channel_means(image, (1000.0, 3000.0), (100.0, 100.0)),
                       atol=0.1)
    assert np.abs(sampled).max() < 0.1 and sum(rows_read) == 8 * 8
    assert np.abs(preprocess.normalised_channel_means(scene, (120.0, 120.0), (60.0, 60.0))).min() > 10


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_nan_in_float_bands_is_the_mean_and_leaves_the_other_pixels_alone(mode):
    """A scene of float bands with NaN where it holds no data: normalised to 0 (the mean), so its
    other pixels get the labels they get with the mean there; without it, one NaN made every logit
    of its window (the decoder's GroupNorm) NaN."""
    import segnext
    from segnext.inference import Segmenter, TestConfig, to_tensor

    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 3, in_channels=4).eval()
    bands = np.random.default_rng(0).normal(100, 20, (96, 128, 4)).astype(np.float32)
    with_nan, filled = bands.copy(), bands.copy()
    with_nan[:, 120:], filled[:, 120:] = np.nan, 100.0
    x = to_tensor(with_nan, (100.0,) * 4, (20.0,) * 4)
    assert torch.isfinite(x).all() and (x[0, :, :, 120:] == 0).all()
    config = TestConfig(img_scale=None, mode=mode, crop_size=(64, 64), stride=(48, 48), mean=(100.0,) * 4,
                        std=(20.0,) * 4)
    segmenter = Segmenter(model, config)
    assert np.array_equal(segmenter.predict(with_nan), segmenter.predict(filled))


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_a_value_of_no_data_is_the_mean_and_leaves_the_other_pixels_alone(mode, tmp_path):
    """TestConfig.nodata (a DEM's -9999 in int16 bands): those samples are 0 once normalised, so the
    other pixels get the labels of the scene with the mean there; the setting travels with the model
    folder and is refused for RGB pictures and for NaN."""
    import segnext
    from segnext.inference import Segmenter, TestConfig, to_tensor

    bands = np.random.default_rng(2).normal(500, 50, (96, 128, 4)).astype(np.int16)
    bands[:, 120:, 3] = -9999  # the elevation band's void
    filled = bands.copy()
    filled[:, 120:, 3] = 500
    x = to_tensor(bands, (500.0,) * 4, (50.0,) * 4, nodata=-9999)
    assert (x[0, 3, :, 120:] == 0).all() and torch.allclose(x[0, :3, :, 120:], to_tensor(bands, (500.0,) * 4,
                                                                                          (50.0,) * 4)[0, :3, :, 120:])
    assert (bands[:, 120:, 3] == -9999).all()  # the caller's array is not written
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 3, in_channels=4).eval()
    config = TestConfig(img_scale=None, mode=mode, crop_size=(64, 64), stride=(48, 48), mean=(500.0,) * 4,
                        std=(50.0,) * 4, nodata=-9999)
    segmenter = Segmenter(model, config)
    assert np.array_equal(segmenter.predict(bands), segmenter.predict(filled))
    without = Segmenter(model, TestConfig(**{**config.to_dict(), "nodata": None}))
    with pytest.warns(UserWarning, match="other units than they were"):  # the -9999 pulls its channel's mean
        assert not np.array_equal(without.predict(bands), segmenter.predict(bands))  # ... and the labels
    model.config.test_settings = config.to_dict()
    segnext.save_model(model, tmp_path / "dem")
    assert Segmenter.from_checkpoint(tmp_path / "dem", device="cpu").test_config.nodata == -9999.0
    with pytest.raises(ValueError, match="nodata marks no data in images read as bands"):
        TestConfig(nodata=0)
    with pytest.raises(ValueError, match="nodata must be the number that marks no data"):
        TestConfig(mean=(1.0,) * 4, std=(1.0,) * 4, nodata=float("nan"))
