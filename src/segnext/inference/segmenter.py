"""Prediction for people: `Segmenter` turns images into label maps, colour maps and overlays.

    import segnext
    segmenter = segnext.Segmenter.from_checkpoint("segnext_t_ade.pth")
    labels = segmenter.predict("photo.jpg")          # (H, W) class ids at the photo's size

`predict` accepts a file path, a PIL image or a NumPy array and returns the labels at that image's
size, by the official test procedure (`segnext.inference.segment`), with the settings the
model was saved with (its model folder, or the training checkpoint's evaluation section) or else
the official ones of its dataset (`settings.test_config_for`). By default
the model runs through the device's inference backend (`segnext.inference.backends`: the oneDNN
`optimize_for_inference` on the CPU) and the labels are computed memory-efficiently; both give the
reference results (to float rounding).

A list of images gives a list of results, computed several images per forward pass (grouped by
their resized size with `segnext.inference.batching`; each gets the result it gets alone).
`amp=True` runs the model in bfloat16/float16 on a GPU (`segnext.inference.precision`).
"""

from __future__ import annotations

import json
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..constants import IGNORE_INDEX, NORMALISED_MEAN_LIMIT, SAVED_NMF_SEED
from ..data.bands import display_rgb
from ..data.palette import colorize, default_palette, overlay
from ..models import create_model
from ..utils import require, resolve_device, user_path
from .backends import inference_model, resolve_backend
from .batching import batches_by_size
from .cuda_graph import CudaGraphSegNeXt
from .precision import Amp, AutocastModel, autocast_dtype
from .preprocess import (
    ImageInput,
    PreparedImage,
    normalised_channel_means,
    prepare,
    read_in_windows,
    to_channels_array,
    to_rgb_array,
)
from .segment import (
    segment_group,
    segment_group_confidence,
    segment_group_scores,
    segment_group_with_probabilities,
)
from .settings import TestConfig, default_test_config, test_config_for

# The first groups of images a Segmenter looks at for images in other units than its test settings
# (a mistake of units is in every image): a pass over their pixels each, then none.
UNIT_CHECKS = 8


