"""Datasets saved with Hugging Face `datasets` (`save_to_disk`), read as segnext datasets, for users
who come from transformers.

    data:
      dataset: huggingface
      root: data/scene_parse_150      # a DatasetDict saved with save_to_disk; datasets.load_from_disk reads it
      train_split: train
      val_split: validation
      huggingface: {classes: ade20k}  # scene_parse_150 is ADE20K: its 150 classes and reduce-zero-label

Each row holds an image and a segmentation map (an `Image` feature, or an array of class ids).
- image_column: default "image".
- label_column: default the one other image column (scene_parse_150: "annotation"), else one of
  "annotation", "label", "semantic_segmentation", "segmentation", "mask".
- classes: the name of a segnext dataset whose class names, palette and label transform apply
  (`ade20k` for scene_parse_150); a path to a classes.json / id2label.json; or (default) the
  classes.json or id2label.json in ROOT (id2label.json as transformers writes it:
  {"0": "road", "1": "sidewalk", ...}). Label values without a class are ignored (255).
- label_colors: the label column holds colour masks (as labelling tools export them): each pixel's
  colour is its class's in the palette of the classes.json (whose "ignore_colors" become 255), or
  of the segnext dataset named by `classes`. A colour in neither is an error naming the row.

A sample is what the file datasets give: dict(image=RGB uint8 (H, W, 3), label=uint8 (H, W)), and
the training transform gets the same per-sample random stream (seed, epoch, index).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from ..utils import did_you_mean, require
from .conversion import colours_to_ids, describe_colours
from .datasets import (
    DATASETS,
    DatasetSpec,
    LabelMap,
    Layout,
    Listing,
    SegmentationDataset,
    identity_labels,
    read_folder_classes,
    split_names,
)
from .exports import read_colour_classes
from .io import DataError, pil_to_label, pil_to_rgb

DATASET_NAME = "huggingface"  # data.dataset of a dataset saved with `datasets`
LABEL_COLUMNS = ("annotation", "label", "semantic_segmentation", "segmentation", "mask")
SPLIT_ALIASES = {"train": ("training",), "training": ("train",), "val": ("validation", "valid"),
                 "validation": ("val", "valid"), "valid": ("validation", "val")}


class HuggingFaceDataset(SegmentationDataset):
    """One split of a saved Hugging Face dataset, with the interface of `SegmentationDataset`
    (class names, palette, per-sample random streams, transform)."""

    def __init__(self, rows, spec: DatasetSpec, label_map: LabelMap, split: str, root: Path, image_column: str,
                 label_column: str, transform=None, seed: int = 0, label_colours: Optional[LabelColours] = None):
        layout = Layout(image_column, (label_column,), (), "", label_map)
        super().__init__(spec, Listing(spec, Path(root), split, layout, [], [], [], []), transform=transform, seed=seed)
        # Decode only the two columns a sample needs.
        self.rows = rows.select_columns([image_column, label_column])
        self.image_column, self.label_column = image_column, label_column
        self.label_colours = label_colours
        self.image_paths = self.label_paths = [f"{root} [{split}] row {i}" for i in range(len(rows))]

    def load(self, index: int) -> dict:
        where = f"{self.root} split {self.split!r} row {index}"
        row = self.rows[int(index)]
        image = as_rgb(row[self.image_column], where)
        if self.label_colours is None:
            raw_label = as_label_map(row[self.label_column], where)
        else:
            raw_label = self.label_colours.ids(as_rgb(row[self.label_column], f"{where} (label)"), where)
        if image.shape[:2] != raw_label.shape:
            raise DataError(f"{where}: the image is {image.shape[1]}x{image.shape[0]} but its label map is "
                            f"{raw_label.shape[1]}x{raw_label.shape[0]}")
        return dict(image=image, label=self.label_map(raw_label), path=where, label_path=where)


@dataclass(frozen=True)
class LabelColours:
    """Colour masks -> class ids: palette[k] -> k, an ignore colour -> 255."""

    palette: Tuple[Tuple[int, int, int], ...]
    ignore: Tuple[Tuple[int, int, int], ...] = ()

    def ids(self, mask: np.ndarray, where: str) -> np.ndarray:
        ids, unknown = colours_to_ids(mask, self.palette, self.ignore)
        if unknown:
            raise DataError(f"{where}: label colours in neither the palette nor \"ignore_colors\": "
                            f"{describe_colours(unknown)}. Add each to the classes.json's \"palette\" (with its "
                            f"class) or \"ignore_colors\"")
        return ids


def build_huggingface_dataset(root, split: str, image_column: str = "image", label_column: Optional[str] = None,
                              classes: Optional[str] = None, transform=None, seed: int = 0,
                              label_colors: bool = False) -> HuggingFaceDataset:
    """Split `split` of the DatasetDict saved in `root` (see the module docstring)."""
    datasets = require("datasets", "huggingface", "data.dataset: huggingface", package="datasets")
    root = Path(root).expanduser()
    try:
        saved = datasets.load_from_disk(str(root))
    except FileNotFoundError:
        raise DataError(f"{root}: not a dataset saved with `datasets` (save_to_disk writes dataset_dict.json or "
                        f"dataset_info.json there). Save it with dataset.save_to_disk({str(root)!r}).") from None
    if not isinstance(saved, datasets.DatasetDict):
        raise DataError(f"{root} holds a single Dataset without split names; save a DatasetDict instead, e.g. "
                        f"DatasetDict(train=..., validation=...).save_to_disk({str(root)!r}).")
    parts = [split_name(list(saved), part, root) for part in split_names(split)]  # "train+validation": both
    split = "+".join(parts)
    rows = saved[parts[0]] if len(parts) == 1 else datasets.concatenate_datasets([saved[part] for part in parts])
    columns = list(rows.features)
    if image_column not in columns:
        raise DataError(f"{root}: no image column {image_column!r}.{did_you_mean(image_column, columns)} Columns: "
                        f"{', '.join(columns)}; set data.huggingface.image_column.")
    label_column = label_column or find_label_column(rows.features, image_column, root, datasets)
    if label_column not in columns:
        raise DataError(f"{root}: no label column {label_column!r}.{did_you_mean(label_column, columns)} Columns: "
                        f"{', '.join(columns)}; set data.huggingface.label_column.")
    spec, label_map = class_spec(root, classes)
    colours = None
    if label_colors:  # the colours give the class ids (255: ignore) directly
        colours = label_colours(root, classes, spec)
        label_map = identity_labels(len(spec.class_names))
    return HuggingFaceDataset(rows, spec, label_map, split, root, image_column, label_column, transform=transform,
                              seed=seed, label_colours=colours)


def label_colours(root: Path, classes: Optional[str], spec: DatasetSpec) -> LabelColours:
    """The colour of each class (and the ignored colours) for data.huggingface.label_colors."""
    if classes is not None and not classes.endswith(".json"):  # a segnext dataset: its palette
        return LabelColours(tuple(tuple(c) for c in spec.palette))
    path = Path(classes).expanduser() if classes else root / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: data.huggingface.label_colors needs the colour of each class: a "
                                f'classes.json with "classes" and "palette" (and "ignore_colors"), or '
                                f"data.huggingface.classes naming a segnext dataset")
    _, palette, ignore = read_colour_classes(path)
    return LabelColours(tuple(tuple(c) for c in palette), tuple(tuple(c) for c in ignore))


def split_name(available: List[str], split: str, root: Path) -> str:
    """`split`, or its usual other name (train/training, val/validation/valid)."""
    for name in (split, *SPLIT_ALIASES.get(split, ())):
        if name in available:
            return name
    raise DataError(f"{root}: no split {split!r}.{did_you_mean(split, available)} Splits: {', '.join(available)}; "
                    f"set data.train_split / data.val_split.")


def find_label_column(features, image_column: str, root: Path, datasets) -> str:
    """The one image column besides the image, else the first of the usual names."""
    images = [name for name, feature in features.items() if name != image_column
              and isinstance(feature, datasets.Image)]
    if len(images) == 1:
        return images[0]
    usual = [name for name in LABEL_COLUMNS if name in features]
    if usual:
        return usual[0]
    raise DataError(f"{root}: which column holds the segmentation maps? Columns: {', '.join(features)}; set "
                    f"data.huggingface.label_column.")


def class_spec(root: Path, classes: Optional[str]) -> Tuple[DatasetSpec, LabelMap]:
    """Class names, palette and label transform: of a segnext dataset, or from a classes file."""
    if classes is not None and not classes.endswith(".json"):
        if classes not in DATASETS or classes == "folder":
            known = [name for name in DATASETS if name != "folder"]
            raise ValueError(f"data.huggingface.classes is {classes!r}, neither a segnext dataset "
                             f"({', '.join(known)}) nor a .json file.{did_you_mean(classes, known)}")
        spec = DATASETS[classes]
        return _spec(spec.class_names, spec.palette, spec.title), spec.layouts[0].label_map
    candidates = [Path(classes).expanduser()] if classes else [root / "classes.json", root / "id2label.json"]
    for path in candidates:
        if path.is_file():
            found = read_folder_classes(path)  # classes.json or id2label.json
            return _spec(found.names, found.palette, f"Hugging Face dataset {root}"), found.label_map
    raise FileNotFoundError(
        f"{candidates[0] if classes else root}: no classes for this dataset. Put a classes.json "
        f'({{"classes": ["road", "car"], "palette": [[128, 64, 128], [0, 0, 142]]}}) or the id2label.json of its '
        f"transformers config in {root}, or set data.huggingface.classes to a segnext dataset (e.g. ade20k for "
        f"scene_parse_150).")


def as_rgb(value: Any, where: str) -> np.ndarray:
    """An image cell (a PIL image, or an (H, W, 3) uint8 array) as RGB uint8."""
    if hasattr(value, "mode") and hasattr(value, "convert"):
        return pil_to_rgb(value, name=where)
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return array
    raise DataError(f"{where}: the image is a {type(value).__name__} of shape {array.shape} ({array.dtype}); "
                    f"expected an Image feature or an (H, W, 3) uint8 array")


def as_label_map(value: Any, where: str) -> np.ndarray:
    """A label cell (a PIL image, or an (H, W) integer array) as uint8 stored values."""
    if hasattr(value, "mode") and hasattr(value, "convert"):
        return pil_to_label(value, name=where)
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{where}: the label map is a {type(value).__name__} of shape {array.shape} "
                        f"({array.dtype}); expected an Image feature or an (H, W) integer array")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{where}: label values {int(array.min())}..{int(array.max())}; they must be 0..255 "
                        f"(class ids, 255 = ignore)")
    return array.astype(np.uint8)


def _spec(names, palette, title: str) -> DatasetSpec:
    return DatasetSpec(name=DATASET_NAME, title=title, class_names=tuple(names),
                       palette=tuple(tuple(int(v) for v in c) for c in palette), layouts=(), splits=("train", "val"))
