"""Colours for label maps: the default palette, colour maps and overlays (for predictions, reports
and datasets without a palette of their own)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..constants import IGNORE_INDEX


def default_palette(num_classes: int) -> List[List[int]]:
    """Distinct colours in the PASCAL VOC bit-interleaving scheme: class 0 is black and the first
    classes are far apart."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
            if value == 0:
                break
        palette.append([r, g, b])
    return palette


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]],
             ignore_index: Optional[int] = IGNORE_INDEX) -> np.ndarray:
    """Label map (H, W) -> RGB uint8 (H, W, 3) with `palette[label]`; `ignore_index` (and any id
    beyond the palette) is black."""
    labels = np.asarray(labels)
    table = np.zeros((max(len(palette), int(labels.max(initial=0)) + 1), 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if ignore_index is not None and ignore_index < len(table) and ignore_index >= len(palette):
        table[ignore_index] = 0
    return table[labels]


# Pixels blended at a time by `overlay`: its float32 temporaries are a band's (a few MB), not several
# copies of a whole scene (BENCHMARKS.md).
BLEND_PIXELS = 1 << 18


def overlay(image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5,
            ignore_index: Optional[int] = IGNORE_INDEX) -> np.ndarray:
    """The RGB image with the label colours blended in (`alpha` = weight of the colours); pixels
    labelled `ignore_index` keep the image's colour. Blended a band of rows at a time (the same
    numbers as all at once)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha (the weight of the label colours) must be from 0 to 1, got {alpha}")
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != labels.shape:
        raise ValueError(f"overlay takes an RGB image (H, W, 3) and its labels (H, W), got {image.shape} and "
                         f"{labels.shape}")
    out = np.empty(image.shape, dtype=np.uint8)
    band_rows = max(1, BLEND_PIXELS // max(1, image.shape[1]))
    for top in range(0, image.shape[0], band_rows):
        rows = slice(top, top + band_rows)
        out[rows] = _blend(image[rows], labels[rows], palette, alpha, ignore_index)
    return out


def _blend(image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], alpha: float,
           ignore_index: Optional[int]) -> np.ndarray:
    colours = colorize(labels, palette, ignore_index).astype(np.float32)
    blended = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    if ignore_index is not None and ignore_index >= len(palette):
        ignored = labels == ignore_index
        blended[ignored] = image[ignored]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
