"""Labelme's annotation files read as semantic labels: one JSON file per image, beside it, with its
`shapes` (a label, points and a shape type), its `imagePath` (relative to the JSON file) and its size;
often the image itself too (`imageData`, base64).

Shapes are drawn as labelme's own `labelme2voc` draws them, with Pillow and in the file's order (a
later shape over an earlier one): polygons and rectangles filled, circles from their centre and a
point on the rim, lines 10 pixels wide, points as discs of radius 5, masks (base64 PNG) in their box.
The classes are those of a `labels.txt` (labelme's: one a line, `__ignore__` for the pixels to
ignore, `_background_` the class of the pixels no shape covers) or, without one, every label in the
files after a background class.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ...constants import IGNORE_INDEX
from ..io import DataError

IGNORE_LABEL, BACKGROUND_LABEL = "__ignore__", "_background_"
LINE_WIDTH, POINT_RADIUS = 10, 5  # labelme's
LABELS_FILE = "labels.txt"


@dataclass
class LabelmeFile:
    path: Path
    shapes: List[dict]
    image_path: str
    width: Optional[int]
    height: Optional[int]
    image_data: Optional[str]  # the image file, base64, when labelme kept it in the JSON


def looks_like_labelme(path: Path) -> bool:
    """Whether the JSON file at `path` names labelme's "shapes" and "imagePath": a look for the keys,
    not a parse (the files may hold their image); `read_labelme_file` checks."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    return b'"shapes"' in text and b'"imagePath"' in text


def find_labelme_files(source: Path) -> List[Path]:
    """Labelme's JSON files anywhere below `source` (hidden folders left out)."""
    return sorted(p for p in source.rglob("*.json")
                  if not any(part.startswith(".") for part in p.relative_to(source).parts) and looks_like_labelme(p))


def read_labelme_file(path: Path) -> LabelmeFile:
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error}); save it again in labelme") from None
    if not isinstance(content, dict) or not isinstance(content.get("shapes"), list):
        raise DataError(f"{path}: not a labelme file (a list of \"shapes\" and an \"imagePath\")")
    for number, shape in enumerate(content["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not isinstance(
                shape.get("points"), list):
            raise DataError(f"{path}: shape {number} needs a \"label\" and \"points\" [[x, y], ...]")
    return LabelmeFile(path, content["shapes"], str(content.get("imagePath") or ""), content.get("imageWidth"),
                       content.get("imageHeight"), content.get("imageData"))


def read_labels_file(path: Path) -> List[str]:
    """The labels of labelme's labels.txt, in order, blank lines left out."""
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise DataError(f"{path}: {', '.join(repeated)} listed more than once; each label once, a line")
    return labels


@dataclass
class LabelmeClasses:
    names: List[str]
    class_of_label: Dict[str, int]  # __ignore__ -> 255
    background: int


def labelme_classes(files: Sequence[LabelmeFile], labels_file: Optional[Path]) -> LabelmeClasses:
    """The classes: labels.txt's (without `__ignore__`) if given, else a background class and every
    label of the files, sorted. A label missing from labels.txt is reported by `draw_label`."""
    if labels_file is not None:
        labels = [label for label in read_labels_file(labels_file) if label != IGNORE_LABEL]
        if not labels:
            raise DataError(f"{labels_file}: no class in it; one label a line, e.g. _background_, then cat, dog")
    else:
        found = {shape["label"] for f in files for shape in f.shapes} - {IGNORE_LABEL, BACKGROUND_LABEL}
        labels = [BACKGROUND_LABEL] + sorted(found)
    background = labels.index(BACKGROUND_LABEL) if BACKGROUND_LABEL in labels else 0
    class_of_label = {label: index for index, label in enumerate(labels)}
    class_of_label[IGNORE_LABEL] = IGNORE_INDEX
    names = ["background" if label == BACKGROUND_LABEL else label for label in labels]
    return LabelmeClasses(names, class_of_label, background)


def shape_region(shape: dict, height: int, width: int, where: str) -> np.ndarray:
    """The boolean mask (H, W) of one labelme shape."""
    kind = shape.get("shape_type") or "polygon"
    try:
        points = [(float(x), float(y)) for x, y in shape["points"]]
    except (TypeError, ValueError):
        raise DataError(f"{where}: \"points\" must be [[x, y], ...], got {str(shape['points'])[:80]}") from None
    if not points:
        raise DataError(f"{where}: a {kind} without points; delete it or draw it again in labelme")
    if kind == "mask":
        return _mask_region(shape, points, height, width, where)
    if kind in ("circle", "rectangle") and len(points) != 2:
        raise DataError(f"{where}: a {kind} has 2 points, got {len(points)}")
    region = Image.new("1", (width, height))
    draw = ImageDraw.Draw(region)
    if kind == "circle":
        (cx, cy), (px, py) = points
        radius = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = points
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(points, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        cx, cy = points[0]
        draw.ellipse([cx - POINT_RADIUS, cy - POINT_RADIUS, cx + POINT_RADIUS, cy + POINT_RADIUS], outline=1, fill=1)
    elif kind == "polygon":
        if len(points) >= 2:
            draw.polygon(points, outline=1, fill=1)
    else:
        raise DataError(f"{where}: shape type {kind!r} is not one of labelme's (polygon, rectangle, circle, line, "
                        f"linestrip, point, mask)")
    return np.asarray(region)


def _mask_region(shape: dict, points, height: int, width: int, where: str) -> np.ndarray:
    """A "mask" shape: a base64 PNG of the box from its first point to its second."""
    try:
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(shape.get("mask") or "", validate=True))))
    except (binascii.Error, OSError, ValueError):
        raise DataError(f"{where}: its \"mask\" is not a base64 PNG; save it again in labelme") from None
    x0, y0 = (max(0, int(round(v))) for v in points[0])
    region = np.zeros((height, width), dtype=bool)
    box = mask[: max(0, height - y0), : max(0, width - x0)].astype(bool)
    region[y0:y0 + box.shape[0], x0:x0 + box.shape[1]] = box
    return region


def draw_label(file: LabelmeFile, height: int, width: int, classes: LabelmeClasses) -> np.ndarray:
    """The semantic label (H, W) uint8 of one file: its shapes in order over the background."""
    label = np.full((height, width), classes.background, dtype=np.uint8)
    for number, shape in enumerate(file.shapes):
        class_id = classes.class_of_label.get(shape["label"])
        if class_id is None:
            raise DataError(f"{file.path}: label {shape['label']!r} is not in {LABELS_FILE}; add it there")
        label[shape_region(shape, height, width, f"{file.path}, shape {number} ({shape['label']})")] = class_id
    return label


def image_bytes(file: LabelmeFile) -> Optional[bytes]:
    """The image file kept in the JSON (imageData), if any."""
    if not file.image_data:
        return None
    try:
        return base64.b64decode(file.image_data, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{file.path}: its \"imageData\" is not base64; save it again in labelme") from None
