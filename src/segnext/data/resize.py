"""Keep-ratio sizes and OpenCV resizes, with mmcv's rounding: shared by the training pipeline and
the test-time preprocessing."""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np


def rescale_size(width: int, height: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """(new_width, new_height) of a keep-ratio rescale to `scale` (a pair of edge bounds, in any
    order): the largest factor with long side <= max(scale) and short side <= min(scale),
    rounded half up like mmcv.imrescale."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(width, height), short_edge / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, width: int, height: int) -> np.ndarray:
    if label.shape[1] == width and label.shape[0] == height:
        return label
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
