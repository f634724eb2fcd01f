"""Prediction for people: `Segmenter` turns images into label maps, colour maps and overlays.

    import segnext
    segmenter = segnext.Segmenter.from_checkpoint("segnext_t_ade.pth")
    labels = segmenter.predict("photo.jpg")          # (H, W) class ids at the photo's size

`predict` accepts a file path, a PIL image or a NumPy array and returns the labels at that image's
size. It runs the official test-time procedure (`segnext.inference`): keep-ratio resize,
whole-image or sliding-window logits, or multi-scale + flip; by default with the settings the
checkpoint was evaluated with (a training checkpoint's `evaluation` section) or else the official
settings of the dataset its classes come from (`default_test_config`). The model is run through
`optimize_for_inference` unless `optimize=False`, or through onnxruntime with `from_onnx`.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .inference import MS_RATIOS, TestConfig, segment, segment_logits

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

# --------------------------------------------------------------------------------------------
# Test-time settings


def _dataset_test_configs() -> Dict[str, TestConfig]:
    """The official (or MMSegmentation-standard) test settings of each dataset."""
    return {
        "ade20k": TestConfig(img_scale=(2048, 512), size_divisor=32),
        "coco_stuff164k": TestConfig(img_scale=(2048, 512), size_divisor=32),
        "cityscapes": TestConfig(img_scale=(2048, 1024), mode="slide", crop_size=(1024, 1024), stride=(768, 768)),
        "pascal_voc": TestConfig(img_scale=(2048, 512)),
        "pascal_context": TestConfig(img_scale=(520, 520), mode="slide", crop_size=(480, 480), stride=(320, 320)),
        "isaid": TestConfig(img_scale=(896, 896)),
        "camvid": TestConfig(img_scale=None),
    }


def _dataset_of(num_classes: int, class_names: Optional[Sequence[str]]) -> Optional[str]:
    """Which dataset a head belongs to: by its class names when known, else by the class count."""
    try:
        from .data import classes as known
        by_names = {
            "ade20k": known.ADE20K_CLASSES, "coco_stuff164k": known.COCO_STUFF_CLASSES,
            "cityscapes": known.CITYSCAPES_CLASSES, "pascal_voc": known.VOC_CLASSES,
            "pascal_context": known.PASCAL_CONTEXT_CLASSES, "isaid": known.ISAID_CLASSES,
            "camvid": known.CAMVID_CLASSES,
        }
    except (ImportError, AttributeError):
        by_names = {}
    if class_names:
        wanted = [str(n).strip().lower() for n in class_names]
        for name, names in by_names.items():
            if [str(n).strip().lower() for n in names] == wanted:
                return name
        return None  # a custom dataset: its class count says nothing
    by_count = {150: "ade20k", 171: "coco_stuff164k", 19: "cityscapes", 21: "pascal_voc", 59: "pascal_context",
                60: "pascal_context", 16: "isaid", 11: "camvid"}
    return by_count.get(num_classes)


def default_test_config(num_classes: int, class_names: Optional[Sequence[str]] = None) -> TestConfig:
    """The official test settings of the dataset the head was trained on; ADE20K's otherwise."""
    dataset = _dataset_of(num_classes, class_names)
    configs = _dataset_test_configs()
    return configs.get(dataset, TestConfig(img_scale=(2048, 512)))


def test_config_from_checkpoint(path) -> Optional[TestConfig]:
    """The `evaluation` settings saved in a segnext training checkpoint (None if there are none)."""
    path = Path(path)
    try:
        if path.is_dir():
            data = json.loads((path / "config.json").read_text())
        else:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not ours to judge here: create_model reports unreadable checkpoints
        return None
    config = data.get("config") if isinstance(data, dict) else None
    evaluation = config.get("evaluation") if isinstance(config, dict) else None
    if not isinstance(evaluation, dict):
        evaluation = data.get("evaluation") if isinstance(data, dict) else None
    if not isinstance(evaluation, dict):
        return None
    settings = {k: evaluation[k] for k in ("img_scale", "size_divisor", "mode", "crop_size", "stride", "scales", "flip")
                if k in evaluation}
    data_section = config.get("data") if isinstance(config, dict) else None
    if isinstance(data_section, dict):
        settings.update({k: tuple(data_section[k]) for k in ("mean", "std") if data_section.get(k) is not None})
    try:
        return TestConfig(**settings)
    except (TypeError, ValueError):
        return None


