"""segnext.data.palette: overlays blended a band of rows at a time are the overlay blended at once."""

from __future__ import annotations

import numpy as np
import pytest

from segnext.data import palette as palette_module
from segnext.data.palette import colorize, default_palette, overlay


def blended_at_once(image, labels, palette, alpha, ignore_index):
    """The overlay written plainly: every pixel's colour and image blended in float32, rounded."""
    colours = colorize(labels, palette, ignore_index).astype(np.float32)
    blended = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    if ignore_index is not None and ignore_index >= len(palette):
        blended[labels == ignore_index] = image[labels == ignore_index]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_an_overlay_in_bands_of_rows_is_the_overlay_at_once(monkeypatch, alpha, ignore_index):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (53, 41, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (53, 41)).astype(np.uint8)
    labels[::5, ::3] = 255  # unlabelled: the image's own colour where 255 is no class
    palette = default_palette(6)
    monkeypatch.setattr(palette_module, "BLEND_PIXELS", 7 * 41)  # bands of 7 rows, the last of 4
    assert np.array_equal(overlay(image, labels, palette, alpha, ignore_index),
                          blended_at_once(image, labels, palette, alpha, ignore_index))


def test_an_overlay_of_mismatched_shapes_is_an_error():
    with pytest.raises(ValueError, match=r"an RGB image \(H, W, 3\) and its labels \(H, W\), got \(4, 5, 3\) and "
                                         r"\(4, 6\)"):
        overlay(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 6), np.uint8), default_palette(2))
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.uint8), default_palette(2), alpha=1.5)
