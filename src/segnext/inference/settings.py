"""Test-time settings: the one object that says how an image is segmented, and where it comes from.

`TestConfig` is used by evaluation, prediction, export and the training config's `evaluation`
section alike. The settings of a model (`test_config_for`) come, in order, from the model itself
(`model.config.test_settings`: saved in its model folder, or read from the `evaluation` section of
a training checkpoint), else from the official test settings of the dataset its classes belong to
(`OFFICIAL_TEST_CONFIGS`, the official SegNeXt configs and MMSegmentation's standard ones), else
ADE20K's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Optional, Sequence, Tuple

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..data.bands import reads_bands

MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the paper's multi-scale test


@dataclass
class TestConfig:
    """How an image is segmented at test time (the official test pipeline's settings).

    Args:
        img_scale: (long, short) bound of the keep-ratio resize before inference; None keeps the
            image's size.
        size_divisor: then resize up to a multiple of this (SegNeXt's ADE20K/COCO-Stuff test: 32).
        mode: "whole" (the whole resized image at once) or "slide" (overlapping windows whose
            logits are averaged).
        crop_size: slide window (h, w).
        stride: slide stride (h, w).
        scales: ratios of img_scale; several (`MS_RATIOS`) for the multi-scale test, where the
            softmax probabilities of every scale (and flip) are averaged.
        flip: also segment the horizontally flipped image and average.
        mean, std: the normalisation of RGB pixels (0..255) the model was trained with; for a model
            of other input channels (`in_channels`), one value per channel, and images are then
            arrays (H, W, channels) in the units of those values (`channels`).
        bands: read images of three channels as bands too, in their own type and units
            (`segnext.data.read_bands`) rather than as 8-bit RGB: colour of more than 8 bits a
            sample (16-bit aerial scenes), mean and std in its units. Images of other channels
            than three are always read as bands (`reads_bands`).
        nodata: a value of the bands' samples that marks no data (a DEM's -9999, a satellite band's
            0): such samples are taken as NaN, the channel's mean once normalised, before any resize,
            as in training (`data.nodata`), so that the pixels around them are not pulled by an
            outlier. For images read as bands.
    """

    __test__ = False  # not a pytest test class, despite the name

    img_scale: Optional[Tuple[int, int]] = (2048, 512)
    size_divisor: Optional[int] = None
    mode: str = "whole"
    crop_size: Optional[Tuple[int, int]] = None
    stride: Optional[Tuple[int, int]] = None
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    bands: bool = False
    nodata: Optional[float] = None

    def __post_init__(self):
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"test mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide" and (self.crop_size is None or self.stride is None):
            raise ValueError("slide inference needs crop_size and stride, e.g. crop_size=(1024, 1024), "
                             "stride=(768, 768)")
        for name in ("img_scale", "crop_size", "stride"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(int(v) for v in value))
        self.scales = tuple(float(s) for s in self.scales)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if not self.scales:
            raise ValueError("scales must hold at least one ratio, e.g. (1.0,)")
        for name, example in (("img_scale", "(2048, 512)"), ("crop_size", "(512, 512)"), ("stride", "(341, 341)")):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise ValueError(f"{name} must be two positive integers, e.g. {example}; got {value}")
        if self.size_divisor is not None and self.size_divisor < 1:
            raise ValueError(f"size_divisor must be a positive integer (e.g. 32) or None, got {self.size_divisor}")
        if any(not math.isfinite(s) or s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive ratios, e.g. (0.75, 1.0, 1.25); got {self.scales}")
        if not isinstance(self.bands, bool):
            raise ValueError(f"bands must be true or false, got {self.bands!r}")
        if not self.mean or len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"mean and std must be one value per input channel each (three for RGB), std "
                             f"positive; got mean {self.mean}, std {self.std}")
        if self.nodata is not None:
            if isinstance(self.nodata, bool) or not isinstance(self.nodata, (int, float)) or \
                    not math.isfinite(self.nodata):
                raise ValueError(f"nodata must be the number that marks no data in the bands (e.g. -9999), got "
                                 f"{self.nodata!r}; NaN needs none (it is the channel's mean already)")
            if not self.reads_bands:
                raise ValueError("nodata marks no data in images read as bands (in_channels other than 3, or "
                                 "bands=True); 8-bit RGB pictures have none")
            self.nodata = float(self.nodata)

    @property
    def channels(self) -> int:
        """The input channels the normalisation is for: 3 (RGB) but for models of other inputs."""
        return len(self.mean)

    @property
    def reads_bands(self) -> bool:
        """Images are arrays or files of bands in their own units (`segnext.data.read_bands`), not
        8-bit RGB: for other channels than three, or three with `bands`."""
        return reads_bands(self.channels, self.bands)

    @property
    def single_scale(self) -> bool:
        """One scale without flip: the result is the logits, not averaged probabilities."""
        return len(self.scales) == 1 and not self.flip

    def describe(self) -> str:
        """One line for logs: e.g. "whole, img_scale (480, 360), scale 1.5, flip" or "slide 1024x1024
        windows, stride 768x768, img_scale (2048, 1024), multi-scale 0.75, 1, 1.25, flip"."""
        if self.mode == "slide":
            parts = [f"slide {self.crop_size[0]}x{self.crop_size[1]} windows, stride {self.stride[0]}x{self.stride[1]}"]
        else:
            parts = ["whole"]
        parts.append(f"img_scale {self.img_scale}" if self.img_scale else "original size")
        if self.size_divisor:
            parts.append(f"sides rounded up to a multiple of {self.size_divisor}")
        if len(self.scales) > 1:
            parts.append(f"multi-scale {', '.join(f'{s:g}' for s in self.scales)}")
        elif self.scales[0] != 1.0:
            parts.append(f"scale {self.scales[0]:g}")
        if self.flip:
            parts.append("flip")
        return ", ".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(TestConfig)}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> TestConfig:
        """From a dict that may hold other keys too (a training config's `evaluation` section)."""
        return cls(**{f.name: values[f.name] for f in fields(TestConfig) if f.name in values})


