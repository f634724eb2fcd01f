"""Training and test pipelines, with MMSegmentation 0.x semantics (what SegNeXt was trained with).

Train (`TrainTransform`), in this order:
 1. Resize keeping the aspect ratio: scale = img_scale * ratio with ratio ~ U(ratio_range); the
    image is rescaled by the largest factor that keeps its long side <= max(scale) and its short
    side <= min(scale) (bilinear for the image, nearest for the label).
 2. Random crop to crop_size; while one class covers >= cat_max_ratio of the labelled pixels of
    the crop (or fewer than two classes are present), draw another crop, at most 10 times.
 3. Horizontal flip with probability flip_prob.
 4. Photometric distortion: brightness, then contrast (first or last, at random), saturation and
    hue; each applied with probability 1/2.
 5. Normalise with mean/std (RGB), pad to crop_size (image 0 after normalising, label 255); NaN in
    float bands (no data) is 0 after normalising too.

Images of other channels than RGB (float32 bands, `segnext.data.read_bands`, with one mean and std
per channel) take steps 1-3 and 5 alike; the photometric distortion is RGB's and is refused for them.

The test-time preprocessing is `segnext.inference.resize_for_test` and `to_tensor`.

Random numbers come from the numpy Generator the dataset passes in, so an augmentation depends
only on (seed, epoch, index). Labels are only ever resized with nearest neighbour, so no new ids
appear.
"""

from __future__ import annotations

import os
import random
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from .resize import opencv, opencv_if_installed, rescale_size, resize_image, resize_label

# mmseg's RandomCrop checks the first crop and then retries at most this many times.
CROP_RETRIES = 10


def _pair(value, what: str) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{what} must be an int or a pair of positive ints, got {value!r}")


