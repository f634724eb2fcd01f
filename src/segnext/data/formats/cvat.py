"""CVAT's own XML export ("CVAT for images 1.1", its default) read as semantic labels.

`annotations.xml` lists the labels of the task or project (`<meta>`, each with its colour), then per
image its name, size, subset (project exports) and shapes, in pixels:

    <polygon points="x1,y1;x2,y2;...">
    <box xtl ytl xbr ybr rotation>        rotation in degrees, clockwise about the box's centre
    <ellipse cx cy rx ry rotation>
    <mask rle left top width height>      the box's pixels row by row, as run lengths of 0 then 1 ...
    <polyline>, <points>, <skeleton>, <cuboid>: no area, counted

Shapes are drawn as CVAT's own "Segmentation mask" export draws them: by their z_order (a higher
one over a lower; the file's order among equals), polygons, boxes and ellipses with pycocotools,
over a background class. "CVAT for video" writes tracks instead of per-image shapes: its tracks are
not read (CVAT for images 1.1 writes each frame's shapes, interpolated ones included).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import classes as C
from ..io import DataError
from .coco import region_mask

AREA_SHAPES = ("polygon", "box", "ellipse", "mask")
NO_AREA_SHAPES = ("polyline", "points", "skeleton", "cuboid")
NO_AREA_LABEL_TYPES = ("tag", "points", "polyline", "skeleton", "cuboid")  # a label that never covers pixels
ELLIPSE_POINTS = 72


@dataclass
class CvatShape:
    kind: str  # polygon, box, ellipse, mask, or a shape without area
    label: str
    z_order: int
    fields: Dict[str, str]  # the shape's XML attributes


@dataclass
class CvatImage:
    name: str
    subset: str
    width: int
    height: int
    shapes: List[CvatShape]


@dataclass
class CvatExport:
    path: Path
    labels: List[Tuple[str, Optional[List[int]]]]  # (name, colour), as <meta> lists them
    images: List[CvatImage]
    tracks: int  # <track> elements ("CVAT for video"): not read


def looks_like_export(path: Path) -> bool:
    """Whether the XML file at `path` is CVAT's: an <annotations> document with a <version>; a look at
    its beginning, not a parse."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return b"<annotations" in head and b"<version>" in head


def find_export_files(source: Path) -> List[Path]:
    """CVAT's XML files in SRC (SRC/*.xml: annotations.xml, or several named by the user)."""
    return sorted(p for p in source.glob("*.xml") if not p.name.startswith(".") and looks_like_export(p))


def _colour(text: Optional[str]) -> Optional[List[int]]:
    text = (text or "").strip().lstrip("#")
    try:
        return [int(text[i:i + 2], 16) for i in (0, 2, 4)] if len(text) == 6 else None
    except ValueError:
        return None


def read_export(path: Path) -> CvatExport:
    """The labels, images and shapes of a CVAT XML file, checked."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DataError(f"{path}: not readable XML ({error}); export the annotations again") from None
    if root.tag != "annotations":
        raise DataError(f"{path}: not CVAT's XML (its root is <{root.tag}>, not <annotations>)")
    meta = root.find("meta")
    label_lists = [] if meta is None else [e for e in meta.iter("labels")]
    labels = []
    for label in label_lists[0] if label_lists else []:
        name = (label.findtext("name") or "").strip()
        if label.tag == "label" and name and (label.findtext("type") or "any") not in NO_AREA_LABEL_TYPES:
            labels.append((name, _colour(label.findtext("color"))))
    task_subset = (meta.findtext("task/subset") if meta is not None else None) or "default"
    images = []
    for element in root.iter("image"):
        where = f"{path}, image {element.get('name')!r}"
        try:
            width, height = int(element.get("width", "")), int(element.get("height", ""))
        except ValueError:
            raise DataError(f"{where}: no width and height; export the annotations again") from None
        shapes = []
        for shape in element:
            if shape.tag in AREA_SHAPES + NO_AREA_SHAPES:
                try:
                    z_order = int(shape.get("z_order") or 0)
                except ValueError:
                    z_order = 0
                shapes.append(CvatShape(shape.tag, shape.get("label", ""), z_order, dict(shape.attrib)))
        images.append(CvatImage(str(element.get("name") or ""), element.get("subset") or task_subset, width, height,
                                shapes))
    return CvatExport(path, labels, images, sum(1 for _ in root.iter("track")))


@dataclass
class SemanticClasses:
    names: List[str]
    palette: List[List[int]]
    class_of_label: Dict[str, int]
    background: int


def semantic_classes(exports: Sequence[CvatExport], default_palette: Sequence[Sequence[int]]) -> SemanticClasses:
    """The labels of the exports, in their order and colours, after a background class (black) put
    first unless a label is named as one; labels without a colour take `default_palette`'s."""
    labels: Dict[str, Optional[List[int]]] = {}
    for export in exports:
        for name, colour in export.labels:
            labels.setdefault(name, colour)
    if not labels:  # an export without <meta> labels: the shapes' labels, sorted
        labels = {name: None for name in sorted({s.label for e in exports for i in e.images for s in i.shapes})}
    names = list(labels)
    background = next((name for name in names if name.lower() in C.BACKGROUND_NAMES), None)
    if background is None:
        names, labels = ["background"] + names, {"background": [0, 0, 0], **labels}
    palette = [labels[name] or list(default_palette[k % len(default_palette)]) for k, name in enumerate(names)]
    return SemanticClasses(names, palette, {name: k for k, name in enumerate(names)},
                           names.index(background) if background is not None else 0)


