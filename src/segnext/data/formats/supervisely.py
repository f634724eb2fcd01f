"""Supervisely projects read as semantic labels: SRC/meta.json names the classes and their colours,
each dataset folder holds img/NAME.jpg and ann/NAME.jpg.json, one annotation file per image with its
`size` and `objects` (a class title and a geometry).

Drawn in the file's order (a later object over an earlier one), as Supervisely renders them:
bitmaps (a base64, zlib-compressed PNG placed at its `origin`), polygons (the exterior filled, each
interior ring cut out) and rectangles (corners included). Points, lines and other geometries cover
no area and are counted, not drawn. The pixels no object covers are a background class, the
project's own if one is named so, else one put first.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .. import classes as C
from ..io import DataError

META_FILE = "meta.json"
AREA_GEOMETRIES = ("bitmap", "polygon", "rectangle")


def is_project(source: Path) -> bool:
    """Whether `source` is a Supervisely project: a meta.json with classes, and a dataset folder with ann/."""
    if not (source / META_FILE).is_file() or not any(source.glob("*/ann")):
        return False
    try:
        return "classes" in json.loads((source / META_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False


@dataclass
class ProjectClasses:
    names: List[str]
    palette: List[List[int]]
    class_of_title: Dict[str, int]
    background: int


def read_meta(path: Path) -> ProjectClasses:
    """The classes of a project's meta.json, in its order, with their colours ("#RRGGBB")."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        titles = [str(c["title"]) for c in meta["classes"]]
        colours = [str(c.get("color") or "#000000") for c in meta["classes"]]
        palette = [[int(colour[i:i + 2], 16) for i in (1, 3, 5)] for colour in colours]
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: a Supervisely meta.json lists \"classes\", each with a \"title\" and a "
                        f"\"color\" (#RRGGBB); could not read it ({error})") from None
    if not titles:
        raise DataError(f"{path}: no classes; export a project whose classes are defined")
    background = next((i for i, title in enumerate(titles) if title.lower() in C.BACKGROUND_NAMES), None)
    if background is None:
        titles, palette, background = ["background"] + titles, [[0, 0, 0]] + palette, 0
    return ProjectClasses(titles, palette, {title: i for i, title in enumerate(titles)}, background)


def read_annotation(path: Path) -> Tuple[int, int, List[dict]]:
    """(height, width, objects) of an annotation file."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        height, width = int(content["size"]["height"]), int(content["size"]["width"])
        objects = list(content.get("objects") or [])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: a Supervisely annotation holds \"size\" (height, width) and \"objects\"; "
                        f"could not read it ({error})") from None
    return height, width, objects


def _bitmap(item: dict, height: int, width: int, where: str) -> np.ndarray:
    try:
        bitmap = item["bitmap"]
        png = zlib.decompress(base64.b64decode(bitmap["data"]))
        with Image.open(io.BytesIO(png)) as image:
            pixels = np.asarray(image)
        x0, y0 = (int(v) for v in bitmap["origin"])
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error, OSError):
        raise DataError(f"{where}: its bitmap is not a base64, zlib-compressed PNG with an origin; export "
                        f"again") from None
    mask = pixels[..., -1] if pixels.ndim == 3 else pixels  # the alpha channel of an RGBA bitmap
    region = np.zeros((height, width), dtype=bool)
    box = mask[max(0, -y0): height - y0, max(0, -x0): width - x0].astype(bool)
    region[max(0, y0): max(0, y0) + box.shape[0], max(0, x0): max(0, x0) + box.shape[1]] = box
    return region


def object_region(item: dict, height: int, width: int, where: str) -> Optional[np.ndarray]:
    """The boolean mask (H, W) of one object, or None for a geometry without area."""
    geometry = item.get("geometryType")
    if geometry == "bitmap":
        return _bitmap(item, height, width, where)
    if geometry not in ("polygon", "rectangle"):
        return None
    try:
        exterior = [(float(x), float(y)) for x, y in item["points"]["exterior"]]
        interiors = [[(float(x), float(y)) for x, y in ring] for ring in item["points"].get("interior") or []]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: its points are not {{\"exterior\": [[x, y], ...], \"interior\": [...]}}") from None
    region = Image.new("1", (width, height))
    draw = ImageDraw.Draw(region)
    if geometry == "rectangle":
        if len(exterior) != 2:
            raise DataError(f"{where}: a rectangle has 2 exterior points, got {len(exterior)}")
        (x0, y0), (x1, y1) = exterior
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1)
    elif len(exterior) >= 3:
        draw.polygon(exterior, fill=1, outline=1)
        for ring in interiors:
            if len(ring) >= 3:
                draw.polygon(ring, fill=0, outline=0)
    return np.asarray(region)


def draw_label(objects: Sequence[dict], height: int, width: int, classes: ProjectClasses,
               where: str) -> Tuple[np.ndarray, int]:
    """(the semantic label (H, W) uint8 of an image's objects, the number without area)."""
    label = np.full((height, width), classes.background, dtype=np.uint8)
    without_area = 0
    for number, item in enumerate(objects):
        title = item.get("classTitle")
        if title not in classes.class_of_title:
            raise DataError(f"{where}: object {number} is of class {title!r}, which meta.json does not list")
        region = object_region(item, height, width, f"{where}, object {number} ({title})")
        if region is None:
            without_area += 1
            continue
        label[region] = classes.class_of_title[title]
    return label, without_area
