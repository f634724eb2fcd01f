"""Train / test pipelines: MMSegmentation 0.x semantics, checked by statistics and by an oracle."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from synthetic_data import blob_label, random_image

from segnext.constants import IMAGENET_MEAN, IMAGENET_STD
from segnext.data import TrainTransform
from segnext.data.transforms import apply_photometric_distortion, draw_photometric_params, rescale_size, resize_image


def _sample(height, width, values=(0, 3, 7, 255), seed=0):
    return dict(image=random_image(height, width, seed), label=blob_label(height, width, values, seed), path="x.jpg")


def test_rescale_size_like_mmcv_imrescale():
    assert rescale_size(683, 512, (2048, 512)) == (683, 512)
    assert rescale_size(500, 375, (1024, 256)) == (341, 256)  # factor 256/375: 341.33 -> 341
    assert rescale_size(375, 500, (1024, 256)) == (256, 341)  # portrait: same bound on the short side
    assert rescale_size(2048, 1024, (1024, 512)) == (1024, 512)
    assert rescale_size(4000, 500, (2048, 512)) == (2048, 256)  # long side is the binding bound
    assert rescale_size(683, 512, (512, 2048)) == (683, 512)  # order of the pair does not matter


def test_resize_ratio_stays_in_range_and_covers_it():
    transform = TrainTransform(crop_size=(16, 16), img_scale=(400, 80), ratio_range=(0.5, 2.0))
    sample = _sample(80, 100)
    ratios = []
    for index in range(1000):
        rng = np.random.default_rng([0, 0, index])  # seeded as the datasets do
        image, label = transform.random_resize(sample["image"], sample["label"], rng)
        assert image.shape[:2] == label.shape
        ratios.append(label.shape[0] / 80)  # short side 80 * ratio, rounded
    ratios = np.array(ratios)
    assert ratios.min() >= 0.5 - 1 / 80 and ratios.max() <= 2.0 + 1 / 80
    assert ratios.min() < 0.6 and ratios.max() > 1.9  # the whole range is used
    assert abs(ratios.mean() - 1.25) < 0.05  # uniform on [0.5, 2]: the mean's sd is 0.014
    fixed = TrainTransform(img_scale=(400, 80), ratio_range=None)
    assert fixed.random_resize(sample["image"], sample["label"], np.random.default_rng(0))[1].shape == (80, 100)


def _striped_label():
    """100 x 300 label: a fine two-class checkerboard on x < 170, class 0 elsewhere. A 100x100
    crop at offset x is acceptable (class 0 below 75%) exactly when x < 145: 72% of offsets."""
    label = np.zeros((100, 300), dtype=np.uint8)
    yy, xx = np.mgrid[:100, :170]
    label[:, :170] = np.where((yy // 5 + xx // 5) % 2 == 0, 1, 2)
    return label


def _largest_share(crop):
    counts = np.bincount(crop.ravel(), minlength=256)[:255]
    return counts.max() / counts.sum()


def test_crop_respects_the_single_class_cap():
    label = _striped_label()
    image = np.zeros((*label.shape, 3), dtype=np.uint8)
    capped = TrainTransform(crop_size=(100, 100), cat_max_ratio=0.75)
    uncapped = TrainTransform(crop_size=(100, 100), cat_max_ratio=1.0)
    shares_capped, shares_uncapped = [], []
    for seed in range(300):
        _, crop = capped.random_crop(image, label, np.random.default_rng(seed))
        assert crop.shape == (100, 100)
        shares_capped.append(_largest_share(crop))
        _, crop = uncapped.random_crop(image, label, np.random.default_rng(seed))
        shares_uncapped.append(_largest_share(crop))
    assert max(shares_capped) < 0.75  # a valid crop existed every time, so it was found
    assert np.mean(np.array(shares_uncapped) >= 0.75) > 0.15  # without the cap many crops are bad


def test_crop_retries_ten_times_then_keeps_the_last(monkeypatch):
    transform = TrainTransform(crop_size=(10, 10), cat_max_ratio=0.75)
    calls = []
    original = transform.random_crop_box
    monkeypatch.setattr(transform, "random_crop_box", lambda *a: calls.append(1) or original(*a))
    single_class = np.ones((50, 50), dtype=np.uint8)
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    _, crop = transform.random_crop(image, single_class, np.random.default_rng(0))
    assert len(calls) == 1 + 10 and crop.shape == (10, 10)  # never accepted: first draw + 10 retries
    calls.clear()
    varied = np.tile(np.array([[1, 2], [2, 1]], np.uint8), (25, 25))
    transform.random_crop(image, varied, np.random.default_rng(0))
    assert len(calls) == 1  # accepted at once
    # ignore pixels do not count: half ignore + one class is not acceptable
    half_ignore = single_class.copy()
    half_ignore[:, ::2] = 255
    assert not transform.crop_is_varied(half_ignore[:10, :10])
    assert transform.crop_is_varied(np.array([[1, 2, 255, 255]], np.uint8))  # 1:1 among labelled
    assert not transform.crop_is_varied(np.array([[1, 1, 1, 2]], np.uint8))  # exactly 0.75 is rejected


def test_flip_probability_and_mirroring():
    transform = TrainTransform(flip_prob=0.5)
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    label = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    flips = 0
    for seed in range(2000):
        out_image, out_label = transform.random_flip(image, label, np.random.default_rng(seed))
        if out_label[0, 0] == 3:
            flips += 1
            np.testing.assert_array_equal(out_label, label[:, ::-1])
            np.testing.assert_array_equal(out_image, image[:, ::-1])
        else:
            np.testing.assert_array_equal(out_label, label)
    assert 0.46 < flips / 2000 < 0.54
    never = TrainTransform(flip_prob=0.0)
    assert never.random_flip(image, label, np.random.default_rng(0))[1][0, 0] == 1


def test_label_values_are_preserved_through_the_pipeline():
    values = {0, 3, 7, 255}
    transform = TrainTransform(crop_size=(48, 48), img_scale=(200, 60), ratio_range=(0.5, 2.0))
    sample = _sample(60, 80, tuple(values))
    seen = set()
    for seed in range(40):
        out = transform(sample, np.random.default_rng(seed))
        assert out["label"].dtype == torch.int64 and out["image"].dtype == torch.float32
        assert out["image"].shape == (3, 48, 48) and out["label"].shape == (48, 48)
        seen |= set(out["label"].unique().tolist())
    assert seen <= values and len(seen) >= 3
    # the check can fail: bilinear resizing of a label would invent ids
    blurred = resize_image(sample["label"], 123, 91)
    assert set(np.unique(blurred).tolist()) - values


def test_padding_and_normalisation():
    transform = TrainTransform(crop_size=(64, 64), img_scale=None, flip_prob=0.0, photometric=False)
    sample = _sample(40, 50)
    out = transform(sample, np.random.default_rng(0))
    image, label = out["image"].numpy(), out["label"].numpy()
    assert image.shape == (3, 64, 64) and label.shape == (64, 64)
    assert (image[:, 40:, :] == 0).all() and (image[:, :, 50:] == 0).all()
    assert (label[40:, :] == 255).all() and (label[:, 50:] == 255).all()
    expected = (sample["image"].astype(np.float64) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(image[:, :40, :50], expected.transpose(2, 0, 1), atol=1e-5)
    np.testing.assert_array_equal(label[:40, :50], sample["label"])


def _mmseg_photometric_bgr(image_bgr, params):
    """MMSegmentation 0.x PhotoMetricDistortion on a BGR image, with given random choices."""

    def convert(img, alpha=1, beta=0):
        img = img.astype(np.float32) * alpha + beta
        return np.clip(img, 0, 255).astype(np.uint8)

    img = image_bgr
    if params["brightness"] is not None:
        img = convert(img, beta=params["brightness"])
    if params["contrast_first"] and params["contrast"] is not None:
        img = convert(img, alpha=params["contrast"])
    if params["saturation"] is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        img[:, :, 1] = convert(img[:, :, 1], alpha=params["saturation"])
        img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
    if params["hue"] is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        img[:, :, 0] = (img[:, :, 0].astype(int) + params["hue"]) % 180
        img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
    if not params["contrast_first"] and params["contrast"] is not None:
        img = convert(img, alpha=params["contrast"])
    return img


def test_the_photometric_distortion_refuses_bands_of_three_channels():
    """Three channels read as bands (16-bit colour, float32) are not 8-bit RGB: the distortion's
    lookup tables would be wrong for them, so it says to turn it off."""
    transform = TrainTransform(crop_size=(16, 16), img_scale=None, ratio_range=None, mean=(1150.0,) * 3,
                               std=(70.0,) * 3)
    colour = np.random.default_rng(0).uniform(1024, 1280, (20, 20, 3)).astype(np.float32)
    sample = {"image": colour, "label": np.zeros((20, 20), np.int64), "path": "scene.tif"}
    with pytest.raises(ValueError, match="is for 8-bit RGB images, and scene.tif is read as float32 bands: set "
                                         "photometric=False"):
        transform(sample, np.random.default_rng(0))
    out = TrainTransform(crop_size=(16, 16), img_scale=None, ratio_range=None, photometric=False, mean=(1150.0,) * 3,
                         std=(70.0,) * 3)(sample, np.random.default_rng(0))
    assert out["image"].shape == (3, 16, 16) and out["image"].abs().max() < 3


def test_photometric_distortion_matches_mmseg_math_on_bgr():
    image = random_image(32, 40, seed=3)
    changed = 0
    for seed in range(60):
        params = draw_photometric_params(np.random.default_rng(seed))
        ours = apply_photometric_distortion(image, params)
        reference = _mmseg_photometric_bgr(np.ascontiguousarray(image[..., ::-1]), params)[..., ::-1]
        np.testing.assert_array_equal(ours, reference, err_msg=str(params))
        changed += not np.array_equal(ours, image)
    assert changed > 40
    # each step alone, at an extreme
    for step in [dict(brightness=-32.0), dict(contrast=1.5), dict(saturation=0.5), dict(hue=-18), dict(hue=17)]:
        params = {**dict(brightness=None, contrast=None, saturation=None, hue=None, contrast_first=True), **step}
        reference = _mmseg_photometric_bgr(np.ascontiguousarray(image[..., ::-1]), params)[..., ::-1]
        np.testing.assert_array_equal(apply_photometric_distortion(image, params), reference, err_msg=str(step))


def test_photometric_parameter_ranges_and_probabilities():
    draws = [draw_photometric_params(np.random.default_rng(seed)) for seed in range(3000)]

    def applied(key):
        return [d[key] for d in draws if d[key] is not None]

    for key in ("brightness", "contrast", "saturation", "hue"):
        assert 0.45 < len(applied(key)) / len(draws) < 0.55, key
    assert 0.45 < np.mean([d["contrast_first"] for d in draws]) < 0.55
    brightness, contrast, saturation, hue = (np.array(applied(k))
                                             for k in ("brightness", "contrast", "saturation", "hue"))
    assert -32 <= brightness.min() < -30 and 30 < brightness.max() <= 32
    assert 0.5 <= contrast.min() < 0.52 and 1.48 < contrast.max() <= 1.5
    assert 0.5 <= saturation.min() < 0.52 and 1.48 < saturation.max() <= 1.5
    assert hue.dtype.kind == "i" and hue.min() == -18 and hue.max() == 17  # numpy randint(-18, 18)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        TrainTransform(crop_size=(512,))


def test_class_paste_takes_exactly_the_chosen_classes_of_the_donor():
    from segnext.data import ClassPaste

    sample = {"image": torch.zeros(3, 2, 3), "label": torch.tensor([[0, 0, 0], [0, 0, 255]]), "path": "a.png"}
    donor = {"image": torch.ones(3, 2, 3), "label": torch.tensor([[2, 5, 255], [5, 1, 2]])}
    pasted = ClassPaste([2, 5])(sample, donor)
    assert pasted["label"].tolist() == [[2, 5, 0], [5, 0, 2]] and pasted["path"] == "a.png"
    assert pasted["image"][0].tolist() == [[1, 1, 0], [1, 0, 1]] and torch.equal(pasted["image"][0], pasted["image"][2])
    with pytest.raises(ValueError, match="the donor's labels are \\(2, 2\\), the sample's \\(2, 3\\)"):
        ClassPaste([2])(sample, {"image": torch.ones(3, 2, 2), "label": torch.zeros(2, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="probability must be from 0 to 1, got 1.5"):
        ClassPaste([2], probability=1.5)
    with pytest.raises(ValueError, match="at least one class id"):
        ClassPaste([])


def test_nan_in_float_bands_is_0_after_normalising_as_padding_is():
    """No data in float bands (NaN) would make the crop's GroupNorm and the loss NaN: 0 after
    normalising, the mean, as the padding."""
    from segnext.data.transforms import normalize_and_pad

    bands = np.random.default_rng(1).normal(50, 10, (20, 30, 4)).astype(np.float32)
    bands[:5, :7] = np.nan
    sample = normalize_and_pad(bands, np.zeros((20, 30), np.uint8), (24, 32), (50.0,) * 4, (10.0,) * 4)
    image = sample["image"]
    assert torch.isfinite(image).all() and (image[:, :5, :7] == 0).all() and (image[:, 20:] == 0).all()
    expected = (bands[5:] - 50.0) / 10.0
    assert torch.allclose(image[:, 5:20, :30], torch.from_numpy(expected.transpose(2, 0, 1)), atol=1e-5)
