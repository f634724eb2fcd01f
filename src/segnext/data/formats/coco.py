"""COCO-format annotation files (what CVAT's "COCO 1.0", Roboflow's "COCO Segmentation", Label
Studio's "COCO" and most other labelling tools export) read as semantic labels.

An annotation file holds `images` (file name and size), `categories` (id and name) and `annotations`:
per object its category and its region: polygons (`[[x1, y1, x2, y2, ...], ...]`), run-length
encoding (`{"size": [h, w], "counts": [...]}`) or compressed run-length encoding (`counts` a
string), each drawn by pycocotools as COCO's own tools draw it. A semantic label is drawn from
them: objects from the largest to the smallest, so that a small object on a larger one stays
visible, over a background class for the pixels no object covers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...constants import IGNORE_INDEX
from .. import classes as C
from ..io import DataError

SPLIT_FILE = "_annotations.coco.json"  # Roboflow's: one in each split folder, beside the images


@dataclass
class CocoImage:
    file_name: str
    width: Optional[int]
    height: Optional[int]
    annotations: List[dict] = field(default_factory=list)


@dataclass
class CocoFile:
    path: Path
    categories: Dict[int, str]  # id -> name, as the file lists them
    supercategories: Dict[int, str]  # id -> the name of the group it is in ("" for none)
    images: List[CocoImage]
    boxes_only: int  # annotations with a box and no region: nothing to draw for segmentation


def looks_like_coco(path: Path) -> bool:
    """Whether the JSON file at `path` names COCO's three lists (images, annotations, categories):
    a look for the keys, not a parse, as such files run to hundreds of MB (`read_coco_file` checks)."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    return all(b'"' + key + b'"' in text for key in (b"images", b"annotations", b"categories"))


def find_annotation_files(source: Path) -> List[Path]:
    """The COCO-format annotation files of an export: SRC/*.json, SRC/annotations/*.json and
    SRC/<split>/_annotations.coco.json (classes.json and other JSON files are not)."""
    candidates = set(source.glob("*.json")) | set(source.glob("annotations/*.json")) | set(
        source.glob(f"*/{SPLIT_FILE}"))
    return sorted(p for p in candidates if not p.name.startswith(".") and p.name != "classes.json"
                  and looks_like_coco(p))


def read_coco_file(path: Path) -> CocoFile:
    """The images, categories and annotations of a COCO-format annotation file, checked."""
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error}); export the annotations again") from None
    if not isinstance(content, dict) or not all(isinstance(content.get(key), list)
                                                for key in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO-format annotation file (lists of images, annotations and categories)")
    try:
        categories = {int(c["id"]): str(c["name"]).strip() for c in content["categories"]}
        supercategories = {int(c["id"]): str(c.get("supercategory") or "").strip() for c in content["categories"]}
        images = {int(i["id"]): CocoImage(str(i["file_name"]), i.get("width"), i.get("height"))
                  for i in content["images"]}
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: each image needs an id and a file_name, each category an id and a name "
                        f"(missing or wrong: {error})") from None
    if not categories:
        raise DataError(f"{path}: no categories, so no classes; export it from a project with labels")
    boxes_only = 0
    for number, annotation in enumerate(content["annotations"]):
        image, category = annotation.get("image_id"), annotation.get("category_id")
        if image not in images or category not in categories:
            raise DataError(f"{path}: annotation {annotation.get('id', number)} refers to image {image} or "
                            f"category {category}, which the file does not list")
        if annotation.get("segmentation"):
            images[image].annotations.append(annotation)
        else:
            boxes_only += 1
    return CocoFile(path, categories, supercategories, list(images.values()), boxes_only)


@dataclass
class SemanticClasses:
    names: List[str]
    class_of_category: Dict[int, int]
    background: int  # the class of the pixels no object covers
    left_out: List[str]  # categories that are no class


def semantic_classes(files: Sequence[CocoFile]) -> SemanticClasses:
    """The classes of the labels drawn from `files`, which must list the same categories. The
    background is the category called background if there is one, else a class "background" put
    first. A category that only groups the others (Roboflow's first category: no annotation, the
    supercategory of all others) is no class. Categories of the same name are one class."""
    first = files[0]
    for other in files[1:]:
        if other.categories != first.categories:
            raise DataError(f"{other.path} lists other categories than {first.path}; export the subsets of one "
                            f"project (or dataset version) together")
    used = {a["category_id"] for f in files for i in f.images for a in i.annotations}
    supercategories = first.supercategories
    left_out = [name for cid, name in first.categories.items()
                if cid not in used and len(first.categories) > 1
                and all(supercategories.get(other) == name for other in first.categories if other != cid)]
    names: List[str] = []
    background = next((name for name in first.categories.values() if name.lower() in C.BACKGROUND_NAMES), None)
    if background is None:
        names.append("background")
    class_of_category = {}
    for cid, name in sorted(first.categories.items()):
        if name in left_out:
            continue
        if name not in names:
            names.append(name)
        class_of_category[cid] = names.index(name)
    return SemanticClasses(names, class_of_category, names.index(background or "background"), left_out)


