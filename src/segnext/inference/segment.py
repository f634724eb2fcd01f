"""Test-time inference exactly as the official evaluation (MMSegmentation 0.x `EncoderDecoder`).

The procedure runs on a group of images that share their resized sizes; one image is a group of one
(`segment`, `segment_logits`). For every image, as the official test loop:
1. per scale: keep-ratio resize of the uint8 image to `img_scale * ratio`, optionally up to a
   multiple of `size_divisor` (`prepare`, no model), then normalise;
2. logits at the resized size by whole-image (`model(x)`) or sliding-window inference (overlapping
   windows' logits averaged), then resized bilinearly to the image's own size;
3. a single scale without flip: those logits; several scales and/or flip: the softmax probabilities
   averaged over all of them (flipped predictions flipped back);
4. labels: the argmax over classes.

The model runs in eval mode whatever mode it is in (`evaluation_mode`): `create_model` returns a
model in training mode, as every PyTorch module, and BatchNorm's batch statistics would give other
labels and overwrite its running statistics. A model cast to float16 or bfloat16 (`model.half()`)
gets its images in that dtype and gives float32 logits (`precision.AutocastModel`).

The model sees the group as one batch per scale (and flip). Images are grouped only with images of
the same resized size (`PreparedImage.group_key`; `segnext.inference.batching` forms such groups
from a stream), never padded: SegNeXt's decoder factorises the whole feature map (the NMF
"Hamburger" mixes every position with every other), so padding would change every pixel's
prediction, not just the border's. Each image gets the result it gets alone: bit for bit with the
optimized CPU model (it runs a batch one image at a time), to float rounding elsewhere (a GPU may pick
other convolution algorithms for a batch, so labels can differ only where two classes tie).

That is `segment_group_scores` and `segment_group` (and `segment_group_confidence`: the labels with
the probability of each). With `memory_efficient=True` they compute the same result without
full-resolution score maps for every class (an 8000 x 6000 photo with 150 classes would need 29 GB):
single-scale labels come from `segnext.ops.label_upsample` (exact), the whole-image multi-scale
average and the confidence from `segnext.ops.banded_average` (equal to float rounding), and sliding
windows over an image at its own size, with or without flip, from `slide_logits_in_bands` (a band
of rows of logits at a time, the same numbers).
That path needs a model with `forward_logits` (stride-8 logits), as SegNeXt and its optimized form
have. `memory_efficient=None` chooses (`Segmenter` and `evaluate` pass it): the device's default
(`segnext.devices`: on the CPU the memory-efficient path, which is also faster there; on a GPU the
plain resize + argmax on the device), and the memory-efficient path wherever a group's
full-resolution scores would pass `FULL_SCORES_BUDGET` bytes.

An image prepared with where it holds no data (`PreparedImage.no_data`: outside an aerial scene's
footprint) gets no label there (255) and NaN confidence and probabilities, and at its own size the
sliding windows that hold nothing else are not run: the other pixels get exactly the labels they
get without it (every window over one of them still runs).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IGNORE_INDEX
from ..data.tiff_scene import TiffScene
from ..devices import device_defaults
from ..ops import banded_average
from ..ops.banded_average import Source, average_probabilities_in_bands
from ..ops.label_upsample import class_argmax, upsampled_argmax
from ..utils import atomic_write
from .precision import AutocastModel, weight_dtype
from .preprocess import ImageInput, PreparedImage, prepare, to_tensor
from .settings import TestConfig

# memory_efficient=None: full-resolution float32 scores of a group above this many bytes are not
# made, whatever the device's default (a 150-class 8000 x 6000 photo would need 29 GB).
FULL_SCORES_BUDGET = 2 << 30


# The modules that evaluation_mode switched to eval mode, with how many callers hold each: threads
# predicting with one model at once (a web server) share the switch, and the last one out undoes it.
_EVALUATING_LOCK = threading.Lock()
_EVALUATING: dict = {}  # module -> callers holding it


@contextlib.contextmanager
def evaluation_mode(model) -> Iterator[None]:
    """The model in eval mode for the duration (BatchNorm's running statistics, no drop path, the
    NMF's test iterations), then every module back in the mode it was in: a model in training mode,
    as `create_model` returns it, or one in the middle of a fine-tuning loop gives its real
    predictions and is left as it was (its running statistics untouched). Threads may predict with
    one model at once: a module goes back to training mode when the last of them is done."""
    if getattr(model, "inference_only", False) or not hasattr(model, "modules"):
        yield  # an optimized or CUDA-graph model refuses training mode altogether
        return
    held = []
    with _EVALUATING_LOCK:
        for module in model.modules():
            if module in _EVALUATING:
                _EVALUATING[module] += 1
                held.append(module)
            elif module.training:
                _EVALUATING[module] = 1
                module.training = False  # what model.eval() does, for the modules that need it
                held.append(module)
    try:
        yield
    finally:
        with _EVALUATING_LOCK:
            for module in held:
                _EVALUATING[module] -= 1
                if _EVALUATING[module] == 0:
                    del _EVALUATING[module]
                    module.training = True


def _with_float32_logits(model):
    """`model`, or for a SegNeXt whose weights were cast to float16 / bfloat16 the same taking its
    images in that dtype and giving float32 logits."""
    cast = (isinstance(model, nn.Module) and hasattr(model, "forward_logits") and not isinstance(model, AutocastModel)
            and weight_dtype(model) != torch.float32)
    return AutocastModel(model, next(iter(model.parameters())).device.type, None) if cast else model


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
    return logits.div_(counts)  # in place: a large scene's logits are not held twice


def slide_logits_in_bands(model, images: torch.Tensor, crop_size: Tuple[int, int], stride: Tuple[int, int],
                          num_classes: int, skip: Optional[Callable[[int, int, int, int], bool]] = None
                          ) -> Iterator[Tuple[slice, torch.Tensor]]:
    """`slide_logits`, bit for bit, a band of rows at a time: (rows, their logits (B, K, rows, W)),
    top to bottom. The rows above the next row of windows are final once a row of windows is done
    (the same windows added in the same order), so only about a window's height of logits is held:
    a large scene segmented at its own size needs no class scores for every pixel at once.
    skip(top, bottom, left, right): True for a window not to run (all of it holds no data); the
    logits of the pixels no window ran over are NaN (0 / 0)."""
    batch, _, height, width = images.shape
    crop_h, crop_w = crop_size
    stride_h, stride_w = stride
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    bottoms = [min(row * stride_h + crop_h, height) for row in range(rows)]
    tops = [max(bottom - crop_h, 0) for bottom in bottoms]
    # The rows are held in chunks, one per row of windows: the rows its windows reach below the rows
    # before them. A window adds into each chunk it covers, and the rows no later window reaches are
    # divided in place and given out, so that no row is ever held twice.
    chunks: deque = deque()  # (first row, logits (B, K, rows, W), counts (1, 1, rows, W))
    kind = dict(dtype=images.dtype, device=images.device)
    given_out = 0  # the rows above this one are given out
    for row, (y1, y2) in enumerate(zip(tops, bottoms)):
        held_to = chunks[-1][0] + chunks[-1][1].shape[2] if chunks else 0
        if y2 > held_to:
            chunks.append((held_to, torch.zeros((batch, num_classes, y2 - held_to, width), **kind),
                           torch.zeros((1, 1, y2 - held_to, width), **kind)))
        for col in range(cols):
            x2 = min(col * stride_w + crop_w, width)
            x1 = max(x2 - crop_w, 0)
            if skip is not None and skip(y1, y2, x1, x2):
                continue
            window_logits = model(images[:, :, y1:y2, x1:x2])
            for first, logits, counts in chunks:
                top, bottom = max(y1, first), min(y2, first + logits.shape[2])
                if top < bottom:
                    logits[:, :, top - first:bottom - first, x1:x2] += window_logits[:, :, top - y1:bottom - y1]
                    counts[:, :, top - first:bottom - first, x1:x2] += 1
        final = tops[row + 1] if row + 1 < rows else height
        while chunks and given_out < final:
            first, logits, counts = chunks[0]
            end = min(first + logits.shape[2], final)
            done = slice(given_out - first, end - first)
            yield slice(given_out, end), logits[:, :, done].div_(counts[:, :, done])
            given_out = end
            if end == first + logits.shape[2]:
                chunks.popleft()


def model_logits(model, images: torch.Tensor, config: TestConfig) -> torch.Tensor:
    """Logits at the size of `images` by whole-image or sliding-window inference."""
    if config.mode == "slide":
        return slide_logits(model, images, config.crop_size, config.stride, model.num_classes)
    return model(images)


def _views(group: Sequence[PreparedImage], config: TestConfig, device):
    """(normalised batch of the group's resized images, flipped?) for every scale and flip of the test."""
    for index in range(len(config.scales)):
        x = torch.cat([to_tensor(image.views[index], config.mean, config.std, config.nodata)
                       for image in group]).to(device)
        for flipped in ((False, True) if config.flip else (False,)):
            yield x, flipped


@torch.no_grad()
def segment_group_scores(model, group: Sequence[PreparedImage], config: Optional[TestConfig] = None, device=None, *,
                         memory_efficient: Optional[bool] = False) -> List[torch.Tensor]:
    """(num_classes, H, W) scores at each image's size: the logits for a single scale without flip,
    else the averaged softmax probabilities (as the paper). config: the test settings (default
    `TestConfig()`, ADE20K's); the group must have been prepared with them."""
    with evaluation_mode(model):
        return _segment_group_scores(_with_float32_logits(model), group, config, device, memory_efficient)


def _segment_group_scores(model, group, config, device, memory_efficient) -> List[torch.Tensor]:
    config, device = _defaults(model, group, config, device)
    memory_efficient = _memory_efficient(memory_efficient, model, group, device)
    if memory_efficient and not config.single_scale and _banded(model, config):
        return [_banded_average(sources, size) for sources, size in _stride8_sources(model, group, config, device)]
    totals: List[Optional[torch.Tensor]] = [None] * len(group)
    for x, flipped in _views(group, config, device):
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
def segment_group(model, group: Sequence[PreparedImage], config: Optional[TestConfig] = None, device=None, *,
                  memory_efficient: Optional[bool] = False, label_dtype: torch.dtype = torch.int64
                  ) -> List[torch.Tensor]:
    """Label maps (H, W) at each image's size: the argmax of `segment_group_scores`.

    memory_efficient: the same labels without full-resolution class scores; None: chosen by the
    device and the size (see the module docstring).
    label_dtype: the labels' type (default int64, as argmax gives them); torch.uint8 for up to 256
    classes holds a large scene's labels in a byte a pixel where they are made a band at a time.
    """
    _check_label_dtype(label_dtype, model.num_classes)
    with evaluation_mode(model):
        return _leave_no_data(group, _segment_group(_with_float32_logits(model), group, config, device,
                                                    memory_efficient, label_dtype))


def _segment_group(model, group, config, device, memory_efficient, label_dtype=torch.int64) -> List[torch.Tensor]:
    config, device = _defaults(model, group, config, device)
    memory_efficient = _memory_efficient(memory_efficient, model, group, device)
    if memory_efficient and _slides_at_own_size(group, config):
        return [labels for labels, _ in _slide_labels_in_bands(model, group, config, device, False, label_dtype)]
    if not memory_efficient or (not config.single_scale and not _banded(model, config)):
        return [scores.argmax(0).to(label_dtype) for scores in segment_group_scores(model, group, config, device)]
    if not config.single_scale:
        return [_banded_labels(sources, size, label_dtype).to(device) for sources, size in
                _stride8_sources(model, group, config, device)]
    return [upsampled_argmax(low, chain).to(device=device, dtype=label_dtype)
            for low, chain in _single_scale_sources(model, group, config, device)]


def _check_label_dtype(label_dtype: torch.dtype, num_classes: int) -> None:
    if label_dtype not in (torch.uint8, torch.int16, torch.int32, torch.int64) or \
            num_classes > {torch.uint8: 256, torch.int16: 2**15}.get(label_dtype, 2**31):
        raise ValueError(f"label_dtype {label_dtype} cannot hold the labels of {num_classes} classes: give "
                         f"torch.int64 (the default), torch.int32, or torch.uint8 for up to 256 classes")


@torch.no_grad()
def segment_group_confidence(model, group: Sequence[PreparedImage], config: Optional[TestConfig] = None, device=None,
                             *, memory_efficient: Optional[bool] = False, label_dtype: torch.dtype = torch.int64
                             ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per image: (labels (H, W), float32 confidence (H, W)): the labels of `segment_group`
    and the probability of each (the softmax of the logits for a single scale without flip, else
    the averaged probability).

    memory_efficient: both without full-resolution class scores: the same labels, the confidence
    one band of rows at a time (`segnext.ops.banded_average`, equal to float rounding); None:
    chosen by the device and the size (see the module docstring). label_dtype: as `segment_group`'s.
    """
    _check_label_dtype(label_dtype, model.num_classes)
    with evaluation_mode(model):
        return _leave_no_data(group, _segment_group_confidence(_with_float32_logits(model), group, config, device,
                                                               memory_efficient, label_dtype))


def _segment_group_confidence(model, group, config, device, memory_efficient, label_dtype) -> list:
    config, device = _defaults(model, group, config, device)
    memory_efficient = _memory_efficient(memory_efficient, model, group, device)
    if memory_efficient and _slides_at_own_size(group, config):
        return _slide_labels_in_bands(model, group, config, device, True, label_dtype)
    if not memory_efficient or (not config.single_scale and not _banded(model, config)):
        results = []
        for scores in _segment_group_scores(model, group, config, device, False):
            probabilities = scores.softmax(0) if config.single_scale else scores
            results.append((scores.argmax(0).to(label_dtype), probabilities.amax(0)))
        return results
    if config.single_scale:  # the labels exactly as `segment_group`, their probabilities in bands
        single = _single_scale_sources(model, group, config, device)
        sources = [([(low.float(), chain)], chain[-1]) for low, chain in single]
        labels = [upsampled_argmax(low, chain).to(device=device, dtype=label_dtype) for low, chain in single]
    else:
        sources = _stride8_sources(model, group, config, device)
        labels = [None] * len(sources)
    return [_banded_confidence(image_sources, size, image_labels, label_dtype)
            for (image_sources, size), image_labels in zip(sources, labels)]


class ClassProbabilities:
    """An image's class probabilities (num_classes, H, W) at its size, made one band of rows at a
    time (`bands()`) from the low-resolution logits of every scale and flip
    (`segnext.ops.banded_average`): a band's memory instead of K x H x W floats (a 150-class
    12-megapixel photo: 7.2 GB of float32). The values of `segment_group_scores`' probabilities, to
    float rounding. Where they were made all at once (several scales averaged within the budget,
    sliding windows over the image at its own size), `computed` holds them and the bands are its rows."""

    def __init__(self, sources: List[Source], size: Tuple[int, int], computed: Optional[torch.Tensor] = None):
        self.sources = sources
        self.size = size
        # all of them, where they were made at once (the bands are views of it): float32, or float16
        # where `segment_group_with_probabilities` was asked to hold them so
        self.computed = computed
        self.no_data: Optional[np.ndarray] = None  # where the image holds no data (bool (H, W)): NaN there

    @property
    def shape(self) -> Tuple[int, int, int]:
        classes = self.computed.shape[0] if self.computed is not None else self.sources[0][0].shape[0]
        return (classes, *self.size)

    def bands(self, band_bytes: Optional[int] = None) -> Iterator[Tuple[slice, torch.Tensor]]:
        """(rows, their probabilities (num_classes, rows, W), float32), top to bottom; NaN where the
        image holds no data (`no_data`)."""
        if self.computed is not None:  # bands as small: a writer converts one at a time
            height, width = self.size
            band_rows = max(1, (band_bytes or banded_average.BAND_BYTES) // (4 * self.shape[0] * width))
            bands = ((slice(top, min(top + band_rows, height)), self.computed[:, top:top + band_rows].float())
                     for top in range(0, height, band_rows))
        else:
            bands = average_probabilities_in_bands(self.sources, *self.size, band_bytes)
        if self.no_data is None:
            return bands
        return ((rows, band.masked_fill(torch.from_numpy(self.no_data[rows]).to(band.device), float("nan")))
                for rows, band in bands)

    def numpy(self) -> np.ndarray:
        """All of them, (num_classes, H, W) float32."""
        array = np.empty(self.shape, dtype=np.float32)
        for rows, band in self.bands():
            array[:, rows] = band.cpu().numpy()
        return array

    def save(self, path, dtype=np.float16) -> Path:
        """Write them to `path` as a .npy file of `dtype` (float16: what `segnext predict --probs`
        writes), one band at a time and atomically. Each class's rows of a band go to their place in
        the file by plain writes, not through a memory map: a full disk is then an error that names
        the file (`atomic_write`), not a crash."""
        classes, height, width = self.shape
        row_bytes = width * np.dtype(dtype).itemsize

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as file:
                np.lib.format.write_array_header_1_0(file, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                            "fortran_order": False, "shape": self.shape})
                start = file.tell()
                for rows, band in self.bands():
                    values = band.cpu().numpy().astype(dtype)
                    for index in range(classes):  # class `index`'s plane holds these rows at this offset
                        file.seek(start + (index * height + rows.start) * row_bytes)
                        file.write(values[index].tobytes())

        return atomic_write(path, write, size=classes * height * row_bytes + 128)


@torch.no_grad()
def segment_group_with_probabilities(model, group: Sequence[PreparedImage], config: Optional[TestConfig] = None,
                                     device=None, *, with_confidence: bool = False,
                                     label_dtype: torch.dtype = torch.int64,
                                     held_dtype: torch.dtype = torch.float32) -> List[tuple]:
    """Per image: (labels (H, W), its `ClassProbabilities`), and with `with_confidence` the
    probability of each label (float32 (H, W)), from one forward pass: the labels and the confidence
    as `segment_group_confidence` gives them with `memory_efficient=True`, the probabilities made
    later, a band at a time. Several scales or flips, whose labels take a pass over the bands of
    their own, are averaged once into a whole array where that fits `FULL_SCORES_BUDGET` (the
    labels and the confidence read from it), so that the bands are not computed twice.

    Sliding windows over the images at their own size make the probabilities in the labels' pass,
    a band of rows at a time (the logits of a whole scene are never held): they are kept in
    `held_dtype`, float32 by default; torch.float16 halves them, at the values of a float16 file
    (what `ClassProbabilities.save` writes by default). label_dtype: as `segment_group`'s."""
    _check_label_dtype(label_dtype, model.num_classes)
    with evaluation_mode(model):
        return _leave_no_data(group, _segment_group_with_probabilities(
            _with_float32_logits(model), group, config, device, with_confidence, label_dtype, held_dtype))


def _segment_group_with_probabilities(model, group, config, device, with_confidence, label_dtype, held_dtype) -> list:
    config, device = _defaults(model, group, config, device)
    if _slides_at_own_size(group, config):
        outputs = _slide_labels_in_bands(model, group, config, device, with_confidence, label_dtype, held_dtype)
        return [(labels, ClassProbabilities([], image.size, probabilities),
                 *([confidence] if with_confidence else []))
                for image, (labels, confidence, probabilities) in zip(group, outputs)]
    results = []
    for sources, size in _stride8_sources(model, group, config, device):
        probabilities = ClassProbabilities(sources, size)
        if len(sources) == 1:  # a single scale: the exact labels, as `segment_group`
            low, chain = sources[0]
            labels = upsampled_argmax(low, chain).to(device=device, dtype=label_dtype)
            confidence = _banded_confidence(sources, size, labels)[1] if with_confidence else None
        elif 4 * probabilities.shape[0] * size[0] * size[1] <= FULL_SCORES_BUDGET:
            probabilities.computed = _banded_average(sources, size)
            confidence, labels = probabilities.computed.max(0)
            labels = labels.to(label_dtype)
        elif with_confidence:
            labels, confidence = _banded_confidence(sources, size, None, label_dtype)
        else:
            labels, confidence = _banded_labels(sources, size, label_dtype).to(device), None
        results.append((labels, probabilities, *([confidence] if with_confidence else [])))
    return results


def segment_logits(model, image: ImageInput, config: Optional[TestConfig] = None, device=None, *,
                   memory_efficient: Optional[bool] = False) -> torch.Tensor:
    """One image (uint8 RGB (H, W, 3), a path or a PIL image) -> (num_classes, H, W) scores at its
    size: `segment_group_scores` of a group of one."""
    config = config or TestConfig()
    return segment_group_scores(model, [prepare(image, config)], config, device, memory_efficient=memory_efficient)[0]


def segment(model, image: ImageInput, config: Optional[TestConfig] = None, device=None, *,
            memory_efficient: Optional[bool] = False) -> torch.Tensor:
    """One image -> int64 label map (H, W) at its size: `segment_group` of a group of one."""
    config = config or TestConfig()
    return segment_group(model, [prepare(image, config)], config, device, memory_efficient=memory_efficient)[0]


def _defaults(model, group: Sequence[PreparedImage], config: Optional[TestConfig], device):
    if not group:
        raise ValueError("an empty group of images")
    keys = {image.group_key for image in group}
    if len(keys) > 1:
        raise ValueError(f"a group must hold images of one resized size, got {sorted(keys)}; "
                         f"group them with segnext.inference.batching.batches_by_size")
    return config or TestConfig(), torch.device(device or next(iter(model.parameters())).device)


def _memory_efficient(setting: Optional[bool], model, group: Sequence[PreparedImage], device) -> bool:
    """`setting`, or for None the device's default, overruled when the scores would not fit the budget
    or an image is a `TiffScene` (read from its file a window at a time, never all at once)."""
    if setting is not None:
        return setting
    if any(isinstance(image.views[0], TiffScene) for image in group):
        return True
    pixels = sum(height * width for height, width in (image.size for image in group))
    return device_defaults(device).memory_efficient_labels or 4 * model.num_classes * pixels > FULL_SCORES_BUDGET


# --------------------------------------------------------------------------------------------
# memory_efficient=True: the multi-scale average one band of output rows at a time


def _banded(model, config: TestConfig) -> bool:
    return config.mode == "whole" and hasattr(model, "forward_logits")


def _stride8_sources(model, group: Sequence[PreparedImage], config: TestConfig, device):
    """Per image: ([(stride-8 logits (K, h, w) in the image's orientation, the sizes they are resized
    through)] for every scale and flip, the image's size). A bilinear resize commutes with a
    horizontal flip, so flipped logits are flipped back before the resize. Where the test is not
    banded (sliding windows, a model without stride-8 logits): the logits at each resized size."""
    banded = _banded(model, config)
    sources: List[list] = [[] for _ in group]
    for x, flipped in _views(group, config, device):
        view = x.flip(3) if flipped else x
        low = model.forward_logits(view) if banded else model_logits(model, view, config)
        for index, image in enumerate(group):
            one = low[index].float().contiguous()
            chain = [tuple(x.shape[2:]), image.size] if banded else [image.size]
            sources[index].append((one.flip(-1) if flipped else one, chain))
    return [(image_sources, image.size) for image_sources, image in zip(sources, group)]


def _slides_at_own_size(group: Sequence[PreparedImage], config: TestConfig) -> bool:
    """Sliding windows over the images at their own size (`img_scale` None, one scale, with or without
    flip): no resize of the logits, so their labels come from bands of rows (`slide_logits_in_bands`)."""
    return config.mode == "slide" and len(config.scales) == 1 and all(
        tuple(image.views[0].shape[:2]) == tuple(image.size) for image in group)


def _slide_labels_in_bands(model, group: Sequence[PreparedImage], config: TestConfig, device, with_confidence: bool,
                           label_dtype: torch.dtype = torch.int64, probabilities_dtype: Optional[torch.dtype] = None):
    """Per image: (labels, the probability of each, or None), band by band: `slide_logits`' argmax
    (and softmax), or with flip the average of the image's and its mirror's probabilities, as
    `segment_group_scores` averages them (the mirror's windows cover the same rows). With
    `probabilities_dtype`, a third: the class probabilities (K, H, W), held in that type."""
    arrays = [image.views[0] for image in group]
    views = [_WindowsNormalisedOnDemand(arrays, config, device)]
    if config.flip:
        views.append(_WindowsNormalisedOnDemand(arrays, config, device, mirrored=True))
    height, width = views[0].shape[2:]
    labels = torch.empty((len(group), height, width), dtype=label_dtype, device=device)
    confidence = torch.empty((len(group), height, width), device=device) if with_confidence else None
    probabilities = None if probabilities_dtype is None else \
        torch.empty((len(group), model.num_classes, height, width), dtype=probabilities_dtype, device=device)
    bands = [slide_logits_in_bands(model, x, config.crop_size, config.stride, model.num_classes,
                                   _all_no_data(group, x.mirrored)) for x in views]
    for (rows, band), *mirror in zip(*bands):
        if mirror:
            (_, mirrored), = mirror
            scores = (band.float().softmax(1) + mirrored.float().softmax(1).flip(3)) / 2
        else:
            scores = band
        labels[:, rows] = class_argmax(scores, 1)
        if confidence is not None or probabilities is not None:
            scores = scores if mirror else scores.float().softmax(1)
        if confidence is not None:
            confidence[:, rows] = scores.amax(1)
        if probabilities is not None:
            probabilities[:, :, rows] = scores
    return [(labels[index], confidence[index] if confidence is not None else None,
             *([probabilities[index]] if probabilities is not None else [])) for index in range(len(group))]


def _all_no_data(group: Sequence[PreparedImage], mirrored: bool) -> Optional[Callable[[int, int, int, int], bool]]:
    """Whether a window (of the images, or of their mirror images) holds no data in every image of the
    group; None where an image's no data was not read. Its pixels' labels are left out after."""
    masks = [image.no_data for image in group]
    if any(mask is None for mask in masks):
        return None
    width = masks[0].shape[1]

    def all_no_data(top: int, bottom: int, left: int, right: int) -> bool:
        if mirrored:
            left, right = width - right, width - left
        return all(mask[top:bottom, left:right].all() for mask in masks)

    return all_no_data


def _leave_no_data(group: Sequence[PreparedImage], results: list) -> list:
    """`results` (per image: labels, or a tuple of labels, then `ClassProbabilities` and / or
    confidence) with no label (`IGNORE_INDEX`) and NaN probabilities and confidence where each image
    holds no data (`PreparedImage.no_data`), in place."""
    for image, result in zip(group, results):
        if image.no_data is None:
            continue
        labels, *scores = result if isinstance(result, tuple) else (result,)
        where = torch.from_numpy(image.no_data).to(labels.device)
        labels[where] = IGNORE_INDEX
        for score in scores:
            if isinstance(score, ClassProbabilities):
                score.no_data = image.no_data
            else:
                score[where] = float("nan")
    return results


class _WindowsNormalisedOnDemand:
    """The normalised batch of a group's images (or of their mirror images), as
    `slide_logits_in_bands` reads it: each window read and normalised when it is asked for, the
    values that slicing the whole normalised image gives, so that a large scene is not held a second
    time as float32 (4x its uint8 pixels), nor at all when it is a `TiffScene`."""

    def __init__(self, arrays: Sequence[np.ndarray], config: TestConfig, device, mirrored: bool = False):
        self.arrays, self.mean, self.std, self.nodata = arrays, config.mean, config.std, config.nodata
        self.mirrored = mirrored
        self.device, self.dtype = torch.device(device), torch.float32
        height, width, channels = arrays[0].shape
        self.shape = (len(arrays), channels, height, width)

    def __getitem__(self, index) -> torch.Tensor:
        _, _, rows, columns = index
        if self.mirrored:  # the mirror's columns left..right are the image's width-right..width-left, reversed
            left, right, _ = columns.indices(self.shape[3])
            columns = slice(self.shape[3] - right, self.shape[3] - left)
        windows = [array[rows, columns] for array in self.arrays]
        windows = [window[:, ::-1] if self.mirrored else window for window in windows]
        return torch.cat([to_tensor(window, self.mean, self.std, self.nodata) for window in windows]).to(self.device)


def _single_scale_sources(model, group: Sequence[PreparedImage], config: TestConfig, device):
    """Per image: (its low-resolution logits (K, h, w), the sizes they are resized through)."""
    x, _ = next(_views(group, config, device))
    if _banded(model, config):
        # stride-8 logits -> resized-image size (the model's own resize) -> each image's size
        low, resized = model.forward_logits(x), [tuple(x.shape[2:])]
    else:
        low, resized = model_logits(model, x, config), []
    return [(low[index], [*resized, image.size]) for index, image in enumerate(group)]


def _banded_confidence(sources, size: Tuple[int, int], labels: Optional[torch.Tensor],
                       label_dtype: torch.dtype = torch.int64):
    """(labels, the probability of each): the argmax of the bands unless `labels` are given."""
    confidence = torch.empty(size, device=sources[0][0].device)
    band_labels = torch.empty(size, dtype=label_dtype, device=confidence.device) if labels is None else None
    for rows, band in average_probabilities_in_bands(sources, *size):
        if labels is None:
            confidence[rows], band_labels[rows] = band.max(0)
        else:
            confidence[rows] = band.gather(0, labels[rows][None].to(band.device, torch.int64))[0]
    return (band_labels if labels is None else labels), confidence


def _banded_average(sources, size: Tuple[int, int]) -> torch.Tensor:
    height, width = size
    scores = torch.empty((sources[0][0].shape[0], height, width), device=sources[0][0].device)
    for rows, band in average_probabilities_in_bands(sources, height, width):
        scores[:, rows] = band
    return scores


def _banded_labels(sources, size: Tuple[int, int], label_dtype: torch.dtype = torch.int64) -> torch.Tensor:
    labels = torch.empty(size, dtype=label_dtype)
    for rows, band in average_probabilities_in_bands(sources, *size):
        labels[rows] = class_argmax(band, 0).cpu()
    return labels