def override_test_config(config: TestConfig, *, mode: Optional[str] = None, img_scale=Ellipsis,
                         size_divisor=Ellipsis, crop_size=None, stride=None, scales=None,
                         flip: Optional[bool] = None, multi_scale: bool = False) -> TestConfig:
    """`config` with the given settings replaced (Ellipsis / None: keep). multi_scale=True selects the
    paper's multi-scale + flip test (ratios 0.5 ... 1.75)."""
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


# --------------------------------------------------------------------------------------------
# Images in, colours out


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """Any supported image (path, PIL image, NumPy array) as a writable uint8 RGB (H, W, 3) array.

    Paths go through `segnext.data.read_image` (EXIF orientation, grayscale, palette, RGBA, 16-bit,
    CMYK). PIL images get the same conversions. Arrays: (H, W) or (H, W, 1) grayscale, (H, W, 3) RGB,
    (H, W, 4) RGBA (alpha dropped); uint8; uint16 keeps its top byte; bool is 0/255; floats are taken
    as 0..1 when their maximum is at most 1, else as 0..255.
    """
    if isinstance(image, (str, os.PathLike)):
        from .data import read_image

        return np.array(read_image(image))  # a copy: torch wants writable memory
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, torch.Tensor):
        raise TypeError("pass images as a path, a PIL image or a NumPy array (H, W, 3); for normalised "
                        "tensors call the model directly")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"cannot read an image from a {type(image).__name__}; pass a path, a PIL image or a NumPy array")
    array = image
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    array = array[:, :, :3]
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"empty image of shape {array.shape}")
    if array.dtype == np.uint8:
        return np.array(array)
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(array) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {array.dtype}")


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    from PIL import ImageOps

    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not make a usable image unusable
        pass
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = np.clip(np.asarray(image).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        return to_rgb_array(np.asarray(image))
    if image.mode != "RGB":
        if image.mode in ("P", "PA") and "transparency" in image.info:
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.array(image)


def default_palette(num_classes: int) -> List[List[int]]:
    """Distinct colours for checkpoints without a palette (the PASCAL VOC bit-interleaving scheme,
    so class 0 is black and the first classes are far apart)."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
            if value == 0:
                break
        palette.append([r, g, b])
    return palette


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Label map (H, W) -> RGB uint8 (H, W, 3) with `palette[label]`."""
    table = np.zeros((max(len(palette), int(labels.max(initial=0)) + 1), 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return table[labels]


def overlay(image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5) -> np.ndarray:
    """The image with the label colours blended in (alpha = weight of the colours)."""
    colours = colorize(labels, palette).astype(np.float32)
    blended = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def save_label_png(path, labels: np.ndarray, palette: Optional[Sequence[Sequence[int]]]) -> None:
    """Palettised PNG of the class ids (pixel values are the ids, shown in the palette's colours);
    16-bit grayscale when there are more than 256 classes (a PNG palette holds 256 colours)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(labels.max(initial=0)) > 255:
        Image.fromarray(labels.astype(np.uint16)).save(path)
        return
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    flat = [int(c) for colour in (palette or [])[:256] for c in colour]
    image.putpalette(flat + [0] * (768 - len(flat)))
    image.save(path)


# --------------------------------------------------------------------------------------------
# onnxruntime as a model


class OnnxSegmenterModel:
    """An exported ONNX file run by onnxruntime, with the interface `segnext.inference` needs
    (call -> logits at the input size, `num_classes`, `parameters()` for the device)."""

    def __init__(self, path, threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ValueError("running an ONNX model needs onnxruntime: pip install 'segnext[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
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

    def parameters(self):
        yield torch.empty(0)  # inputs live on the CPU

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and tuple(images.shape[2:]) != self.fixed_size:
            raise ValueError(f"this ONNX model was exported for {self.fixed_size[0]}x{self.fixed_size[1]} inputs "
                             f"but got {images.shape[2]}x{images.shape[3]}; export with dynamic sizes "
                             f"(the default) or use slide inference with that window")
        outputs = self.session.run(None, {self.input_name: images.detach().cpu().numpy()})
        return torch.from_numpy(outputs[0])


# --------------------------------------------------------------------------------------------


class Segmenter:
    """A model plus its test-time settings and class metadata: images in, label maps out."""

    def __init__(self, model, test_config: Optional[TestConfig] = None, *, class_names=None, palette=None,
                 device=None):
        self.model = model
        self.num_classes = int(model.num_classes)
        config = getattr(model, "config", None)
        self.class_names = list(class_names or getattr(config, "class_names", None) or getattr(model, "class_names", None)
                                or [f"class_{i}" for i in range(self.num_classes)])
        self.has_palette = bool(palette or getattr(config, "palette", None) or getattr(model, "palette", None))
        self.palette = [list(c) for c in (palette or getattr(config, "palette", None) or getattr(model, "palette", None)
                                          or default_palette(self.num_classes))]
        self.test_config = test_config or default_test_config(self.num_classes, getattr(config, "class_names", None)
                                                              or getattr(model, "class_names", None))
        self.device = torch.device(device) if device is not None else next(iter(model.parameters())).device

    @classmethod
    def from_checkpoint(cls, checkpoint, *, device=None, optimize: bool = True, test_config: Optional[TestConfig] = None,
                        nmf_seed: Optional[int] = None, **model_kwargs) -> "Segmenter":
        """Load any checkpoint `create_model` reads; its saved evaluation settings (or its dataset's
        official ones) become the test settings unless `test_config` is given."""
        from .models import DEFAULT_NMF_SEED, create_model
        from .optimize import optimize_for_inference

        seed = DEFAULT_NMF_SEED if nmf_seed is None else nmf_seed
        model = create_model(checkpoint=checkpoint, nmf_seed=seed, **model_kwargs).eval()
        device = torch.device(device) if device is not None else torch.device("cpu")
        model = model.to(device)
        if optimize:
            model = optimize_for_inference(model)
        return cls(model, test_config or test_config_from_checkpoint(checkpoint), device=device)

    @classmethod
    def from_onnx(cls, path, *, test_config: Optional[TestConfig] = None, threads: Optional[int] = None) -> "Segmenter":
        model = OnnxSegmenterModel(path, threads)
        if test_config is None and model.metadata.get("test_config"):
            try:
                test_config = TestConfig(**json.loads(model.metadata["test_config"]))
            except (TypeError, ValueError):
                test_config = None
        return cls(model, test_config, class_names=model.class_names, palette=model.palette, device="cpu")

    # -- prediction ------------------------------------------------------------------------

    def predict(self, image: ImageInput) -> np.ndarray:
        """Class ids (H, W) at the image's size: uint8 for up to 256 classes, else int32."""
        rgb = to_rgb_array(image)
        labels = segment(self.model, rgb, self.test_config, self.device).cpu().numpy()
        return labels.astype(np.uint8 if self.num_classes <= 256 else np.int32)

    def predict_proba(self, image: ImageInput) -> np.ndarray:
        """Class probabilities (num_classes, H, W) float32 at the image's size (softmax of the
        logits; for multi-scale + flip the averaged probabilities, as the official test)."""
        return self.predict_with_proba(image)[1]

    def predict_with_proba(self, image: ImageInput) -> Tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities) from one pass; the labels equal `predict`'s."""
        rgb = to_rgb_array(image)
        scores = segment_logits(self.model, rgb, self.test_config, self.device)
        labels = scores.argmax(0).cpu().numpy().astype(np.uint8 if self.num_classes <= 256 else np.int32)
        single = len(self.test_config.scales) == 1 and not self.test_config.flip
        probabilities = scores.softmax(0) if single else scores
        return labels, probabilities.float().cpu().numpy()

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        return colorize(labels, self.palette)

    def overlay(self, image: ImageInput, labels: Optional[np.ndarray] = None, alpha: float = 0.5) -> np.ndarray:
        rgb = to_rgb_array(image)
        if labels is None:
            labels = self.predict(rgb)
        return overlay(rgb, labels, self.palette, alpha)

    def __repr__(self) -> str:
        kind = type(self.model).__name__
        c = self.test_config
        return (f"Segmenter({kind}, {self.num_classes} classes, mode={c.mode}, img_scale={c.img_scale}, "
                f"scales={c.scales}, flip={c.flip}, device={self.device})")
