"""Test-time inference exactly as the official evaluation (MMSegmentation 0.x `EncoderDecoder`).

One image at a time, as the official test loop does:
1. per scale: keep-ratio resize of the uint8 image to `img_scale * ratio` (cv2 bilinear, mmcv's
   rounding), optionally up to a multiple of `size_divisor` (SegNeXt's AlignResize), normalise;
2. logits at the resized size by whole-image or sliding-window inference (overlapping windows'
   logits averaged), then resized bilinearly to the original image size;
3. a single scale without flip: those logits; several scales and/or flip: softmax probabilities
   averaged over all of them (flipped predictions flipped back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, rescale_size
from .label_upsample import bilinear_weights, contributing_rows, upsampled_argmax
from .memory import resize_bilinear

MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the paper's multi-scale test


@dataclass
class TestConfig:
    img_scale: Optional[Tuple[int, int]] = (2048, 512)  # (long, short) bound; None keeps the image size
    size_divisor: Optional[int] = None  # resize up to a multiple of this (ADE20K/COCO-Stuff: 32)
    mode: str = "whole"  # "whole" or "slide"
    crop_size: Optional[Tuple[int, int]] = None  # slide window (h, w)
    stride: Optional[Tuple[int, int]] = None  # slide stride (h, w)
    scales: Tuple[float, ...] = (1.0,)  # ratios of img_scale; MS_RATIOS for the multi-scale test
    flip: bool = False
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"test mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide" and (self.crop_size is None or self.stride is None):
            raise ValueError("slide inference needs crop_size and stride, e.g. crop_size=(1024, 1024), stride=(768, 768)")
        for name in ("img_scale", "crop_size", "stride"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(int(v) for v in value))
        self.scales = tuple(float(s) for s in self.scales)
        if not self.scales:
            raise ValueError("scales must not be empty")


def resize_for_test(image: np.ndarray, img_scale: Optional[Tuple[int, int]], ratio: float = 1.0,
                    size_divisor: Optional[int] = None) -> np.ndarray:
    height, width = image.shape[:2]
    if img_scale is not None:
        scale = (int(img_scale[0] * ratio), int(img_scale[1] * ratio))
        width, height = rescale_size(width, height, scale)
    elif ratio != 1.0:
        height, width = int(height * ratio + 0.5), int(width * ratio + 0.5)
    if size_divisor:
        height = int(np.ceil(height / size_divisor)) * size_divisor
        width = int(np.ceil(width / size_divisor)) * size_divisor
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def to_tensor(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> normalised float32 (1, 3, H, W)."""
    x = torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1).float()
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0)


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
    return whole_logits(model, images)


def whole_logits(model, images: torch.Tensor) -> torch.Tensor:
    """model(images), computed as stride-8 logits resized in NCHW layout when the model exposes
    them (SegNeXt does exactly this; an optimized model keeps channels-last tensors inside, and
    resizing always in NCHW keeps `segment`'s labels identical to this function's argmax)."""
    forward_logits = getattr(model, "forward_logits", None)
    if forward_logits is None:
        return model(images)
    return resize_bilinear(forward_logits(images).contiguous(), images.shape[2:])


@torch.no_grad()
def segment_logits(model, image: np.ndarray, config: TestConfig = TestConfig(),
                   device: Optional[torch.device] = None) -> torch.Tensor:
    """uint8 RGB image (H, W, 3) -> (num_classes, H, W) scores at the original size.

    Single scale without flip: logits. Otherwise: averaged softmax probabilities (as the paper).
    """
    device = device or next(model.parameters()).device
    height, width = image.shape[:2]
    single = len(config.scales) == 1 and not config.flip
    if not single and _banded_multi_scale(model, config):
        sources = _whole_image_sources(model, image, config, device)
        scores = torch.empty((sources[0][0].shape[0], height, width), device=sources[0][0].device)
        for rows, band in _multi_scale_bands(sources, height, width):
            scores[:, rows] = band
        return scores
    total = None
    for ratio in config.scales:
        resized = resize_for_test(image, config.img_scale, ratio, config.size_divisor)
        x = to_tensor(resized, config.mean, config.std).to(device)
        for flipped in ((False, True) if config.flip else (False,)):
            inp = x.flip(3) if flipped else x
            scores = model_logits(model, inp, config)
            scores = resize_bilinear(scores, (height, width))
            if not single:
                scores = scores.softmax(dim=1)
            if flipped:
                scores = scores.flip(3)
            total = scores if total is None else total + scores
    count = len(config.scales) * (2 if config.flip else 1)
    return (total / count)[0]


