"""Test-time preprocessing: the official keep-ratio resize (mmcv's rounding, SegNeXt's AlignResize)
and normalisation."""

from __future__ import annotations

import numpy as np
import torch

from segnext.constants import IMAGENET_MEAN, IMAGENET_STD
from segnext.inference import resize_for_test, to_tensor


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