def _table(alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """Lookup table of mmseg's `convert`: uint8(clip(float32(x) * alpha + beta, 0, 255)) for every
    uint8 x. Applying it with cv2.LUT gives exactly the per-pixel float32 arithmetic, faster."""
    values = np.arange(256, dtype=np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(values, 0, 255).astype(np.uint8)


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """(image - mean) / std in float32, as a (C, H, W) array. Float bands' NaN (their no data) become
    0, the mean, as padding does: one NaN would make the whole crop's GroupNorm, and the loss, NaN."""
    mean = np.asarray(mean, dtype=np.float32)
    inv_std = (1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32)
    normalized = (image.astype(np.float32) - mean) * inv_std
    if np.issubdtype(image.dtype, np.floating):
        np.nan_to_num(normalized, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1))


def normalize_and_pad(image: np.ndarray, label: np.ndarray, crop_size: Tuple[int, int], mean, std,
                      ignore_index: int = IGNORE_INDEX) -> dict:
    """The pipeline's last step: dict(image=float32 (C, h, w) normalised, zero-padded at the bottom and
    right to at least crop_size; label=int64 (h, w) padded with ignore_index)."""
    crop_h, crop_w = crop_size
    height, width = label.shape
    padded_image = np.zeros((len(mean), max(crop_h, height), max(crop_w, width)), dtype=np.float32)
    padded_image[:, :height, :width] = normalize(image, mean, std)
    padded_label = np.full(padded_image.shape[1:], ignore_index, dtype=np.int64)
    padded_label[:height, :width] = label
    return dict(image=torch.from_numpy(padded_image), label=torch.from_numpy(padded_label))


class TrainTransform:
    """The SegNeXt training pipeline; `transform(sample, rng)` -> dict(image, label) tensors.

    crop_size: (height, width) of the output. img_scale: the (long, short) edge bound of the
    resize before the random ratio, e.g. (2048, 512) for ADE20K, None to skip resizing.
    ratio_range: (low, high) of the random ratio, None for a fixed scale.
    Output: image float32 (C, crop_h, crop_w) normalised and zero-padded (C = 3 for RGB); label int64
    (crop_h, crop_w) with 255 = ignore (also in the padding).
    mean/std: one value per channel; other than three take images of that many bands (H, W, C) and
    need photometric=False, as do three read as bands (float32, not 8-bit RGB).
    """

    def __init__(self, crop_size=(512, 512), img_scale: Optional[Tuple[int, int]] = (2048, 512),
                 ratio_range: Optional[Tuple[float, float]] = (0.5, 2.0), cat_max_ratio: float = 0.75,
                 flip_prob: float = 0.5, photometric: bool = True, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 ignore_index: int = IGNORE_INDEX):
        opencv()  # needed for every sample: say so now, not in a DataLoader worker
        self.crop_size = _pair(crop_size, "crop_size")
        self.img_scale = None if img_scale is None else _pair(img_scale, "img_scale")
        if ratio_range is not None:
            low, high = ratio_range
            if not 0 < low <= high:
                raise ValueError(f"ratio_range must be (low, high) with 0 < low <= high, got {ratio_range!r}")
            ratio_range = (float(low), float(high))
        self.ratio_range = ratio_range
        self.cat_max_ratio = float(cat_max_ratio)
        self.flip_prob = float(flip_prob)
        self.photometric = bool(photometric)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std need one value per image channel each, got {len(self.mean)} and "
                             f"{len(self.std)}")
        if self.photometric and len(self.mean) != 3:
            raise ValueError(f"the photometric distortion (brightness, contrast, saturation, hue) is for RGB images, "
                             f"and these have {len(self.mean)} channels (mean/std): set photometric=False")
        self.ignore_index = int(ignore_index)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        image, label = sample["image"], sample["label"]
        image, label = self.random_resize(image, label, rng)
        image, label = self.random_crop(image, label, rng)
        image, label = self.random_flip(image, label, rng)
        if self.photometric:
            if image.dtype != np.uint8:
                raise ValueError(f"the photometric distortion (brightness, contrast, saturation, hue) is for 8-bit "
                                 f"RGB images, and {sample.get('path', 'this image')} is read as {image.dtype} bands: "
                                 f"set photometric=False")
            image = apply_photometric_distortion(image, draw_photometric_params(rng))
        return self.normalize_and_pad(image, label)

    # The steps, in pipeline order; each is usable (and tested) on its own.

    def random_scale(self, rng: np.random.Generator) -> Tuple[int, int]:
        """The resize target of one sample: int(img_scale * ratio), ratio ~ U(ratio_range)."""
        if self.ratio_range is None:
            return self.img_scale
        low, high = self.ratio_range
        ratio = rng.random() * (high - low) + low
        return int(self.img_scale[0] * ratio), int(self.img_scale[1] * ratio)

    def random_resize(self, image, label, rng):
        if self.img_scale is None:
            return image, label
        width, height = rescale_size(image.shape[1], image.shape[0], self.random_scale(rng))
        return resize_image(image, width, height), resize_label(label, width, height)

    def random_crop_box(self, height: int, width: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
        """(top, bottom, left, right) of a crop_size window at a uniform random offset."""
        crop_h, crop_w = self.crop_size
        top = int(rng.integers(0, max(height - crop_h, 0) + 1))
        left = int(rng.integers(0, max(width - crop_w, 0) + 1))
        return top, top + crop_h, left, left + crop_w

    def crop_is_varied(self, label_crop: np.ndarray) -> bool:
        """mmseg's acceptance rule: more than one class among the non-ignored pixels, and the
        largest class below cat_max_ratio of them."""
        counts = np.bincount(label_crop.ravel(), minlength=256)
        counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def random_crop(self, image, label, rng):
        height, width = label.shape
        top, bottom, left, right = self.random_crop_box(height, width, rng)
        if self.cat_max_ratio < 1.0:
            for _ in range(CROP_RETRIES):
                if self.crop_is_varied(label[top:bottom, left:right]):
                    break
                top, bottom, left, right = self.random_crop_box(height, width, rng)
        return image[top:bottom, left:right], label[top:bottom, left:right]

    def random_flip(self, image, label, rng):
        if rng.random() < self.flip_prob:
            return image[:, ::-1], label[:, ::-1]
        return image, label

    def normalize_and_pad(self, image: np.ndarray, label: np.ndarray) -> dict:
        return normalize_and_pad(image, label, self.crop_size, self.mean, self.std, self.ignore_index)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, img_scale={self.img_scale}, "
                f"ratio_range={self.ratio_range}, cat_max_ratio={self.cat_max_ratio}, "
                f"flip_prob={self.flip_prob}, photometric={self.photometric})")


# Photometric distortion: mmseg's PhotoMetricDistortion with its default ranges. mmseg works on
# BGR; brightness and contrast act on each channel alike, and OpenCV's HSV of an RGB image
# (COLOR_RGB2HSV) holds the same numbers as its HSV of the BGR image, so working in RGB gives
# identical pixels.
BRIGHTNESS_DELTA = 32
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18