def pycocotools_mask():
    """pycocotools' mask module, which draws COCO's regions as COCO's own tools do."""
    try:
        from pycocotools import mask
    except ImportError:
        raise DataError("The polygons and masks of COCO-format files and CVAT's XML are drawn with pycocotools, "
                        "which is not installed: "
                        "pip install pycocotools (or pip install 'segnext[data]')") from None
    return mask


def region_mask(segmentation, height: int, width: int, where: str) -> np.ndarray:
    """The boolean mask (H, W) of one object's `segmentation`: polygons, or run-length encoding
    (a list of counts, or compressed to a string)."""
    coco_mask = pycocotools_mask()
    if isinstance(segmentation, dict):
        if list(segmentation.get("size") or []) != [height, width]:
            raise DataError(f"{where}: its mask is {segmentation.get('size')} (height, width), the image "
                            f"{height}x{width}")
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise DataError(f"{where}: its run lengths add up to {sum(counts)}, not the {height * width} pixels")
            encoded = coco_mask.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            encoded = {"size": [height, width], "counts": counts}
        else:
            raise DataError(f"{where}: \"counts\" must be a list of run lengths or a compressed string")
        return coco_mask.decode(encoded).astype(bool)
    if isinstance(segmentation, list) and segmentation and all(isinstance(v, (int, float)) for v in segmentation):
        segmentation = [segmentation]  # one polygon written flat, as some tools write it
    if not isinstance(segmentation, list) or not all(
            isinstance(polygon, list) and len(polygon) % 2 == 0 and all(isinstance(v, (int, float)) for v in polygon)
            for polygon in segmentation):
        raise DataError(f"{where}: \"segmentation\" must be polygons [[x1, y1, x2, y2, ...], ...] or run-length "
                        f"encoding {{\"size\": [h, w], \"counts\": ...}}, got {str(segmentation)[:80]}")
    polygons = [[float(v) for v in polygon] for polygon in segmentation if len(polygon) >= 6]  # 3 points or more
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))).astype(bool)


def draw_label(annotations: Sequence[dict], height: int, width: int, class_of_category: Dict[int, int],
               background: int, where: str) -> np.ndarray:
    """The semantic label (H, W) uint8 of one image's annotations: each object's class over
    `background`, the largest objects drawn first."""
    label = np.full((height, width), background, dtype=np.uint8)
    for annotation in sorted(annotations, key=lambda a: a.get("area") or 0, reverse=True):
        class_id = class_of_category.get(annotation["category_id"])
        if class_id is not None:
            region = region_mask(annotation["segmentation"], height, width,
                                 f"{where}, annotation {annotation.get('id', '?')}")
            label[region] = class_id
    return label


def label_annotations(label: np.ndarray, image_id: int, first_id: int, skipped: Sequence[int] = ()) -> List[dict]:
    """COCO annotations of a semantic label (H, W): one per class it shows, its pixels as compressed
    run-length encoding (iscrowd 1, as COCO marks such masks), category id = class id + 1; the
    classes in `skipped` (a background) and 255 (no label) left out."""
    coco_mask = pycocotools_mask()
    annotations = []
    for class_id in np.unique(label).tolist():
        if class_id == IGNORE_INDEX or class_id in skipped:
            continue
        encoded = coco_mask.encode(np.asfortranarray(label == class_id, dtype=np.uint8))
        segmentation = {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}
        annotations.append({"id": first_id + len(annotations), "image_id": image_id, "category_id": class_id + 1,
                            "segmentation": segmentation, "area": int(coco_mask.area(encoded)),
                            "bbox": [float(v) for v in coco_mask.toBbox(encoded)], "iscrowd": 1})
    return annotations


def background_classes(class_names: Sequence[str]) -> List[int]:
    """The classes named as labelling tools name the background (no annotation is written for them)."""
    return [k for k, name in enumerate(class_names) if name.lower() in C.BACKGROUND_NAMES]


def categories(class_names: Sequence[str], skipped: Sequence[int] = ()) -> List[dict]:
    """COCO categories of the classes (id = class id + 1), the `skipped` left out."""
    return [{"id": k + 1, "name": name, "supercategory": ""} for k, name in enumerate(class_names) if k not in skipped]