# --------------------------------------------------------------------------------------------
# Multi-scale (+ flip) whole-image test in bands of rows
#
# Averaging K class probabilities over scales at the original size holds K x H x W floats: 29 GB
# for ADE20K's 150 classes on an 8000 x 6000 photo. For the whole-image test the stride-8 logits
# of every scale and flip are small, so the average is built one band of output rows at a time:
# per source, the rows of the band come from the chain of resizes (stride 8 -> resized image ->
# original) as a vertical interpolation with F.interpolate's own weights (a few low-resolution
# rows per band) followed by F.interpolate along the width; a flipped source is flipped back at
# low resolution (a bilinear resize commutes with a horizontal flip). The result equals the
# resize-everything computation to float rounding; `segment` takes the argmax of exactly the
# numbers `segment_logits` returns, band by band.

MULTI_SCALE_BAND_BYTES = 64 << 20  # class scores of one band of output rows


def _banded_multi_scale(model, config: TestConfig) -> bool:
    return config.mode == "whole" and getattr(model, "forward_logits", None) is not None


def _whole_image_sources(model, image: np.ndarray, config: TestConfig, device) -> List[Tuple[torch.Tensor, list]]:
    """Per (scale, flip): stride-8 logits (K, h, w) in the image's orientation, and the sizes they
    are resized through (the resized image's, then the original's)."""
    sources = []
    for ratio in config.scales:
        resized = resize_for_test(image, config.img_scale, ratio, config.size_divisor)
        x = to_tensor(resized, config.mean, config.std).to(device)
        for flipped in ((False, True) if config.flip else (False,)):
            low = model.forward_logits(x.flip(3) if flipped else x)[0].float().contiguous()
            if flipped:
                low = low.flip(-1)
            sources.append((low, [tuple(x.shape[2:]), tuple(image.shape[:2])]))
    return sources


def _multi_scale_bands(sources, height: int, width: int) -> Iterator[Tuple[slice, torch.Tensor]]:
    """(rows, averaged probabilities (K, rows, W)) for consecutive bands of output rows."""
    classes = sources[0][0].shape[0]
    vertical = [bilinear_weights(low.shape[1], [size[0] for size in chain], low.device) for low, chain in sources]
    windows = [[rows.tolist() for rows in contributing_rows(weights)] for weights in vertical]
    band_rows = max(1, MULTI_SCALE_BAND_BYTES // (4 * classes * width))
    for top in range(0, height, band_rows):
        rows = slice(top, min(top + band_rows, height))
        total = None
        for (low, chain), weights, (first_row, end_row) in zip(sources, vertical, windows):
            first, end = min(first_row[rows]), max(end_row[rows])
            scores = torch.matmul(weights[first:end, rows].t(), low[:, first:end])  # (K, b, w)
            scores = scores[None]
            for size in chain:  # along the width only: the height is already final
                scores = F.interpolate(scores, size=(scores.shape[2], size[1]), mode="bilinear", align_corners=False)
            probabilities = scores[0].softmax(dim=0)
            total = probabilities if total is None else total.add_(probabilities)
        yield rows, total.div_(len(sources))


def segment(model, image: np.ndarray, config: TestConfig = TestConfig(),
            device: Optional[torch.device] = None) -> torch.Tensor:
    """uint8 RGB image -> int64 label map (H, W) at the image's size.

    Always equal to `segment_logits(...).argmax(0)`. On CPU, single-scale inference never holds
    the class scores at the original size: the labels come from `label_upsample.upsampled_argmax`,
    which resizes only where the winner is in doubt (the memory of an 8000 x 6000 photo is a few
    label maps instead of num_classes score maps). The multi-scale (+ flip) whole-image test
    averages the probabilities one band of rows at a time (see above), on any device.
    """
    device = device or next(model.parameters()).device
    single = len(config.scales) == 1 and not config.flip
    if not single and _banded_multi_scale(model, config):
        with torch.no_grad():
            height, width = image.shape[:2]
            labels = torch.empty((height, width), dtype=torch.int64)
            for rows, band in _multi_scale_bands(_whole_image_sources(model, image, config, device), height, width):
                labels[rows] = band.argmax(0).cpu()
            return labels.to(device)
    if not single or torch.device(device).type != "cpu":
        return segment_logits(model, image, config, device).argmax(0)
    with torch.no_grad():
        height, width = image.shape[:2]
        resized = resize_for_test(image, config.img_scale, config.scales[0], config.size_divisor)
        x = to_tensor(resized, config.mean, config.std).to(device)
        forward_logits = getattr(model, "forward_logits", None)
        if config.mode == "whole" and forward_logits is not None:
            # stride-8 logits -> resized-image size -> original size, as whole_logits + segment_logits
            low = forward_logits(x)[0]
            sizes = [tuple(x.shape[2:]), (height, width)]
        else:
            low = model_logits(model, x, config)[0]
            sizes = [(height, width)]
        return upsampled_argmax(low, sizes)