class OnnxModel:
    """An ONNX file written by `segnext export`, run by onnxruntime, with what `segnext.inference`
    needs of a model: a call giving logits at the input size, `num_classes`, `parameters()`."""

    def __init__(self, path, threads: Optional[int] = None):
        ort = require("onnxruntime", "onnx", "Running an ONNX model")
        path = user_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ValueError(f"onnxruntime cannot load {path}: {error}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = meta
        if "num_classes" not in meta:
            raise ValueError(f"{path} has no segnext metadata (num_classes); export it with `segnext export`.")
        self.num_classes = int(meta["num_classes"])
        self.class_names = json.loads(meta["class_names"]) if meta.get("class_names") else None
        self.palette = json.loads(meta["palette"]) if meta.get("palette") else None
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.fixed_size = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.in_channels = shape[1] if isinstance(shape[1], int) else 3

    training = False  # inference only; eval() and train(False) are accepted, as of a module

    def parameters(self):
        yield torch.empty(0)  # inputs live on the CPU

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        if mode:
            raise RuntimeError("an ONNX model is for inference only")
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and tuple(images.shape[2:]) != self.fixed_size:
            raise ValueError(f"this ONNX model was exported for {self.fixed_size[0]}x{self.fixed_size[1]} inputs "
                             f"but got {images.shape[2]}x{images.shape[3]} (the image after the test resize); "
                             f"export with dynamic sizes (the default), or for images of one size with "
                             f"`segnext export --static --image-size H W`")
        if self.fixed_batch == 1 and images.shape[0] > 1:  # exported for one image at a time (--static)
            return torch.cat([self(images[index:index + 1]) for index in range(images.shape[0])])
        outputs = self.session.run(None, {self.input_name: images.detach().cpu().numpy()})
        return torch.from_numpy(outputs[0])


class Segmenter:
    """A model plus its test-time settings and class metadata: images in, label maps out.

    Args:
        model: a SegNeXt (optimized or not) or an `OnnxModel`.
        test_config: how to segment (default: the model's saved settings, else the official ones of
            its dataset).
        class_names, palette: class metadata (default: the model's, else generic names and
            `segnext.data.default_palette`).
        device: where images go (default: the model's device).
        memory_efficient: compute labels without full-resolution class scores (exact; see
            `segnext.inference.segment`); None (default): on the CPU, and on any device for images
            whose scores would pass `segnext.inference.segment.FULL_SCORES_BUDGET`.
        amp: run the model in reduced precision on a GPU: True (bfloat16 where supported, else
            float16), "bf16" or "fp16"; the NMF and everything after the logits stay float32. A
            no-op on the CPU (see `segnext.inference.precision`).
        leave_no_data: where a TIFF image holds no data (its mask, its "no data" value or its alpha
            band, as GDAL finds it: `segnext.data.geotiff.no_data_of`), no label (255) and NaN
            probabilities and confidence, and the sliding windows that hold nothing else not run
            (the other pixels' labels are the same); for models of up to 255 classes.
    """

    def __init__(self, model, test_config: Optional[TestConfig] = None, *, class_names=None, palette=None,
                 device=None, memory_efficient: Optional[bool] = None, amp: Amp = False, leave_no_data: bool = False):
        self.model = model
        self.num_classes = int(model.num_classes)
        config = getattr(model, "config", None)
        names = class_names or getattr(config, "class_names", None) or getattr(model, "class_names", None)
        self.class_names = list(names or [f"class_{i}" for i in range(self.num_classes)])
        colours = palette or getattr(config, "palette", None) or getattr(model, "palette", None)
        self.palette = [list(c) for c in (colours or default_palette(self.num_classes))]
        if test_config is None:  # the model's saved settings, else its dataset's (the classes given here count)
            saved = getattr(config, "test_settings", None)
            test_config = test_config_for(model) if saved else default_test_config(self.num_classes, names)
        channels = input_channels(model)
        if channels != test_config.channels:  # the normalisation says what the images hold
            raise ValueError(f"this model takes {channels} input channels and its test settings normalise "
                             f"{test_config.channels}: give TestConfig(mean=..., std=...) with {channels} values each "
                             f"(each channel's mean and standard deviation over the training images)"
                             + ("; images are then arrays (H, W, channels)" if channels != 3 else "")
                             + "; for the commands, save them with the model: model.config.test_settings = "
                               "TestConfig(...).to_dict() before segnext.save_model")
        self.test_config = test_config
        self.device = torch.device(device) if device is not None else next(iter(model.parameters())).device
        self.memory_efficient = memory_efficient
        self.amp = amp
        self.leave_no_data = leave_no_data
        self._unit_checks_left = UNIT_CHECKS  # images in other units than the settings': said once

    @property
    def amp(self) -> Amp:
        return self._amp

    @amp.setter
    def amp(self, value: Amp) -> None:
        dtype = autocast_dtype(self.device, value)  # an unusable setting fails here, not at the first image
        if dtype is not None and not hasattr(self.model, "forward_logits"):
            raise ValueError(f"amp applies to PyTorch SegNeXt models, not to {type(self.model).__name__}")
        if isinstance(self.model, CudaGraphSegNeXt) and dtype != self.model.autocast_dtype:
            raise ValueError(f"this model's CUDA graphs run in {self.model.autocast_dtype or torch.float32}; build the "
                             f"Segmenter with the amp wanted (Segmenter.from_checkpoint(..., amp=...))")
        self._amp = value

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        """The reduced precision the model runs in (None: float32), from `amp` and the device."""
        return autocast_dtype(self.device, self._amp)

    @property
    def inference_model(self):
        """The model as it runs: under autocast when `amp` is in effect (CUDA graphs record it)."""
        dtype = self.autocast_dtype
        if dtype is None or isinstance(self.model, CudaGraphSegNeXt):
            return self.model
        return AutocastModel(self.model, self.device.type, dtype)

    @classmethod
    def from_checkpoint(cls, checkpoint, *, device="auto", backend: str = "auto", optimize: Optional[bool] = None,
                        test_config: Optional[TestConfig] = None, nmf_seed=SAVED_NMF_SEED,
                        amp: Amp = False, **model_kwargs) -> Segmenter:
        """Load any checkpoint `create_model` reads; its saved test settings (or its dataset's
        official ones) are used unless `test_config` is given. device: "auto" (CUDA, then MPS,
        then the CPU) or a device name. backend: "auto" (the device's default), "eager",
        "optimized" or "cuda_graph" (`segnext.inference.backends`); optimize=False is "eager",
        optimize=True "optimized". nmf_seed: as in `create_model` (by default the seed the model
        was saved with; None: the official random bases at every forward). amp: as in `Segmenter`."""
        device = resolve_device(device)
        dtype = autocast_dtype(device, amp)  # an unusable amp setting fails before the model is loaded
        if optimize is not None:
            backend = "optimized" if optimize else "eager"
        resolve_backend(backend, device)  # an unusable backend too
        model = create_model(checkpoint=checkpoint, nmf_seed=nmf_seed, **model_kwargs).eval().to(device)
        return cls(inference_model(model, backend, autocast_dtype=dtype), test_config, device=device, amp=amp)

    @classmethod
    def from_onnx(cls, path, *, test_config: Optional[TestConfig] = None, threads: Optional[int] = None) -> Segmenter:
        model = OnnxModel(path, threads)
        if test_config is None and model.metadata.get("test_config"):
            try:
                test_config = TestConfig.from_dict(json.loads(model.metadata["test_config"]))
            except (TypeError, ValueError):
                test_config = None
        return cls(model, test_config, class_names=model.class_names, palette=model.palette, device="cpu")

    def predict(self, image: Union[ImageInput, Sequence[ImageInput]], *,
                batch_size: int = 8) -> Union[np.ndarray, List[np.ndarray]]:
        """Class ids (H, W) at the image's size: uint8 for up to 256 classes, else int32.

        A list (or tuple) of images gives the list of their label maps, computed up to
        `batch_size` images of one resized size per forward pass (each the same as alone)."""
        if _is_many(image):
            return self._predict_many(image, batch_size)
        return self.predict_group([self.prepare(image)])[0]

    def predict_proba(self, image: Union[ImageInput, Sequence[ImageInput]], *,
                      batch_size: int = 8) -> Union[np.ndarray, List[np.ndarray]]:
        """Class probabilities (num_classes, H, W) float32 at the image's size (softmax of the
        logits; for multi-scale + flip the averaged probabilities, as the official test). A list of
        images gives a list."""
        if _is_many(image):
            return [probabilities for _, probabilities in self.predict_with_proba(image, batch_size=batch_size)]
        return self.predict_with_proba(image)[1]

    def predict_with_proba(self, image: Union[ImageInput, Sequence[ImageInput]], *, batch_size: int = 8):
        """(labels, probabilities) from one pass: the labels are the argmax of the probabilities (with
        an optimized model, `predict`'s label-only path can differ from them at float-rounding ties).
        A list of images gives a list of pairs."""
        if _is_many(image):
            return self._predict_many(image, batch_size, with_probabilities=True)
        return self.predict_group([self.prepare(image)], with_probabilities=True)[0]

    def predict_with_confidence(self, image: Union[ImageInput, Sequence[ImageInput]], *, batch_size: int = 8):
        """(labels, confidence) from one pass: the confidence of each pixel is the probability of its
        label (float32 (H, W) in (0, 1]; low where the model is unsure, which is where most of its
        errors are). A list of images gives a list of pairs."""
        if _is_many(image):
            return self._predict_many(image, batch_size, with_confidence=True)
        return self.predict_group([self.prepare(image)], with_confidence=True)[0]

    def prepare(self, image: ImageInput, *, keep_image: bool = False) -> PreparedImage:
        """The model-free part of a prediction (read, resize for the test scales; with
        `leave_no_data`, where the image holds no data), for `predict_group`."""
        return prepare(image, self.test_config, keep_image=keep_image, no_data=self.leave_no_data)

    def predict_group(self, group: Sequence[PreparedImage], *, with_probabilities: bool = False,
                      with_confidence: bool = False, probabilities_in_bands: bool = False) -> list:
        """Predict prepared images of one resized size (one `group_key`; see
        `segnext.inference.batching.batches_by_size`) in shared forward passes, each as `predict`,
        `predict_with_proba` or `predict_with_confidence` give it for that image alone: a list of
        label maps; with `with_probabilities` and/or `with_confidence`, of tuples (labels, then the
        probabilities and the confidence asked for, in that order). Every prediction comes through here.

        probabilities_in_bands: the probabilities as a `ClassProbabilities`, computed one band of rows
        at a time when read (`.bands()`, `.save(path)`), instead of an array of all of them; the
        labels and confidence then are those of the memory-efficient path (`predict` on a CPU).
        Sliding windows over an image at its own size make them with the labels, held as float16:
        the values `.save(path)` writes (a float16 .npy), in half the memory of float32."""
        if self._unit_checks_left > 0:
            self._unit_checks_left -= 1
            self._warn_of_units(group)
        if self.num_classes > IGNORE_INDEX and any(image.no_data is not None for image in group):
            raise ValueError(f"no data is left without a label ({IGNORE_INDEX}), which is a class of this model's "
                             f"{self.num_classes}: segment without leave_no_data")
        model = self.inference_model
        if with_probabilities and probabilities_in_bands:
            return [(labels.cpu().numpy().astype(self._label_dtype, copy=False), probabilities,
                     *[confidence.cpu().numpy() for confidence in rest])
                    for labels, probabilities, *rest in segment_group_with_probabilities(
                        model, group, self.test_config, self.device, with_confidence=with_confidence,
                        label_dtype=self._torch_label_dtype, held_dtype=torch.float16)]
        if with_confidence and not with_probabilities:  # (H, W) each, without the classes' full-size scores
            pairs = segment_group_confidence(model, group, self.test_config, self.device,
                                             memory_efficient=self.memory_efficient,
                                             label_dtype=self._torch_label_dtype)
            return [(labels.cpu().numpy().astype(self._label_dtype, copy=False), confidence.cpu().numpy())
                    for labels, confidence in pairs]
        if with_probabilities:  # the scores of every class: no label, NaN scores where there is no data
            scores = segment_group_scores(model, group, self.test_config, self.device,
                                          memory_efficient=self.memory_efficient)
            return [self._labels_and_scores(one, with_probabilities, with_confidence, image.no_data)
                    for one, image in zip(scores, group)]
        labels = segment_group(model, group, self.test_config, self.device, memory_efficient=self.memory_efficient,
                               label_dtype=self._torch_label_dtype)
        return [one.cpu().numpy().astype(self._label_dtype, copy=False) for one in labels]

    def _predict_many(self, images: Sequence[ImageInput], batch_size: int, **outputs: bool) -> list:
        """`predict_group`'s outputs in the order of `images`."""
        results: list = [None] * len(images)
        prepared = ((index, self.prepare(image)) for index, image in enumerate(images))
        for batch in batches_by_size(prepared, batch_size):
            for (index, _), output in zip(batch, self.predict_group([image for _, image in batch], **outputs)):
                results[index] = output
        return results

    def _labels_and_scores(self, scores: torch.Tensor, with_probabilities: bool, with_confidence: bool,
                           no_data: Optional[np.ndarray] = None) -> tuple:
        labels = scores.argmax(0).cpu().numpy().astype(self._label_dtype)
        probabilities = (scores.softmax(0) if self.test_config.single_scale else scores).float()
        if no_data is not None:
            labels[no_data] = IGNORE_INDEX
            probabilities = probabilities.masked_fill(torch.from_numpy(no_data).to(probabilities.device), float("nan"))
        return (labels, *([probabilities.cpu().numpy()] if with_probabilities else []),
                *([probabilities.amax(0).cpu().numpy()] if with_confidence else []))

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Label map -> RGB colours of the palette."""
        return colorize(labels, self.palette, ignore_index=None)

    def overlay(self, image: ImageInput, labels: Optional[np.ndarray] = None, alpha: float = 0.5) -> np.ndarray:
        """The image with the label colours blended in (predicted when `labels` is None). The image of a
        model that reads bands is drawn as `segnext.data.display_rgb`'s picture of them."""
        if self.test_config.reads_bands:
            bands = read_in_windows(image, self.test_config)  # a large TIFF scene is not read whole
            bands = to_channels_array(image, self.test_config.channels) if bands is None else bands
            labels = self.predict(bands) if labels is None else labels
            return overlay(display_rgb(bands), labels, self.palette, alpha, ignore_index=None)
        rgb = to_rgb_array(image, copy=False)
        if labels is None:
            labels = self.predict(rgb)
        return overlay(rgb, labels, self.palette, alpha, ignore_index=None)

    def _warn_of_units(self, group: Sequence[PreparedImage]) -> None:
        """A warning (once) when an image normalises far from 0: it is in other units than the images
        the model was trained on (8-bit files for a model of 16-bit colour, say), and its labels mean
        little. A pass over the pixels, a small part of a prediction."""
        config = self.test_config
        for image in group:
            means = normalised_channel_means(image.views[0], config.mean, config.std, config.nodata)
            if np.abs(means).max() > NORMALISED_MEAN_LIMIT:
                self._unit_checks_left = 0
                hint = (" (a model trained on bands of more than 8 bits takes its images at all their bits: 16-bit "
                        "files or arrays)" if config.reads_bands and image.views[0].dtype == np.uint8 else "")
                warnings.warn(f"the test settings normalise an image to channel means of "
                              f"{', '.join(f'{value:.1f}' for value in means)} (the model's training images: about "
                              f"0): it is in other units than they were (mean {list(config.mean)}, std "
                              f"{list(config.std)}){hint}", stacklevel=4)  # the caller of `predict`
                return

    @property
    def _label_dtype(self):
        return np.uint8 if self.num_classes <= 256 else np.int32

    @property
    def _torch_label_dtype(self):  # made so: a large scene's labels are a byte a pixel, not int64's eight
        return torch.uint8 if self.num_classes <= 256 else torch.int32

    def __repr__(self) -> str:
        c = self.test_config
        amp = f", amp={self.amp!r}" if self.amp else ""
        return (f"Segmenter({type(self.model).__name__}, {self.num_classes} classes, mode={c.mode}, "
                f"img_scale={c.img_scale}, scales={c.scales}, flip={c.flip}, device={self.device}{amp})")


def input_channels(model) -> int:
    """The channels of the images `model` takes: a SegNeXt's (or a wrapper's) `config.in_channels`, an
    ONNX model's input; 3 (RGB) for anything else."""
    return getattr(getattr(model, "config", None), "in_channels", None) or getattr(model, "in_channels", 3)


UNSURE_BELOW = 0.5  # a pixel whose label has less than this probability counts as unsure


def confidence_summary(confidence: np.ndarray, unsure_below: float = UNSURE_BELOW) -> Tuple[float, float]:
    """(mean confidence, share of unsure pixels), in percent, of a `predict_with_confidence` map:
    how an image (or a video frame) ranks among those to label next. NaN pixels (no data) are left
    out; an image of no data at all is sure: nothing in it to label."""
    confidence = np.asarray(confidence)
    counted = confidence.size - int(np.count_nonzero(np.isnan(confidence)))
    if counted == 0:
        return 100.0, 0.0
    return 100.0 * float(np.nansum(confidence, dtype=np.float64)) / counted, \
        100.0 * int(np.count_nonzero(confidence < unsure_below)) / counted


def leave_unsure(labels: np.ndarray, confidence: np.ndarray, below: float, no_label: int = IGNORE_INDEX) -> np.ndarray:
    """`labels` with the pixels whose confidence (a `predict_with_confidence` map) is under `below`
    given `no_label` instead: pre-annotations that leave the unsure regions to the annotator, and
    label maps that name a class only where the model is sure of it. A calibrated model (`segnext
    calibrate`) makes `below` mean what it says: at 0.7, a label kept is right at least about 70% of
    the time."""
    if not 0 < below < 1:
        raise ValueError(f"the confidence under which a pixel is left unlabelled must be between 0 and 1, got {below}")
    if np.shape(labels) != np.shape(confidence):
        raise ValueError(f"labels {np.shape(labels)} and confidence {np.shape(confidence)} must have one shape")
    return np.where(np.asarray(confidence) < below, np.asarray(labels).dtype.type(no_label), labels)


def confidence_greyscale(confidence: np.ndarray) -> np.ndarray:
    """A `predict_with_confidence` map as a greyscale uint8 image (255 = certain), as
    `segnext predict --confidence` writes it."""
    return np.round(confidence * 255).astype(np.uint8)


def _is_many(images) -> bool:
    """A list or tuple of images (a single image is a path, a PIL image or an array)."""
    return isinstance(images, (list, tuple))