class ClassPaste:
    """Class-selective copy-paste: ClassMix (Olsson et al., WACV 2021) restricted to chosen classes.

    With probability `probability`, the pixels of `class_ids` in a second training sample (the donor,
    augmented on its own) are pasted onto the sample, image and label alike. Thin and rare classes
    (poles, signs, cyclists) then appear more often and in more contexts than the dataset shows them.
    The samples are the transform's output (normalised image (3, H, W), labels (H, W), one crop size).
    """

    def __init__(self, class_ids: Sequence[int], probability: float = 0.5):
        if not class_ids:
            raise ValueError("ClassPaste needs at least one class id to paste")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"ClassPaste probability must be from 0 to 1, got {probability}")
        self.class_ids = tuple(int(c) for c in class_ids)
        self.probability = float(probability)

    def __call__(self, sample: dict, donor: dict) -> dict:
        label, donor_label = torch.as_tensor(sample["label"]), torch.as_tensor(donor["label"])
        if donor_label.shape != label.shape:
            raise ValueError(f"ClassPaste: the donor's labels are {tuple(donor_label.shape)}, the sample's "
                             f"{tuple(label.shape)}; both must come from a transform that crops to one size")
        pasted = torch.isin(donor_label, torch.tensor(self.class_ids, dtype=donor_label.dtype))
        image = torch.where(pasted, torch.as_tensor(donor["image"]), torch.as_tensor(sample["image"]))
        return {**sample, "image": image, "label": torch.where(pasted, donor_label, label)}

    def __repr__(self) -> str:
        return f"ClassPaste(class_ids={self.class_ids}, probability={self.probability})"


def draw_photometric_params(rng: np.random.Generator) -> dict:
    """Draw the random choices of one distortion, in mmseg's order. A value of None means the
    step is skipped. contrast_first: whether contrast comes before saturation and hue."""
    params = dict(brightness=None, contrast=None, saturation=None, hue=None)
    if rng.integers(2):
        params["brightness"] = rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    params["contrast_first"] = bool(rng.integers(2))
    if params["contrast_first"] and rng.integers(2):
        params["contrast"] = rng.uniform(*CONTRAST_RANGE)
    if rng.integers(2):
        params["saturation"] = rng.uniform(*SATURATION_RANGE)
    if rng.integers(2):
        params["hue"] = int(rng.integers(-HUE_DELTA, HUE_DELTA))  # -18..17, as numpy's randint
    if not params["contrast_first"] and rng.integers(2):
        params["contrast"] = rng.uniform(*CONTRAST_RANGE)
    return params


def apply_photometric_distortion(image: np.ndarray, params: dict) -> np.ndarray:
    """Apply drawn parameters to an RGB uint8 image; returns RGB uint8."""
    cv2 = opencv()
    image = np.ascontiguousarray(image)
    if params["brightness"] is not None:
        image = cv2.LUT(image, _table(beta=params["brightness"]))
    if params["contrast_first"] and params["contrast"] is not None:
        image = cv2.LUT(image, _table(alpha=params["contrast"]))
    if params["saturation"] is not None:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = cv2.LUT(hsv[:, :, 1], _table(alpha=params["saturation"]))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if params["hue"] is not None:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hue_table = ((np.arange(256) + params["hue"]) % 180).astype(np.uint8)  # OpenCV hue is 0..179
        hsv[:, :, 0] = cv2.LUT(hsv[:, :, 0], hue_table)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not params["contrast_first"] and params["contrast"] is not None:
        image = cv2.LUT(image, _table(alpha=params["contrast"]))
    return image


def _distributed_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def seed_worker(worker_id: int, rank: Optional[int] = None) -> None:
    """DataLoader worker_init_fn: give each worker of each rank its own reproducible streams.

    torch seeds worker w with base_seed + w (base_seed drawn from the generator of the
    DataLoader, hence reproducible under torch.manual_seed or generator=); that seed is mixed
    with the distributed rank and the worker id to seed numpy's global RNG, Python's `random`
    and torch. The datasets' own augmentations do not use these global streams (they draw from
    per-sample generators), but user code in a worker may.

    rank: the process's rank, as `functools.partial(seed_worker, rank=rank)`; by default the
    worker's torch.distributed rank or $RANK, which workers started by spawn or forkserver (macOS,
    Windows, Python 3.14 on Linux) know only when it was set before the main process started.
    """
    rank = _distributed_rank() if rank is None else rank
    sequence = np.random.SeedSequence([torch.initial_seed(), rank, worker_id])
    numpy_seed, python_seed, torch_seed = sequence.generate_state(3, dtype=np.uint64)
    np.random.seed(int(numpy_seed) % 2**32)
    random.seed(int(python_seed))
    torch.manual_seed(int(torch_seed) % 2**63)
    cv2 = opencv_if_installed()
    if cv2 is not None:
        cv2.setNumThreads(0)  # the workers are the parallelism; OpenCV's pool does not survive fork well
