"""The VGG Image Annotator's (VIA 1 and 2) JSON read as semantic labels: its exported annotations
(`via_region_data.json`, "Export Annotations (as json)") or a saved project (`_via_img_metadata`).

Per image, keyed by file name and size in bytes: its `filename` and `regions`, each a shape in
pixels (`shape_attributes`) and what the labeller gave it (`region_attributes`):

    polygon     all_points_x, all_points_y
    rect        x, y, width, height
    circle      cx, cy, r
    ellipse     cx, cy, rx, ry, theta (radians, clockwise)
    polyline, point: no area, counted

The class of a region is the value of one of its region attributes: the one attribute a project
declares with a single choice (dropdown, radio), or with options (checkboxes too), or the attribute
named class, label, name, type or category, or the only one there is; regions without any attribute
(a dataset of one class, as VIA's balloons) are all one class, "object". A project's options give
the classes in their order; an exported file's values give them sorted. Regions are drawn with
Pillow in their order (a later one over an earlier), over a background class. VIA's JSON does not
hold the image's size: the images must be there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .. import classes as C
from ..io import DataError

CLASS_ATTRIBUTE_NAMES = ("class", "label", "name", "type", "category", "class_name", "object")
ELLIPSE_POINTS = 72
ONE_CLASS = "object"  # the class of regions that carry no attribute at all


@dataclass
class ViaImage:
    filename: str
    regions: List[dict]


@dataclass
class ViaFile:
    path: Path
    images: List[ViaImage]
    declared: Dict[str, List[str]]  # a project's region attributes with options: name -> the options
    single_choice: List[str]  # those of them that take one option (dropdown, radio)


def looks_like_via(path: Path) -> bool:
    """Whether the JSON file at `path` is VIA's: a saved project, or exported annotations with
    shape and region attributes; a look at the text, not a parse (`read_via_file` checks)."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    return b'"_via_img_metadata"' in text or (b'"shape_attributes"' in text and b'"region_attributes"' in text)


def find_via_files(source: Path) -> List[Path]:
    """VIA's JSON files in SRC and in its folders (SRC/train/via_region_data.json ...)."""
    candidates = set(source.glob("*.json")) | set(source.glob("*/*.json"))
    return sorted(p for p in candidates if not any(part.startswith(".") for part in p.relative_to(source).parts)
                  and p.name != "classes.json" and looks_like_via(p))


def read_via_file(path: Path) -> ViaFile:
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error}); export the annotations from VIA again") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not VIA's JSON (an object of images)")
    declared, single_choice = {}, []
    if "_via_img_metadata" in content:  # a saved project
        attributes = (content.get("_via_attributes") or {}).get("region") or {}
        declared = {name: list(spec.get("options") or {}) for name, spec in attributes.items()
                    if isinstance(spec, dict) and spec.get("options")}
        single_choice = [name for name in declared if attributes[name].get("type") in ("dropdown", "radio")]
        content = content["_via_img_metadata"]
    images = []
    for key, entry in content.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise DataError(f"{path}: {key!r} is not an image entry (\"filename\", \"regions\")")
        regions = entry.get("regions") or []
        if isinstance(regions, dict):  # VIA 1: {"0": region, "1": region}
            regions = [regions[k] for k in sorted(regions, key=lambda k: int(k) if str(k).isdigit() else 0)]
        images.append(ViaImage(str(entry["filename"]), [r for r in regions if isinstance(r, dict)]))
    return ViaFile(path, images, declared, single_choice)


@dataclass
class SemanticClasses:
    attribute: str
    names: List[str]
    class_of_value: Dict[str, int]
    background: int


def class_attribute(files: Sequence[ViaFile]) -> str:
    """The region attribute that holds the class (see the module's docstring)."""
    single_choice = {name for f in files for name in f.single_choice}
    declared = {name for f in files for name in f.declared}
    used = {name for f in files for i in f.images for r in i.regions for name in (r.get("region_attributes") or {})}
    for names in (single_choice, declared, used):
        if len(names) == 1:
            return next(iter(names))
        preferred = [name for name in CLASS_ATTRIBUTE_NAMES for found in names if found.lower() == name]
        if preferred:
            return next(found for found in names if found.lower() == preferred[0])
    if not used:
        return ""  # regions of one kind, as in a dataset of one class (VIA's balloons): each is ONE_CLASS
    where = ", ".join(str(f.path) for f in files)
    raise DataError(f"{where}: which region attribute is the class? Its regions have {', '.join(sorted(used))}; "
                    f"name the class's attribute \"class\" in VIA (Attributes > region attributes)")


