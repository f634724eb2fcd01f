"""Keep-ratio sizes and image resizes with mmcv's rounding and OpenCV's bilinear sampling, shared by
the training pipeline and the test-time preprocessing.

OpenCV is an optional dependency (`pip install 'segnext[opencv]'`): the training pipeline needs it;
without it, test-time resizing samples the same bilinear grid with PyTorch in floating point,
which can differ from OpenCV's fixed-point result by one grey level on some pixels.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..utils import require


def opencv():
    """The cv2 module, or an error that says how to install it."""
    return require("cv2", "opencv", "The official training pipeline (and the demo scenes)",
                   package="opencv-python-headless")


def opencv_if_installed():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def rescale_size(width: int, height: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """(new_width, new_height) of a keep-ratio rescale to `scale` (a pair of edge bounds, in any
    order): the largest factor with long side <= max(scale) and short side <= min(scale),
    rounded half up like mmcv.imrescale. A side never rounds down to 0 (a 2 x 3000 strip, where mmcv
    fails): it keeps 1 pixel."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(width, height), short_edge / min(width, height))
    return max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5))


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a uint8 image (H, W) or (H, W, C), as mmcv.imresize; a float32 one keeps its
    values unrounded. The shape keeps its axes ((H, W, 1) stays three-dimensional)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    cv2 = opencv_if_installed()
    if cv2 is not None:
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        # OpenCV gives (H, W) for (H, W, 1).
        return resized[:, :, None] if image.ndim == 3 and resized.ndim == 2 else resized
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image)).float()
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)[0]
    y = y[0] if image.ndim == 2 else y.permute(1, 2, 0)
    if image.dtype == np.float32:
        return y.numpy()
    return y.round().clamp(0, 255).to(torch.uint8).numpy()


def resize_label(label: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (no new ids appear)."""
    if label.shape[1] == width and label.shape[0] == height:
        return label
    cv2 = opencv()
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
