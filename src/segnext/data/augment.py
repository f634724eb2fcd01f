"""Augmentation pipelines of one's own in training: albumentations, torchvision transforms.v2 or a
plain function, named in the config as `data.transform: MODULE:FUNCTION`, as reproducible as the
official pipeline.

    # my_augment.py
    import albumentations as A

    def build(data):      # data: the config's data section (data.crop_size, data.mean, ...)
        return A.Compose([A.RandomResizedCrop(size=tuple(data.crop_size), scale=(0.3, 1.0)),
                          A.HorizontalFlip(), A.ColorJitter(0.3, 0.3, 0.3, 0.05)])

`build(data)` (or `build()`) returns one of
- an albumentations transform, called as `pipeline(image=image, mask=label)`;
- a torchvision transforms.v2 transform, called with a `tv_tensors.Image` and a `tv_tensors.Mask`;
- a function `f(image, label, rng) -> (image, label)` on NumPy arrays (`rng`: a numpy Generator);
- a `segnext.data.TrainTransform` (the official pipeline with settings of your own), used as it is.

The pipeline gets the RGB uint8 image (H, W, 3) and the label map of class ids (H, W; 255 = ignore)
and returns both augmented, the image still uint8 (images of other channels than RGB, or read as
bands with data.bands: float32 bands (H, W, C) in their units, returned as numbers in them).
segnext then normalises the image with data.mean/data.std (the test-time normalisation too) and
pads both to data.crop_size (image 0, label 255), as the official pipeline ends; a sample larger
than the crop is an error.

Reproducibility: the dataset hands every sample a numpy Generator seeded from (seed, epoch, index),
as it does the official pipeline. `PluginTransform` draws one seed from it and, for the call, seeds
Python's, NumPy's and torch's global RNGs (restoring them afterwards) and the pipeline's own
generators (albumentations 2 keeps its own). So the same sample in the same epoch gets the same
augmentation whichever worker or process loads it, on every run, and the caller's RNGs are untouched.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import random
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from ..utils import did_you_mean
from .transforms import TrainTransform, normalize_and_pad


@contextlib.contextmanager
def seeded_global_rngs(seed: int):
    """Seed Python's, NumPy's and torch's global RNGs for the block, then restore them (a transform
    that draws from them is reproducible, and the caller's RNGs are left as they were)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class PluginTransform:
    """A pipeline of one's own as a segnext training transform: `transform(sample, rng)` ->
    dict(image=float32 (C, h, w) normalised, label=int64 (h, w)), (h, w) = crop_size, C = len(mean).
    bands: the images are bands (float32, in their units) though three, as data.bands reads them."""

    def __init__(self, pipeline: Any, crop_size: Tuple[int, int], mean: Sequence[float], std: Sequence[float],
                 ignore_index: int = IGNORE_INDEX, name: str = "data.transform", bands: bool = False):
        self.pipeline, self.name = pipeline, name
        self.kind = pipeline_kind(pipeline)
        if self.kind is None:
            raise ValueError(f"{name} gave {type(pipeline).__name__}, not a transform: return an albumentations or "
                             f"torchvision.transforms.v2 pipeline, a segnext TrainTransform, or a function "
                             f"f(image, label, rng) -> (image, label).")
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.mean, self.std, self.ignore_index = tuple(mean), tuple(std), int(ignore_index)
        self.rgb = len(self.mean) == 3 and not bands  # 8-bit RGB in and out, else bands
        self.built_by: Optional[tuple] = None  # load_transform's arguments, when it made this

    def __reduce_ex__(self, protocol):
        # Loader workers started by spawn or forkserver (macOS, Windows, Python 3.14 on Linux) receive
        # the dataset pickled: a pipeline of one's own is built again there from its reference, as
        # its functions (closures, a file's module) cannot be pickled themselves.
        if self.built_by is not None:
            return load_transform, self.built_by
        return super().__reduce_ex__(protocol)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        seed = int(rng.integers(2**63))
        image, label = _writable(sample["image"]), _writable(sample["label"])
        with seeded_global_rngs(seed):
            image, label = self.apply(image, label, seed, rng)
        image, label = self.checked(image, label)
        return normalize_and_pad(image, label, self.crop_size, self.mean, self.std, self.ignore_index)

    def apply(self, image: np.ndarray, label: np.ndarray, seed: int, rng: np.random.Generator):
        if self.kind == "albumentations":
            if hasattr(self.pipeline, "set_random_seed"):  # albumentations >= 2 draws from generators of its own
                self.pipeline.set_random_seed(seed % 2**32)
            out = self.pipeline(image=image, mask=label)
            return out["image"], out["mask"]
        if self.kind == "torchvision":
            from torchvision import tv_tensors

            image_out, label_out = self.pipeline(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
                                                 tv_tensors.Mask(torch.from_numpy(label)))
            return image_out.permute(1, 2, 0).numpy(), label_out.numpy()
        return self.pipeline(image, label, rng)

    def checked(self, image, label) -> Tuple[np.ndarray, np.ndarray]:
        """The pipeline's output as the rest of the training pipeline needs it, or an error saying why not.
        Images of other channels than RGB (as many as data.mean's values), or read as bands, come in as
        float32 bands and may go out as any numbers of theirs, in their units."""
        image, label = np.asarray(image), np.asarray(label)
        channels = len(self.mean)
        if self.rgb and image.dtype != np.uint8:
            raise ValueError(f"{self.name} returned a {image.dtype} image; return it as uint8 (0..255) and leave "
                             f"normalisation to segnext (data.mean/data.std, which the test uses too): remove "
                             f"Normalize/ToDtype/ToTensor steps.")
        if not self.rgb and not np.issubdtype(image.dtype, np.number):
            raise ValueError(f"{self.name} returned a {image.dtype} image; return the bands as numbers in their "
                             f"units and leave normalisation to segnext (data.mean/data.std).")
        if channels == 1 and image.ndim == 2:
            image = image[:, :, None]  # some steps drop the axis of one band
        if image.ndim != 3 or image.shape[2] != channels:
            expected = "(height, width, 3) RGB" if self.rgb else f"(height, width, {channels}): data.mean's bands"
            raise ValueError(f"{self.name} returned an image of shape {image.shape}; expected {expected}.")
        if label.shape != image.shape[:2] or not np.issubdtype(label.dtype, np.integer):
            raise ValueError(f"{self.name} returned a label of shape {label.shape} ({label.dtype}) for an image of "
                             f"{image.shape[:2]}; the label must stay an integer map of the image's size (pass it "
                             f"as the mask, so that it gets the same geometric steps).")
        if label.shape[0] > self.crop_size[0] or label.shape[1] > self.crop_size[1]:
            raise ValueError(f"{self.name} returned a {label.shape[0]}x{label.shape[1]} sample (height x width), "
                             f"larger than data.crop_size {list(self.crop_size)}: end the pipeline with a crop to "
                             f"data.crop_size (e.g. A.RandomCrop or v2.RandomCrop with pad_if_needed).")
        return image, label

    def __repr__(self) -> str:
        return f"PluginTransform({self.name}, {self.kind}: {self.pipeline!r})"


