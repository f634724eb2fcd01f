"""Several images per forward pass, each with exactly the result it gets alone.

`segnext.inference.segment` is the reference: one image at a time, as the official test loop.
This module is a layer on top that gives every image the same labels (and scores) while the model
sees a batch:

- `prepare(image, config)` does the per-image work that needs no model: read the image, resize it
  for every test scale. It uses NumPy only, so it can run in DataLoader workers or threads.
- Images are batched only with images of the same resized size (`PreparedImage.group_key`), never
  padded: SegNeXt's decoder factorises the whole feature map (the NMF "Hamburger" mixes every
  position with every other), so padding would change the prediction of every pixel, not just the
  border. With the official keep-ratio resize, photos of one camera, and frames of one video,
  share a size.
- `batches_by_size` cuts a stream of prepared images into such groups, holding at most a bounded
  number of images while it waits for a group to fill.
- `segment_group` / `segment_group_scores` run one group: the same steps as `segment` /
  `segment_logits`, with the model called once per scale (and flip) for the whole group, and the
  resize to each image's own size done per image.

On the CPU the optimized model runs a batch one image at a time through oneDNN (see
`segnext.inference.optimize`) and the results are bit-identical to single-image ones. Elsewhere
(the plain model, a GPU) a batch can use different convolution algorithms than a single image,
so scores agree to float rounding and labels can differ only where two classes tie to rounding.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.banded_average import average_probabilities_in_bands
from ..ops.label_upsample import upsampled_argmax
from .preprocess import ImageInput, resize_for_test, to_rgb_array, to_tensor
from .segment import model_logits
from .settings import TestConfig

Tag = TypeVar("Tag")


@dataclass
class PreparedImage:
    """An image made ready for the model, without the model.

    size: (height, width) of the image, the size of its label map.
    views: the image resized for each test scale (`config.scales`, in order), uint8 (h, w, 3).
    rgb: the image itself (uint8 RGB), when kept for overlays.
    """

    size: Tuple[int, int]
    views: Tuple[np.ndarray, ...]
    rgb: Optional[np.ndarray] = None

    @property
    def group_key(self) -> Tuple[Tuple[int, int], ...]:
        """Images with equal keys can share a forward pass: their inputs have the same sizes."""
        return tuple(view.shape[:2] for view in self.views)


def prepare(image: ImageInput, config: TestConfig, *, keep_image: bool = False) -> PreparedImage:
    """Read `image` (path, PIL image or array, as `to_rgb_array`) and resize it for every scale of
    the test, as `segment` does. keep_image: keep the RGB image too (for overlays)."""
    rgb = to_rgb_array(image)
    views = tuple(resize_for_test(rgb, config.img_scale, ratio, config.size_divisor) for ratio in config.scales)
    return PreparedImage(size=(rgb.shape[0], rgb.shape[1]), views=views, rgb=rgb if keep_image else None)


def batches_by_size(stream: Iterable[Tuple[Tag, PreparedImage]], batch_size: int,
                    max_waiting: Optional[int] = None) -> Iterator[List[Tuple[Tag, PreparedImage]]]:
    """Groups of up to `batch_size` (tag, image) pairs of one `group_key`, as they fill up.

    A group is given out as soon as it is full. While more than `max_waiting` images (default
    4 x batch_size) wait in groups that are not full, the fullest group is given out (the oldest
    among equals), so memory stays bounded when sizes vary. The rest is given out at the end, in
    order of first arrival.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    max_waiting = max(batch_size, max_waiting if max_waiting is not None else 4 * batch_size)
    waiting: OrderedDict[Hashable, List[Tuple[Tag, PreparedImage]]] = OrderedDict()
    count = 0
    for tag, image in stream:
        group = waiting.setdefault(image.group_key, [])
        group.append((tag, image))
        count += 1
        if len(group) == batch_size:
            del waiting[image.group_key]
            count -= batch_size
            yield group
        elif count > max_waiting:
            fullest = max(waiting, key=lambda key: len(waiting[key]))  # max() keeps the first (oldest) of ties
            count -= len(waiting[fullest])
            yield waiting.pop(fullest)
    yield from waiting.values()


