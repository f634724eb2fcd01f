"""Segmenter: any image mode and size in, labels at the image's size out."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import segnext
from segnext.data import DataError, default_palette, display_rgb, write_label
from segnext.data.palette import overlay
from segnext.inference import Segmenter, TestConfig, default_test_config, override_test_config, segment, to_rgb_array

SMALL = TestConfig(img_scale=(96, 64))  # fast: every image is resized to at most 96 x 64


@pytest.fixture(scope="module")
def segmenter(checkpoint_path):
    segmenter = Segmenter.from_checkpoint(checkpoint_path)
    segmenter.test_config = SMALL
    return segmenter


def _scene(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    blocks = rng.integers(0, 256, (max(1, height // 8) + 1, max(1, width // 8) + 1, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


def test_defaults_come_from_the_checkpoint(checkpoint_path):
    segmenter = Segmenter.from_checkpoint(checkpoint_path)
    assert isinstance(segmenter.model, segnext.inference.OptimizedSegNeXt)
    assert segmenter.num_classes == 150 and segmenter.class_names[0] == "wall"
    assert segmenter.palette[0] == [120, 120, 120]  # ADE20K's palette, from the checkpoint's meta
    config = segmenter.test_config
    assert (config.img_scale, config.size_divisor, config.mode) == ((2048, 512), 32, "whole")
    cityscapes = default_test_config(19)
    assert (cityscapes.mode, cityscapes.crop_size, cityscapes.stride) == ("slide", (1024, 1024), (768, 768))


def test_path_pil_and_array_give_the_same_labels(segmenter, tmp_path):
    rgb = _scene(45, 70)
    Image.fromarray(rgb).save(tmp_path / "scene.png")
    from_path = segmenter.predict(tmp_path / "scene.png")
    from_pil = segmenter.predict(Image.fromarray(rgb))
    from_array = segmenter.predict(rgb)
    assert from_path.shape == (45, 70) and from_path.dtype == np.uint8
    assert np.array_equal(from_path, from_pil) and np.array_equal(from_path, from_array)
    assert from_array.max() < 150
    data = (tmp_path / "scene.png").read_bytes()  # an upload: the file's bytes, or a file object
    assert np.array_equal(segmenter.predict(data), from_path)
    assert np.array_equal(segmenter.predict(io.BytesIO(data)), from_path)


def test_a_path_under_the_home_directory_is_read(segmenter, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    rgb = _scene(45, 70)
    Image.fromarray(rgb).save(tmp_path / "scene.png")
    assert np.array_equal(segmenter.predict("~/scene.png"), segmenter.predict(rgb))


def test_labels_agree_with_the_eager_model(segmenter, checkpoint_path):
    rgb = _scene(64, 80)
    eager = segnext.create_model(checkpoint=checkpoint_path).eval()
    expected = segment(eager, rgb, SMALL).numpy()
    got = segmenter.predict(rgb)
    assert (got == expected).mean() >= 0.999


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def _exif_rotated_jpeg(path):
    image = Image.fromarray(_scene(40, 60))  # stored 60 wide x 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("kind,expected_shape", [
    ("L", (33, 47)), ("RGBA", (33, 47)), ("P", (33, 47)), ("I;16", (33, 47)), ("CMYK-jpeg", (33, 47)),
    ("exif-rotated-jpeg", (60, 40)), ("1x1", (1, 1)), ("LA", (33, 47)), ("strip", (2, 900)),
])
def test_every_image_mode(segmenter, tmp_path, kind, expected_shape):
    rgb = _scene(33, 47)
    if kind == "L":
        path = _save(Image.fromarray(rgb[:, :, 0]), tmp_path / "gray.png")
    elif kind == "LA":
        path = _save(Image.fromarray(rgb[:, :, 0]).convert("LA"), tmp_path / "gray_alpha.png")
    elif kind == "RGBA":
        path = _save(Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])), tmp_path / "rgba.png")
    elif kind == "P":
        path = _save(Image.fromarray(rgb).quantize(16), tmp_path / "palette.png")
    elif kind == "I;16":
        path = _save(Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), tmp_path / "deep.png")
    elif kind == "CMYK-jpeg":
        path = _save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "cmyk.jpg")
    elif kind == "exif-rotated-jpeg":
        path = _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    elif kind == "strip":  # the keep-ratio resize would round its height to 0
        path = _save(Image.fromarray(np.tile(rgb[:2], (1, 20, 1))[:, :900]), tmp_path / "strip.png")
    else:
        path = _save(Image.fromarray(rgb[:1, :1]), tmp_path / "pixel.png")
    labels = segmenter.predict(path)
    assert labels.shape == expected_shape
    assert labels.max() < segmenter.num_classes


def test_sixteen_bit_keeps_the_top_byte():
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    rgb = to_rgb_array(Image.fromarray(deep))
    assert np.array_equal(rgb[:, :, 0], (deep >> 8).astype(np.uint8))
    assert np.array_equal(to_rgb_array(deep), rgb)


def test_a_callers_rgb_array_is_read_in_place_and_never_written(segmenter):
    """`prepare` takes a uint8 RGB array as it is (no copy of a large scene: the views at its own size
    are the array itself, as for bands) and predicting leaves it as it was; `to_rgb_array` still gives
    a copy unless asked not to, and copies what is not already such an array."""
    from segnext.inference import prepare

    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    before = image.copy()
    image.flags.writeable = False  # any write into it would raise
    config = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24), flip=True)
    prepared = prepare(image, config, keep_image=True)
    assert np.shares_memory(prepared.views[0], image) and np.shares_memory(prepared.rgb, image)
    windows = Segmenter(segmenter.model, config)
    labels, confidence = windows.predict_with_confidence(image)
    assert np.array_equal(windows.predict(before), labels) and windows.overlay(image, labels).shape == image.shape
    assert np.array_equal(image, before)
    assert not np.shares_memory(to_rgb_array(image), image) and to_rgb_array(image).flags.writeable
    rgba = np.dstack([before, before[:, :, :1]])
    assert to_rgb_array(rgba, copy=False).flags.c_contiguous and np.array_equal(to_rgb_array(rgba, copy=False), before)


@pytest.mark.parametrize("array, expected", [
    (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),      # 0..1, as scikit-image's floats
    (np.array([[0.0, 127.6, 300.0]], dtype=np.float64), [0, 128, 255]),  # 0..255, clipped
    (np.array([[np.nan, 1.0, 0.25]], dtype=np.float32), [0, 255, 64]),    # NaN as 0
    (np.full((1, 3), np.nan, dtype=np.float32), [0, 0, 0]),                # all NaN (no data), without a warning
    (np.array([[False, True, True]]), [0, 255, 255]),
    (np.array([[-5, 7, 1000]], dtype=np.int32), [0, 7, 255]),
])
def test_arrays_of_other_types_become_uint8_as_documented(array, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = to_rgb_array(array)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
    assert rgb[0, :, 0].tolist() == expected and (rgb == rgb[:, :, :1]).all()


def test_unreadable_inputs_raise_clear_errors(segmenter, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff this is not a jpeg")
    with pytest.raises(ValueError, match="corrupt.jpg"):
        segmenter.predict(corrupt)
    with pytest.raises(FileNotFoundError):
        segmenter.predict(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="shape"):
        segmenter.predict(np.zeros((4, 4, 2), dtype=np.uint8))


def test_a_uint8_tensor_is_read_channels_first_as_torchvision_gives_it(segmenter):
    import torch

    rgb = _scene(45, 70)
    expected = segmenter.predict(rgb)
    assert np.array_equal(segmenter.predict(torch.from_numpy(rgb).permute(2, 0, 1)), expected)
    assert np.array_equal(segmenter.predict(torch.from_numpy(rgb[:, :, 0])),
                          segmenter.predict(rgb[:, :, 0]))  # grayscale (H, W)
    with pytest.raises(TypeError, match=r"uint8 \(3, H, W\).*got torch.float32 \(3, 45, 70\).*call the model directly"):
        segmenter.predict(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    with pytest.raises(TypeError, match=r"got torch.uint8 \(45, 70, 3\)"):  # channels last: not torchvision's
        segmenter.predict(torch.from_numpy(rgb))


def test_a_float_image_is_refused_the_same_way_from_a_path_and_from_pillow(segmenter, tmp_path):
    """One policy for every input route: a mode-F TIFF has no standard 8-bit meaning."""
    from segnext.data import DataError

    path = tmp_path / "depth.tif"
    Image.fromarray(np.linspace(0, 3.5, 48, dtype=np.float32).reshape(6, 8)).save(path)
    with pytest.raises(DataError) as from_path:
        segmenter.predict(path)
    with Image.open(path) as opened:
        assert opened.mode == "F"
        with pytest.raises(DataError) as from_pillow:
            segmenter.predict(opened)
    assert str(from_path.value) == str(from_pillow.value)
    assert str(path) in str(from_pillow.value) and "mode F" in str(from_pillow.value)
    with pytest.raises(DataError, match="PIL image: floating-point"):
        segmenter.predict(Image.fromarray(np.zeros((4, 4), np.float32)))


def test_probabilities_and_outputs(segmenter, tmp_path):
    rgb = _scene(30, 41)
    labels, probabilities = segmenter.predict_with_proba(rgb)
    assert probabilities.shape == (150, 30, 41) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(0), 1, atol=1e-4)
    # argmax of the returned probabilities; predict's label-only path may differ at float-rounding ties
    assert (labels == segmenter.predict(rgb)).mean() >= 0.999
    write_label(tmp_path / "labels.png", labels, segmenter.palette)
    with Image.open(tmp_path / "labels.png") as written:
        assert written.mode == "P" and np.array_equal(np.asarray(written), labels)
        assert written.getpalette()[:6] == [120, 120, 120, 180, 120, 120]
    blended = segmenter.overlay(rgb, labels, alpha=1.0)
    assert np.array_equal(blended, segmenter.colorize(labels))
    assert np.array_equal(segmenter.overlay(rgb, labels, alpha=0.0), rgb)
    with pytest.raises(ValueError, match="overlay alpha .* must be from 0 to 1, got 1.5"):
        segmenter.overlay(rgb, labels, alpha=1.5)


def test_confidence_is_the_probability_of_each_label(segmenter):
    images = [_scene(30, 41), _scene(20, 28)]
    original = segmenter.test_config
    try:
        for config in (original, override_test_config(SMALL, scales=(0.75, 1.0), flip=True)):
            segmenter.test_config = config
            for image in images:
                labels, confidence = segmenter.predict_with_confidence(image)
                expected_labels, probabilities = segmenter.predict_with_proba(image)
                assert confidence.dtype == np.float32 and confidence.shape == labels.shape
                assert np.array_equal(labels, expected_labels)
                # on the CPU the confidence comes in bands of rows: to float rounding
                np.testing.assert_allclose(confidence, probabilities.max(0), rtol=0, atol=1e-6)
                np.testing.assert_allclose(np.take_along_axis(probabilities, labels[None].astype(np.int64), 0)[0],
                                           confidence, rtol=0, atol=1e-6)
                assert confidence.min() >= 1 / 150 and confidence.max() <= 1
            pairs = segmenter.predict_with_confidence(images, batch_size=2)  # a list: a list of pairs
            assert all(np.array_equal(confidence, segmenter.predict_with_confidence(image)[1])
                       for (_, confidence), image in zip(pairs, images))
    finally:
        segmenter.test_config = original


def test_default_palette_is_distinct():
    palette = default_palette(256)
    assert len({tuple(c) for c in palette}) == 256 and palette[0] == [0, 0, 0]


def test_multi_scale_flip(segmenter):
    original = segmenter.test_config
    try:
        segmenter.test_config = override_test_config(SMALL, scales=(0.75, 1.0), flip=True)
        labels, probabilities = segmenter.predict_with_proba(_scene(20, 28))
        assert labels.shape == (20, 28) and np.allclose(probabilities.sum(0), 1, atol=1e-4)
    finally:
        segmenter.test_config = original


@pytest.mark.slow
def test_huge_image_through_slide_inference_stays_small(checkpoint_path, tmp_path):
    """8000 x 6000 through slide inference at full resolution of the label map: the peak memory
    stays far below the 29 GB that 150 full-resolution float score maps would take."""
    import subprocess
    import sys

    script = f"""