# The official test settings of each dataset: the official SegNeXt configs (ADE20K, Cityscapes,
# COCO-Stuff) and MMSegmentation's standard ones for the others.
OFFICIAL_TEST_CONFIGS: Dict[str, TestConfig] = {
    "ade20k": TestConfig(img_scale=(2048, 512), size_divisor=32),
    "coco_stuff": TestConfig(img_scale=(2048, 512), size_divisor=32),
    "cityscapes": TestConfig(img_scale=(2048, 1024), mode="slide", crop_size=(1024, 1024), stride=(768, 768)),
    "voc": TestConfig(img_scale=(2048, 512)),
    "voc_aug": TestConfig(img_scale=(2048, 512)),
    "pascal_context": TestConfig(img_scale=(520, 520), mode="slide", crop_size=(480, 480), stride=(320, 320)),
    "pascal_context_59": TestConfig(img_scale=(520, 520), mode="slide", crop_size=(480, 480), stride=(320, 320)),
    "isaid": TestConfig(img_scale=(896, 896)),
    "camvid": TestConfig(img_scale=None),
}

# Which dataset a head of this many classes most likely belongs to, when it carries no class names.
_DATASET_BY_CLASS_COUNT = {150: "ade20k", 171: "coco_stuff", 19: "cityscapes", 21: "voc", 59: "pascal_context_59",
                           60: "pascal_context", 16: "isaid", 11: "camvid"}


def dataset_of(num_classes: int, class_names: Optional[Sequence[str]] = None) -> Optional[str]:
    """The dataset a head was trained on: by its class names when known, else by the class count."""
    from ..data.datasets import DATASETS

    if class_names:
        wanted = [str(name).strip().lower() for name in class_names]
        for name, spec in DATASETS.items():
            if spec.class_names and [str(n).strip().lower() for n in spec.class_names] == wanted:
                return name
        return None  # a custom dataset: its class count says nothing
    return _DATASET_BY_CLASS_COUNT.get(num_classes)


def default_test_config(num_classes: int, class_names: Optional[Sequence[str]] = None) -> TestConfig:
    """The official test settings of the dataset the head was trained on; ADE20K's otherwise."""
    return OFFICIAL_TEST_CONFIGS.get(dataset_of(num_classes, class_names), TestConfig())


def test_config_for(model) -> TestConfig:
    """How `model` is tested: its own saved settings (`model.config.test_settings`), else the
    official settings of its dataset."""
    config = getattr(model, "config", None)
    saved = getattr(config, "test_settings", None)
    if saved:
        try:
            return TestConfig.from_dict(saved)
        except (TypeError, ValueError) as error:
            raise ValueError(f"the model's saved test settings {saved} are invalid ({error}); fix test_settings in "
                             f"its config.json or pass the settings explicitly") from None
    num_classes = int(getattr(model, "num_classes", 0) or getattr(config, "num_classes", 0))
    return default_test_config(num_classes, getattr(config, "class_names", None) or getattr(model, "class_names", None))


def override_test_config(config: TestConfig, *, mode: Optional[str] = None, img_scale=Ellipsis,
                         size_divisor=Ellipsis, crop_size=None, stride=None, scales=None,
                         flip: Optional[bool] = None, multi_scale: bool = False) -> TestConfig:
    """`config` with the given settings replaced (Ellipsis / None: keep). multi_scale=True selects the
    paper's multi-scale + flip test (`MS_RATIOS`)."""
    changes: Dict[str, Any] = {}
    if mode is not None:
        changes["mode"] = mode
    if img_scale is not Ellipsis:
        changes["img_scale"] = img_scale
    if size_divisor is not Ellipsis:
        changes["size_divisor"] = size_divisor
    if crop_size is not None:
        changes["crop_size"] = tuple(crop_size)
    if stride is not None:
        changes["stride"] = tuple(stride)
    if multi_scale:
        changes["scales"], changes["flip"] = MS_RATIOS, True
    if scales is not None:
        changes["scales"] = tuple(scales)
    if flip is not None:
        changes["flip"] = flip
    if changes.get("mode") == "slide" and changes.get("crop_size") is None and config.crop_size is None:
        raise ValueError("slide inference needs a window: pass crop_size/stride (--crop-size H W --stride H W)")
    if changes.get("mode") == "slide" and changes.get("stride") is None and config.stride is None:
        crop = changes.get("crop_size") or config.crop_size
        changes["stride"] = tuple(max(1, (c * 3) // 4) for c in crop)  # the official 1024/768 overlap
    return replace(config, **changes)
