"""Test-time inference exactly as the official evaluation (MMSegmentation 0.x `EncoderDecoder`).

One image at a time, as the official test loop does:
1. per scale: keep-ratio resize of the uint8 image to `img_scale * ratio`, optionally up to a
   multiple of `size_divisor`, normalise (`preprocess`);
2. logits at the resized size by whole-image (`model(x)`) or sliding-window inference (overlapping
   windows' logits averaged), then resized bilinearly to the original image size;
3. a single scale without flip: those logits; several scales and/or flip: the softmax probabilities
   averaged over all of them (flipped predictions flipped back);
4. labels: the argmax over classes.

That is `segment_logits` and `segment`. With `memory_efficient=True` they compute the same result
without full-resolution score maps for every class (an 8000 x 6000 photo with 150 classes would
need 29 GB): single-scale labels come from `segnext.ops.label_upsample` (exact) and the
whole-image multi-scale average from `segnext.ops.banded_average` (equal to float rounding). That
path needs a model with `forward_logits` (stride-8 logits), as SegNeXt and its optimized form have.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.banded_average import average_probabilities_in_bands
from ..ops.label_upsample import upsampled_argmax
from .preprocess import resize_for_test, to_tensor
from .settings import TestConfig


def slide_logits(model, images: torch.Tensor, crop_size: Tuple[int, int], stride: Tuple[int, int],
                 num_classes: int) -> torch.Tensor:
    """Sliding-window logits: windows cover the image, the last ones aligned to its far edges;
    logits of overlapping windows are averaged."""
    batch, _, height, width = images.shape
    crop_h, crop_w = crop_size
    stride_h, stride_w = stride
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    logits = images.new_zeros((batch, num_classes, height, width))
    counts = images.new_zeros((1, 1, height, width))
    for row in range(rows):
        for col in range(cols):
            y2 = min(row * stride_h + crop_h, height)
            x2 = min(col * stride_w + crop_w, width)
            y1, x1 = max(y2 - crop_h, 0), max(x2 - crop_w, 0)
            logits[:, :, y1:y2, x1:x2] += model(images[:, :, y1:y2, x1:x2])
            counts[:, :, y1:y2, x1:x2] += 1
    return logits / counts


def model_logits(model, images: torch.Tensor, config: TestConfig) -> torch.Tensor:
    """Logits at the size of `images` by whole-image or sliding-window inference."""
    if config.mode == "slide":
        return slide_logits(model, images, config.crop_size, config.stride, model.num_classes)
    return model(images)


def _views(image: np.ndarray, config: TestConfig, device):
    """(normalised resized image, flipped?) for every scale and flip of the test."""
    for ratio in config.scales:
        x = to_tensor(resize_for_test(image, config.img_scale, ratio, config.size_divisor), config.mean, config.std)
        for flipped in ((False, True) if config.flip else (False,)):
            yield x.to(device), flipped


@torch.no_grad()
def segment_logits(model, image: np.ndarray, config: Optional[TestConfig] = None, device=None, *,
                   memory_efficient: bool = False) -> torch.Tensor:
    """uint8 RGB image (H, W, 3) -> (num_classes, H, W) scores at the image's size: the logits for a
    single scale without flip, else the averaged softmax probabilities (as the paper).
    config: the test settings (default `TestConfig()`, ADE20K's)."""
    config = config or TestConfig()
    device = device or next(model.parameters()).device
    height, width = image.shape[:2]
    if memory_efficient and not config.single_scale and _banded(model, config):
        sources = _stride8_sources(model, image, config, device)
        scores = torch.empty((sources[0][0].shape[0], height, width), device=sources[0][0].device)
        for rows, band in average_probabilities_in_bands(sources, height, width):
            scores[:, rows] = band
        return scores
    total = None
    for x, flipped in _views(image, config, device):
        scores = model_logits(model, x.flip(3) if flipped else x, config)
        scores = F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)
        if not config.single_scale:
            scores = scores.softmax(dim=1)
        if flipped:
            scores = scores.flip(3)
        total = scores if total is None else total + scores
    return (total / (len(config.scales) * (2 if config.flip else 1)))[0]


@torch.no_grad()
def segment(model, image: np.ndarray, config: Optional[TestConfig] = None, device=None, *,
            memory_efficient: bool = False) -> torch.Tensor:
    """uint8 RGB image -> int64 label map (H, W) at the image's size: `segment_logits(...).argmax(0)`.

    memory_efficient: the same labels without full-resolution class scores (see the module docstring).
    """
    config = config or TestConfig()
    device = device or next(model.parameters()).device
    if not memory_efficient:
        return segment_logits(model, image, config, device).argmax(0)
    height, width = image.shape[:2]
    if not config.single_scale:
        if not _banded(model, config):
            return segment_logits(model, image, config, device).argmax(0)
        labels = torch.empty((height, width), dtype=torch.int64)
        for rows, band in average_probabilities_in_bands(_stride8_sources(model, image, config, device), height, width):
            labels[rows] = band.argmax(0).cpu()
        return labels.to(device)
    x, _ = next(_views(image, config, device))
    if config.mode == "whole" and hasattr(model, "forward_logits"):
        # stride-8 logits -> resized-image size (model's own resize) -> original size
        low, sizes = model.forward_logits(x)[0], [tuple(x.shape[2:]), (height, width)]
    else:
        low, sizes = model_logits(model, x, config)[0], [(height, width)]
    return upsampled_argmax(low, sizes).to(device)


def _banded(model, config: TestConfig) -> bool:
    return config.mode == "whole" and hasattr(model, "forward_logits")


def _stride8_sources(model, image: np.ndarray, config: TestConfig, device) -> List[Tuple[torch.Tensor, list]]:
    """Per (scale, flip): stride-8 logits (K, h, w) in the image's orientation (a bilinear resize
    commutes with a horizontal flip), and the sizes they are resized through."""
    sources = []
    for x, flipped in _views(image, config, device):
        low = model.forward_logits(x.flip(3) if flipped else x)[0].float().contiguous()
        sources.append((low.flip(-1) if flipped else low, [tuple(x.shape[2:]), tuple(image.shape[:2])]))
    return sources