def _check_group(group: Sequence[PreparedImage]) -> None:
    if not group:
        raise ValueError("an empty group of images")
    keys = {image.group_key for image in group}
    if len(keys) > 1:
        raise ValueError(f"a group must hold images of one resized size, got {sorted(keys)}; "
                         f"group them with batches_by_size")


def _batched_views(group: Sequence[PreparedImage], config: TestConfig, device):
    """(normalised batch of the group's resized images, flipped?) for every scale and flip, in
    the order `segment` visits them."""
    for index in range(len(config.scales)):
        x = torch.cat([to_tensor(image.views[index], config.mean, config.std) for image in group]).to(device)
        for flipped in ((False, True) if config.flip else (False,)):
            yield x, flipped


def _banded(model, config: TestConfig) -> bool:
    return config.mode == "whole" and hasattr(model, "forward_logits")


def _stride8_sources(model, group: Sequence[PreparedImage], config: TestConfig, device):
    """Per image: [(stride-8 logits (K, h, w) in the image's orientation, sizes they are resized
    through)] for every scale and flip, as `segment` computes them for that image alone."""
    sources: List[list] = [[] for _ in group]
    for x, flipped in _batched_views(group, config, device):
        low = model.forward_logits(x.flip(3) if flipped else x)
        for index, image in enumerate(group):
            one = low[index].float().contiguous()
            sources[index].append((one.flip(-1) if flipped else one, [tuple(x.shape[2:]), image.size]))
    return sources


@torch.no_grad()
def segment_group_scores(model, group: Sequence[PreparedImage], config: TestConfig, device, *,
                         memory_efficient: bool = False) -> List[torch.Tensor]:
    """`segment_logits` for every image of a group: (num_classes, H, W) scores at each image's size
    (logits for a single scale without flip, else averaged softmax probabilities)."""
    _check_group(group)
    if memory_efficient and not config.single_scale and _banded(model, config):
        results = []
        for sources, (height, width) in zip(_stride8_sources(model, group, config, device),
                                            (image.size for image in group)):
            scores = torch.empty((sources[0][0].shape[0], height, width), device=sources[0][0].device)
            for rows, band in average_probabilities_in_bands(sources, height, width):
                scores[:, rows] = band
            results.append(scores)
        return results
    totals: List[Optional[torch.Tensor]] = [None] * len(group)
    for x, flipped in _batched_views(group, config, device):
        batch_scores = model_logits(model, x.flip(3) if flipped else x, config)
        for index, image in enumerate(group):
            scores = F.interpolate(batch_scores[index:index + 1], size=image.size, mode="bilinear",
                                   align_corners=False)
            if not config.single_scale:
                scores = scores.softmax(dim=1)
            if flipped:
                scores = scores.flip(3)
            totals[index] = scores if totals[index] is None else totals[index] + scores
        del batch_scores
    views = len(config.scales) * (2 if config.flip else 1)
    return [(total / views)[0] for total in totals]


@torch.no_grad()
def segment_group(model, group: Sequence[PreparedImage], config: TestConfig, device, *,
                  memory_efficient: bool = False) -> List[torch.Tensor]:
    """`segment` for every image of a group: int64 label maps (H, W) at each image's size."""
    _check_group(group)
    if not memory_efficient or (not config.single_scale and not _banded(model, config)):
        return [scores.argmax(0) for scores in segment_group_scores(model, group, config, device)]
    if not config.single_scale:
        results = []
        for sources, (height, width) in zip(_stride8_sources(model, group, config, device),
                                            (image.size for image in group)):
            labels = torch.empty((height, width), dtype=torch.int64)
            for rows, band in average_probabilities_in_bands(sources, height, width):
                labels[rows] = band.argmax(0).cpu()
            results.append(labels.to(device))
        return results
    x, _ = next(_batched_views(group, config, device))
    if _banded(model, config):
        # stride-8 logits -> resized-image size (the model's own resize) -> each image's size
        low, resized = model.forward_logits(x), [tuple(x.shape[2:])]
    else:
        low, resized = model_logits(model, x, config), []
    return [upsampled_argmax(low[index], [*resized, image.size]).to(device) for index, image in enumerate(group)]