import resource, numpy as np, torch, segnext
from segnext.inference import TestConfig
s = segnext.Segmenter.from_checkpoint({str(checkpoint_path)!r},
    test_config=TestConfig(img_scale=(1024, 768), mode="slide", crop_size=(512, 512), stride=(384, 384)))
image = np.kron(np.random.default_rng(0).integers(0, 255, (60, 80, 3)), np.ones((100, 100, 1))).astype(np.uint8)
labels = s.predict(image)
assert labels.shape == (6000, 8000), labels.shape
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    peak_mb = int(result.stdout.strip().splitlines()[-1])
    assert peak_mb < 4000, peak_mb


def test_leave_unsure_keeps_the_labels_of_the_sure_pixels_only():
    from segnext.inference import leave_unsure

    labels = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    confidence = np.array([[0.9, 0.3], [0.69, 0.7]], dtype=np.float32)
    left = leave_unsure(labels, confidence, 0.7)
    assert left.dtype == np.uint8 and left.tolist() == [[0, 255], [255, 3]]
    with pytest.raises(ValueError, match="between 0 and 1"):
        leave_unsure(labels, confidence, 1.0)
    with pytest.raises(ValueError, match="must have one shape"):
        leave_unsure(labels, confidence[:1], 0.5)


def test_an_rgb_model_of_bands_segments_16_bit_colour_in_its_own_units():
    """TestConfig(bands=True): three channels normalised in their units (uint16 arrays, files read at
    all their bits), not 8-bit RGB; the overlay is drawn on the stretched picture."""
    model = segnext.create_model("segnext_t", 3).eval()
    mean, std = (1150.0, 1140.0, 1120.0), (70.0, 72.0, 80.0)
    segmenter = Segmenter(model, TestConfig(img_scale=None, mean=mean, std=std, bands=True))
    colour = np.random.default_rng(3).integers(1024, 1280, (40, 56, 3)).astype(np.uint16)
    with torch.no_grad():
        normalised = (torch.from_numpy(colour.astype(np.float32)).permute(2, 0, 1)[None]
                      - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        expected = model(normalised)[0].argmax(0).numpy()
    assert np.array_equal(segmenter.predict(colour), expected)
    picture = display_rgb(colour)  # each band stretched between its percentiles, not the top byte
    drawn = overlay(picture, expected, segmenter.palette, 0.5, ignore_index=None)
    assert np.array_equal(segmenter.overlay(colour), drawn)
    with pytest.raises(TypeError, match="a model of 3 input channels takes each image as a NumPy array \\(H, W, 3\\), "
                                        "the path of a file of its bands"):
        segmenter.predict(Image.new("RGB", (8, 8)))


def test_images_in_other_units_than_the_normalisation_are_a_warning_once():
    """A model of 16-bit colour given an 8-bit image normalises it to means of about -15: a warning,
    once per Segmenter; images in its units (and RGB ones for an RGB model) give none."""
    model = segnext.create_model("segnext_t", 3).eval()
    segmenter = Segmenter(model, TestConfig(img_scale=None, mean=(1150.0,) * 3, std=(70.0,) * 3, bands=True))
    colour = np.random.default_rng(3).integers(1024, 1280, (24, 32, 3)).astype(np.uint16)
    photo = (colour >> 4).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segmenter.predict(colour)
        Segmenter(model).predict(photo)
    with pytest.warns(UserWarning, match="the test settings normalise an image to channel means of -1[45]\\..*: it is "
                                         "in other units than they were .*takes its images at all their bits"):
        segmenter.predict(photo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segmenter.predict(photo)  # said once
        late = Segmenter(model, segmenter.test_config)
        for _ in range(segnext.inference.segmenter.UNIT_CHECKS):
            late.predict(colour)
        late.predict(photo)  # only the first groups are looked at: a mistake of units is in every image


@pytest.mark.filterwarnings("ignore:the test settings normalise")  # random bands, not in the settings' units
def test_a_model_of_other_input_channels_segments_arrays_of_them_by_the_same_test(tmp_path):
    """in_channels=4: test settings with four means and deviations, images as arrays (H, W, 4) in
    their own units, through the same test procedure (here slide windows, flip)."""
    model = segnext.create_model("segnext_t", 3, in_channels=4).eval()
    mean, std = (100.0, 110.0, 120.0, 500.0), (50.0, 55.0, 60.0, 200.0)
    with pytest.raises(ValueError, match="this model takes 4 input channels and its test settings normalise 3: give "
                                         "TestConfig\\(mean=..., std=...\\) with 4 values each"):
        Segmenter(model)
    config = TestConfig(img_scale=None, mean=mean, std=std)
    segmenter = Segmenter(model, config)
    image = np.random.default_rng(0).uniform(0, 1000, (40, 56, 4)).astype(np.float32)
    with torch.no_grad():
        normalised = (torch.from_numpy(image).permute(2, 0, 1)[None] - torch.tensor(mean).view(4, 1, 1)) \
            / torch.tensor(std).view(4, 1, 1)
        expected = model(normalised)[0].argmax(0).numpy()
    assert np.array_equal(segmenter.predict(image.astype(np.float64)), expected)
    # Saved with its test settings (as the error says), the commands' Segmenter reads them back.
    model.config.test_settings = config.to_dict()
    segnext.save_model(model, tmp_path / "fields_model")
    saved = Segmenter.from_checkpoint(tmp_path / "fields_model", device="cpu", backend="eager")
    assert tuple(saved.test_config.mean) == mean and np.array_equal(saved.predict(image), expected)
    windows = Segmenter(model, TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24), flip=True,
                                          mean=mean, std=std))
    labels, confidence = windows.predict_with_confidence(image)
    with torch.no_grad():  # MMSegmentation's slide windows (rows 0-32, 8-40; columns 0-32, 24-56), each flipped too
        probabilities = torch.zeros(1, 3, 40, 56)
        for flipped in (False, True):
            logits, count = torch.zeros(1, 3, 40, 56), torch.zeros(1, 1, 40, 56)
            for top, left in [(0, 0), (0, 24), (8, 0), (8, 24)]:
                window = normalised[:, :, top:top + 32, left:left + 32]
                window_logits = model(window.flip(3)).flip(3) if flipped else model(window)
                logits[:, :, top:top + 32, left:left + 32] += window_logits
                count[:, :, top:top + 32, left:left + 32] += 1
            probabilities += (logits / count).softmax(1) / 2
    assert labels.shape == (40, 56) and (labels == probabilities[0].argmax(0).numpy()).mean() > 0.99
    assert np.allclose(confidence, probabilities[0].max(0).values.numpy(), atol=1e-4)
    with pytest.raises(TypeError, match="a model of 4 input channels takes each image as a NumPy array \\(H, W, 4\\)"):
        segmenter.predict(Image.new("RGB", (8, 8)))
    with pytest.raises(ValueError, match="expected an image array of shape \\(H, W, 4\\)"):
        segmenter.predict(image[:, :, :3])
    # A file of its bands is read as they are; the picture kept for overlays shows the first three.
    np.save(tmp_path / "bands.npy", image)
    assert np.array_equal(segmenter.predict(tmp_path / "bands.npy"), expected)
    kept = segmenter.prepare(tmp_path / "bands.npy", keep_image=True).rgb
    assert np.array_equal(kept, display_rgb(image)) and kept.shape == (40, 56, 3) and kept.dtype == np.uint8
    assert segmenter.overlay(tmp_path / "bands.npy", expected).shape == (40, 56, 3)
    Image.new("RGB", (56, 40)).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match="photo.png: holds 3 channel\\(s\\), and the model takes 4 \\(in_channels\\)"):
        segmenter.predict(tmp_path / "photo.png")