def _numbers(shape: CvatShape, keys: Sequence[str], where: str) -> List[float]:
    try:
        return [float(shape.fields[key]) for key in keys]
    except (KeyError, ValueError):
        raise DataError(f"{where}: a {shape.kind} needs the numbers {', '.join(keys)}; export the annotations "
                        f"again") from None


def _turned(points: List[Tuple[float, float]], centre: Tuple[float, float], degrees: float) -> List[float]:
    """The corners turned clockwise (on the image: y points down) about `centre`, flat [x1, y1, ...]."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = centre
    return [v for x, y in points for v in (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)]


def shape_mask(shape: CvatShape, height: int, width: int, where: str) -> Optional[np.ndarray]:
    """The boolean mask (H, W) of a shape; None for shapes without area."""
    if shape.kind == "mask":
        return _mask_region(shape, height, width, where)
    if shape.kind == "polygon":
        try:
            corners = [float(v) for point in shape.fields["points"].split(";") for v in point.split(",")]
        except (KeyError, ValueError):
            raise DataError(f"{where}: a polygon's points are not \"x1,y1;x2,y2;...\"") from None
        if len(corners) < 6:
            return None
    elif shape.kind == "box":
        x0, y0, x1, y1 = _numbers(shape, ("xtl", "ytl", "xbr", "ybr"), where)
        corners = _turned([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], ((x0 + x1) / 2, (y0 + y1) / 2),
                          float(shape.fields.get("rotation") or 0))
    elif shape.kind == "ellipse":
        cx, cy, rx, ry = _numbers(shape, ("cx", "cy", "rx", "ry"), where)
        steps = [2 * math.pi * i / ELLIPSE_POINTS for i in range(ELLIPSE_POINTS)]
        corners = _turned([(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in steps], (cx, cy),
                          float(shape.fields.get("rotation") or 0))
    else:
        return None
    return region_mask([corners], height, width, where)


def _mask_region(shape: CvatShape, height: int, width: int, where: str) -> np.ndarray:
    """A mask shape: run lengths (0s first, then 1s, ...) of its box's pixels, row by row."""
    left, top, box_width, box_height = (int(v) for v in _numbers(shape, ("left", "top", "width", "height"), where))
    try:
        runs = [int(v) for v in shape.fields.get("rle", "").split(",") if v.strip()]
    except ValueError:
        raise DataError(f"{where}: a mask's rle is not comma-separated run lengths") from None
    if sum(runs) != box_width * box_height or min(runs, default=0) < 0:
        raise DataError(f"{where}: a mask's run lengths add up to {sum(runs)}, not its {box_width}x{box_height} box")
    values = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(box_height, box_width)
    region = np.zeros((height, width), dtype=bool)
    box = values[: max(0, height - top), : max(0, width - left)]
    region[top:top + box.shape[0], left:left + box.shape[1]] = box
    return region


def draw_label(image: CvatImage, classes: SemanticClasses, where: str) -> Tuple[np.ndarray, int]:
    """(the semantic label (H, W) uint8 of an image's shapes, by z_order over the background; the
    number of shapes without area, not drawn)."""
    label = np.full((image.height, image.width), classes.background, dtype=np.uint8)
    not_drawn = 0
    for number, shape in sorted(enumerate(image.shapes), key=lambda item: (item[1].z_order, item[0])):
        if shape.kind in NO_AREA_SHAPES:
            not_drawn += 1
            continue
        class_id = classes.class_of_label.get(shape.label)
        if class_id is None:
            raise DataError(f"{where}: label {shape.label!r} is not among the export's labels "
                            f"({', '.join(classes.names)})")
        mask = shape_mask(shape, image.height, image.width, f"{where}, {shape.kind} {number} ({shape.label})")
        if mask is None:
            not_drawn += 1
            continue
        label[mask] = class_id
    return label, not_drawn
