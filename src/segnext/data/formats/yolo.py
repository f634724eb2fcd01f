"""Ultralytics YOLO segmentation datasets read as semantic labels (what Roboflow's "YOLOv8", CVAT's
"Ultralytics YOLO Segmentation" and Label Studio's "YOLO" exports hold).

A dataset has a `data.yaml` naming the classes (`names: [cat, dog]` or `names: {0: cat, 1: dog}`),
and per image a text file of the same name under `labels/` instead of `images/`, one object a line:
`class x1 y1 x2 y2 ... xn yn`, the polygon's corners as fractions of the image's width and height.
An image without a text file (or with an empty one) shows no object: YOLO's background image.

The semantic label draws each polygon in its class over a background class (put first, as YOLO
has none), the largest first, so that a small object on a larger one stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import yaml
from PIL import Image, ImageDraw

from .. import classes as C
from ..io import DataError

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml")


def find_data_yaml(source: Path) -> Optional[Path]:
    """The YAML file naming a YOLO dataset's classes: SRC/data.yaml (or dataset.yaml), else any
    SRC/*.yaml with `names`."""
    for name in YAML_NAMES:
        if (source / name).is_file():
            return source / name
    for path in sorted(source.glob("*.y*ml")):
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(content, dict) and "names" in content:
            return path
    return None


def read_names(path: Path) -> List[str]:
    """The class names of a data.yaml: `names` as a list, or as {id: name} with ids 0..N-1."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML ({error})") from None
    names = content.get("names") if isinstance(content, dict) else None
    if isinstance(names, dict):
        try:
            ids = sorted((int(key), str(value)) for key, value in names.items())
        except ValueError:
            ids = []
        if [i for i, _ in ids] != list(range(len(ids))):
            raise DataError(f"{path}: the ids of names must be 0..N-1, got {', '.join(map(str, names))}")
        names = [name for _, name in ids]
    if not isinstance(names, list) or not names:
        raise DataError(f"{path}: no class names; YOLO's data.yaml lists them as `names: [cat, dog]`")
    return [str(name) for name in names]


@dataclass
class YoloObject:
    class_id: int
    polygon: np.ndarray  # (n, 2): x, y as fractions of the width and height


def read_objects(path: Path, num_classes: int) -> Tuple[List[YoloObject], int]:
    """(the polygons of a label file, the number of its lines that are boxes: `class cx cy w h`)."""
    objects, boxes = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]  # the class too: some exporters write "0.0" for 0
            if not values[0].is_integer():
                raise ValueError
        except ValueError:
            raise DataError(f"{path}, line {number}: {line.strip()[:60]!r} is not `class x1 y1 x2 y2 ...` "
                            f"(numbers, the class a whole number)") from None
        class_id, values = int(values[0]), values[1:]
        if not 0 <= class_id < num_classes:
            raise DataError(f"{path}, line {number}: class {class_id} is not one of the {num_classes} names of "
                            f"data.yaml (0..{num_classes - 1})")
        if len(values) == 4:
            boxes += 1
            continue
        if len(values) < 6 or len(values) % 2:
            raise DataError(f"{path}, line {number}: {len(values)} coordinates; a polygon has x y pairs, 3 or more")
        objects.append(YoloObject(class_id, np.asarray(values, dtype=np.float64).reshape(-1, 2)))
    return objects, boxes


def count_boxes(path: Path) -> int:
    """The lines of a label file that are boxes (`class cx cy w h`), which a semantic label cannot draw."""
    return sum(len(line.split()) == 5 for line in path.read_text(encoding="utf-8").splitlines())


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def draw_label(objects: Sequence[YoloObject], height: int, width: int, class_ids: Sequence[int],
               background: int) -> np.ndarray:
    """The semantic label (H, W) uint8: each object's polygon (in pixels) in class `class_ids[its
    class]` over `background`, the largest drawn first."""
    label = Image.fromarray(np.full((height, width), background, dtype=np.uint8))
    draw = ImageDraw.Draw(label)
    for item in sorted(objects, key=lambda o: _area(o.polygon), reverse=True):
        corners = [(float(x) * width, float(y) * height) for x, y in item.polygon]
        draw.polygon(corners, fill=int(class_ids[item.class_id]), outline=int(class_ids[item.class_id]))
    return np.asarray(label)


def semantic_classes(names: Sequence[str]) -> Tuple[List[str], List[int], int]:
    """(the classes, the class of each YOLO class id, the background class): a name such as
    "background" is the background; without one, a class "background" is put first."""
    background = next((i for i, name in enumerate(names) if name.lower() in C.BACKGROUND_NAMES), None)
    if background is not None:
        return list(names), list(range(len(names))), background
    return ["background"] + list(names), list(range(1, len(names) + 1)), 0