@pytest.mark.filterwarnings("ignore:the test settings normalise")  # random bands, not in the settings' units
@pytest.mark.parametrize("flip", [False, True])
def test_a_large_tiff_scene_is_segmented_from_windows_of_its_file_as_from_all_of_it(tmp_path, monkeypatch, flip):
    """A TIFF scene over READ_IN_WINDOWS_ABOVE, segmented at its own size in sliding windows, is never
    read whole (read_bands patched to fail): its labels, confidence, class probabilities and overlay
    are those of its pixels given as an array, with and without flip."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    model = segnext.create_model("segnext_t", 3, in_channels=4).eval()
    config = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24), flip=flip,
                        mean=(500.0,) * 4, std=(200.0,) * 4)
    segmenter = Segmenter(model, config)
    image = np.random.default_rng(0).integers(0, 1000, (70, 90, 4)).astype(np.uint16)
    image[20:50, 30:70] += 1500
    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, np.moveaxis(image, -1, 0), photometric="minisblack", planarconfig="separate",
                     tile=(16, 16), compression="zlib")

    def results(source):
        (labels, probabilities), = segmenter.predict_group([segmenter.prepare(source)], with_probabilities=True,
                                                          probabilities_in_bands=True)
        return (*segmenter.predict_with_confidence(source), labels, probabilities.numpy(), segmenter.overlay(source))

    expected = results(image)
    monkeypatch.setattr(segnext.inference.preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    monkeypatch.setattr(segnext.inference.preprocess, "read_bands", lambda *args, **kwargs: pytest.fail("read whole"))
    for value, read_in_windows in zip(expected, results(path)):
        assert np.array_equal(value, read_in_windows)


def test_a_large_rgb_tiff_scene_is_segmented_from_windows_of_its_file_as_from_all_of_it(tmp_path, monkeypatch):
    """The same for an RGB model and an 8-bit RGB TIFF (read_image patched to fail), with flip."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    model = segnext.create_model("segnext_t", 3).eval()
    segmenter = Segmenter(model, TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24),
                                            flip=True))
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    image[20:50, 30:70] //= 4
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="rgb", tile=(16, 16), compression="zlib")

    def results(source):
        (labels, probabilities), = segmenter.predict_group([segmenter.prepare(source)], with_probabilities=True,
                                                          probabilities_in_bands=True)
        return (*segmenter.predict_with_confidence(source), labels, probabilities.numpy())

    expected = results(image)
    monkeypatch.setattr(segnext.inference.preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    monkeypatch.setattr(segnext.inference.preprocess, "read_image", lambda *args, **kwargs: pytest.fail("read whole"))
    for value, read_in_windows in zip(expected, results(tmp_path / "scene.tif")):
        assert np.array_equal(value, read_in_windows)


def test_the_confidence_summary_leaves_pixels_of_no_data_out():
    """NaN (no data) is neither confident nor unsure; an image of no data at all has nothing to label."""
    from segnext.inference.segmenter import confidence_summary

    confidence = np.array([[0.9, 0.3], [np.nan, np.nan]], dtype=np.float32)
    assert confidence_summary(confidence) == pytest.approx((60.0, 50.0))
    assert confidence_summary(confidence[:1]) == pytest.approx((60.0, 50.0))
    assert confidence_summary(np.full((2, 2), np.nan, np.float32)) == (100.0, 0.0)


def test_a_segmenter_that_leaves_no_data_unlabelled(tmp_path):
    """leave_no_data: a TIFF's pixels of no data (here its alpha band at 0) get no label, NaN
    confidence and probabilities (of every class, on each output path); the others their labels; an
    image of another kind is segmented as before; a model of more than 255 classes is refused."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    model = segnext.create_model("segnext_t", 3)
    config = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24))
    picture = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    alpha = np.full((50, 70), 255, np.uint8)
    alpha[:, :35] = 0
    tifffile.imwrite(tmp_path / "scene.tif", np.dstack([picture, alpha]), photometric="rgb", extrasamples=[2])
    plain = Segmenter(model, config).predict(picture)
    segmenter = Segmenter(model, config, leave_no_data=True)
    labels = segmenter.predict(tmp_path / "scene.tif")
    assert (labels[:, :35] == 255).all() and np.array_equal(labels[:, 35:], plain[:, 35:])
    labels, probabilities = segmenter.predict_with_proba(tmp_path / "scene.tif")
    assert np.isnan(probabilities[:, :, :35]).all() and not np.isnan(probabilities[:, :, 35:]).any()
    labels, confidence = segmenter.predict_with_confidence(tmp_path / "scene.tif")
    assert np.isnan(confidence[:, :35]).all() and (labels[:, :35] == 255).all()
    assert np.array_equal(segmenter.predict(picture), plain)  # an array: nothing said of its data
    many = Segmenter(segnext.create_model("segnext_t", 300), config, leave_no_data=True)
    with pytest.raises(ValueError, match="no data is left without a label \\(255\\), which is a class"):
        many.predict(tmp_path / "scene.tif")
    (tmp_path / "scene.tif.msk").write_bytes(b"not a mask")  # GDAL's mask beside it, damaged: said, not used
    with pytest.warns(UserWarning, match=r"scene\.tif\.msk: cannot read this mask .* keep their labels"):
        assert np.array_equal(segmenter.predict(tmp_path / "scene.tif"), plain)