def pipeline_kind(pipeline: Any):
    """"albumentations", "torchvision", "function", or None for something that is no transform."""
    module = type(pipeline).__module__ or ""
    if module.split(".")[0] == "albumentations":
        return "albumentations"
    if module.split(".")[0] == "torchvision":
        return "torchvision"
    return "function" if callable(pipeline) else None


def load_transform(reference: str, data: Any, crop_size: Tuple[int, int], mean: Sequence[float],
                   std: Sequence[float], key: str = "data.transform"):
    """The training transform that `reference` ("module:function" or "path/to/file.py:function")
    builds: `function(data)` (or `function()`), wrapped in a PluginTransform; a TrainTransform it
    returns is used as it is."""
    build = import_function(reference, key)
    takes_data = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                     for p in _parameters(build))
    pipeline = build(data) if takes_data else build()
    if isinstance(pipeline, TrainTransform):
        return pipeline
    transform = PluginTransform(pipeline, crop_size, mean, std, name=f"{key} {reference!r}",
                                bands=bool(getattr(data, "bands", False)))
    transform.built_by = (reference, data, crop_size, mean, std, key)
    return transform


def import_function(reference: str, key: str) -> Callable:
    """`module:function` (an importable module) or `path/to/file.py:function`, with errors that name `key`."""
    module_name, colon, attribute = str(reference).rpartition(":")  # rpartition: a Windows drive letter stays
    where = f"{key} {reference!r}"
    if not colon or not module_name or not attribute.isidentifier():
        raise ValueError(f"{where} is not of the form module:function (e.g. my_augment:build, or "
                         f"path/to/my_augment.py:build).")
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{where}: the file {path} does not exist.")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        _run_module(spec, module, where)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name or module_name.startswith(f"{error.name}."):
                raise ValueError(f"{where}: no module named {module_name!r} on the Python path. Give its file instead "
                                 f"({key}=path/to/{module_name.split('.')[-1]}.py:{attribute}) or add its folder to "
                                 f"PYTHONPATH.") from None
            raise ValueError(f"{where}: {module_name} imports {error.name!r}, which is not installed "
                             f"(pip install {error.name}).") from None
    function = getattr(module, attribute, None)
    if function is None:
        names = [n for n in vars(module) if not n.startswith("_")]
        raise ValueError(f"{where}: {module_name} has no {attribute!r}.{did_you_mean(attribute, names)}")
    if not callable(function):
        raise ValueError(f"{where}: {attribute} is a {type(function).__name__}, not a function that builds the "
                         f"pipeline.")
    return function


def _run_module(spec, module, where: str) -> None:
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        raise ValueError(f"{where}: the file imports {error.name!r}, which is not installed "
                         f"(pip install {error.name}).") from None


def _parameters(function: Callable):
    try:
        return list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: give it the data section
        return [inspect.Parameter("data", inspect.Parameter.POSITIONAL_ONLY)]


def _writable(array) -> np.ndarray:
    """A C-contiguous array that torch.from_numpy and the pipelines may use without copying back."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous and array.flags.writeable else np.array(array, order="C")