def region_value(region: dict, attribute: str) -> Optional[str]:
    """The class a region was given: the attribute's text, or the first option ticked (checkboxes);
    ONE_CLASS where the regions have no attributes at all."""
    if not attribute:
        return ONE_CLASS
    value = (region.get("region_attributes") or {}).get(attribute)
    if isinstance(value, dict):
        value = next((option for option, ticked in value.items() if ticked), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def semantic_classes(files: Sequence[ViaFile]) -> SemanticClasses:
    """A background class (an option or value such as "background", else one put first), then the
    project's options in order, or the values given, sorted."""
    attribute = class_attribute(files)
    options = [o for f in files for o in f.declared.get(attribute, [])]
    values = {v for f in files for i in f.images for r in i.regions for v in [region_value(r, attribute)] if v}
    labels = list(dict.fromkeys(options + sorted(values - set(options), key=lambda v: (v.lower(), v))))
    background = next((label for label in labels if label.lower() in C.BACKGROUND_NAMES), None)
    names = labels if background is not None else ["background"] + labels
    return SemanticClasses(attribute, names, {name: k for k, name in enumerate(names)},
                           names.index(background) if background is not None else 0)


def _corners(shape: dict, where: str) -> Optional[List[Tuple[float, float]]]:
    """The corners (in pixels) of a shape with area; None for one without (polyline, point)."""
    kind = shape.get("name")
    try:
        if kind == "polygon":
            xs, ys = list(shape["all_points_x"]), list(shape["all_points_y"])
            if len(xs) == len(ys):
                return [(float(x), float(y)) for x, y in zip(xs, ys)]
        if kind == "rect":
            x, y, w, h = (float(shape[key]) for key in ("x", "y", "width", "height"))
            return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        if kind in ("circle", "ellipse"):
            cx, cy = float(shape["cx"]), float(shape["cy"])
            rx, ry = (float(shape["r"]),) * 2 if kind == "circle" else (float(shape["rx"]), float(shape["ry"]))
            theta = float(shape.get("theta") or 0)
            cos, sin = math.cos(theta), math.sin(theta)
            steps = [2 * math.pi * i / ELLIPSE_POINTS for i in range(ELLIPSE_POINTS)]
            return [(cx + rx * math.cos(t) * cos - ry * math.sin(t) * sin,
                     cy + rx * math.cos(t) * sin + ry * math.sin(t) * cos) for t in steps]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: a {kind} without its numbers: {str(shape)[:120]}") from None
    if kind == "polygon":
        raise DataError(f"{where}: a polygon of {len(xs)} x and {len(ys)} y coordinates; draw it again in VIA")
    if kind in ("polyline", "point"):
        return None
    raise DataError(f"{where}: shape {kind!r} is not one of VIA's (polygon, rect, circle, ellipse, polyline, point)")


def draw_label(image: ViaImage, height: int, width: int, classes: SemanticClasses,
               where: str) -> Tuple[np.ndarray, int]:
    """(the semantic label (H, W) uint8 of an image's regions in order over the background; the
    number of regions without area or class, not drawn)."""
    label = Image.fromarray(np.full((height, width), classes.background, dtype=np.uint8))
    draw = ImageDraw.Draw(label)
    not_drawn = 0
    for number, region in enumerate(image.regions):
        value = region_value(region, classes.attribute)
        corners = _corners(region.get("shape_attributes") or {}, f"{where}, region {number}")
        if value is None or corners is None or len(corners) < 3:
            not_drawn += 1
            continue
        draw.polygon(corners, fill=classes.class_of_value[value], outline=classes.class_of_value[value])
    return np.asarray(label), not_drawn
