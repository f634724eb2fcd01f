"""Label Studio's "JSON" and "JSON-MIN" exports read as semantic labels.

An export is a list of tasks, each with the image it shows (`data.image`: the URL or path Label
Studio keeps, such as `/data/upload/3/0a1b2c3d-photo.jpg` or `/data/local-files/?d=photos/a.jpg`)
and its annotations, each a list of regions ("result"). Positions are in percent of the image's
width and height (`original_width`, `original_height` give them in pixels):

    polygonlabels      points [[x, y], ...]
    rectanglelabels    x, y (the top-left corner), width, height; rotation in degrees, clockwise
                       about that corner
    ellipselabels      x, y (the centre), radiusX, radiusY; rotation about the centre
    brushlabels        the pixels as Label Studio's run-length code (`rle`: the image's RGBA values
                       packed as thi.ng's rle-pack packs them); a pixel is in where its alpha is at
                       least half (128)
    bitmasklabels      a PNG data URL, the region opaque (alpha at least 128)
    keypointlabels     no area: not drawn, counted

A shape drawn with a shape tool and labelled by a separate `<Labels>` tag gives two results with
the same id: they are read as one region. A region with several labels takes the first.

The annotation of a task is the last one submitted (skipped and cancelled ones left out), a
ground-truth one first; a task without one is not labelled yet. A submitted annotation without
regions is all background. Regions are drawn with Pillow in the annotation's order (a later one over
an earlier), over a background class. JSON-MIN holds one annotation per task, its regions under the
name of the labelling tag, the task's data beside them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from PIL import Image, ImageDraw

from ...constants import IMAGE_SUFFIXES
from .. import classes as C
from ..io import DataError

ALPHA_THRESHOLD = 128  # a brush or bitmask pixel is in where it is at least half opaque
ELLIPSE_POINTS = 72  # an ellipse is drawn as a polygon of as many corners (it may be rotated)
UPLOAD_PREFIX = re.compile(r"[0-9a-f]{8}-(.+)")  # Label Studio's prefix of an uploaded file's name


@dataclass
class Region:
    label: Optional[str]  # None: a shape nobody labelled
    value: dict  # the geometry, as Label Studio wrote it
    width: Optional[int]  # original_width, original_height: the image's size in pixels
    height: Optional[int]
    rotated: float  # image_rotation: the image turned in the editor


@dataclass
class Task:
    id: str  # Label Studio's task id
    where: str  # the file and task, for messages
    image: Optional[str]  # the image as Label Studio names it (a URL or a path)
    regions: Optional[List[Region]]  # None: no submitted annotation (not labelled yet)
    predicted: bool = False  # holds a model's predictions (pre-annotations)


def looks_like_export(path: Path) -> bool:
    """Whether the JSON file at `path` is a Label Studio export: a list of tasks with annotations
    (JSON) or annotation ids (JSON-MIN); a look at the text, not a parse (`read_export` checks)."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    return text.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[") and any(
        key in text for key in (b'"annotations"', b'"completions"', b'"annotation_id"'))


def find_export_files(source: Path) -> List[Path]:
    """The Label Studio exports in SRC (SRC/*.json; classes.json is not one)."""
    return sorted(p for p in source.glob("*.json")
                  if not p.name.startswith(".") and p.name != "classes.json" and looks_like_export(p))


def is_brush_png_export(source: Path) -> bool:
    """Whether `source` holds Label Studio's "Brush labels to PNG" export: a mask per region, named
    by task, annotation, labeller and label, and nothing of the images they belong to."""
    return any(source.rglob("task-*-annotation-*-tag-*.png"))


def read_export(path: Path) -> List[Task]:
    """The tasks of a Label Studio export (JSON or JSON-MIN), each with the regions of its annotation."""
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error}); export the project again") from None
    if not isinstance(content, list) or not all(isinstance(task, dict) for task in content):
        raise DataError(f"{path}: not a Label Studio export (a list of tasks)")
    tasks = []
    for number, task in enumerate(content):
        task_id = str(task.get("id", number))
        where = f"{path}, task {task_id}"
        if "annotations" in task or "completions" in task:
            annotation = chosen_annotation(task.get("annotations", task.get("completions")) or [], where)
            regions = None if annotation is None else _regions(annotation.get("result") or [], where)
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
        else:  # JSON-MIN: the data and the regions of each tag side by side
            regions = _min_regions(task) if "annotation_id" in task or "annotator" in task else None
            data = task
        tasks.append(Task(task_id, where, image_reference(data), regions, bool(task.get("predictions"))))
    return tasks


def chosen_annotation(annotations: list, where: str) -> Optional[dict]:
    """The annotation a task's label is drawn from: submitted (not skipped, not cancelled), a
    ground-truth one first, then the last updated."""
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError(f"{where}: \"annotations\" must be a list of annotations")
    submitted = [a for a in annotations if not a.get("was_cancelled") and not a.get("skipped")]
    if not submitted:
        return None
    order = sorted(range(len(submitted)), key=lambda i: (bool(submitted[i].get("ground_truth")),
                                                         str(submitted[i].get("updated_at") or ""), i))
    return submitted[order[-1]]


def _regions(results: list, where: str) -> List[Region]:
    """The regions of an annotation's results: results of one id (a shape and its labels) merged."""
    if not isinstance(results, list):
        raise DataError(f"{where}: an annotation's \"result\" must be a list of regions")
    merged: Dict[str, dict] = {}
    for number, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            continue  # relations between regions, and the like: nothing to draw
        entry = merged.setdefault(str(result.get("id", f"#{number}")), {})
        entry.setdefault("value", {}).update(result["value"])
        for key in ("original_width", "original_height", "image_rotation"):
            if key in result:
                entry[key] = result[key]
    return [region for region in (_region(entry["value"], entry) for entry in merged.values()) if region]


def _min_regions(task: dict) -> List[Region]:
    """The regions of a JSON-MIN task: the lists of values under each tag's name."""
    values = [v for key, items in task.items() if isinstance(items, list)
              for v in items if isinstance(v, dict) and _label_keys(v)]
    return [region for region in (_region(v, v) for v in values) if region]


def _label_keys(value: dict) -> List[str]:
    return [key for key, labels in value.items() if key.endswith("labels") and isinstance(labels, list)]


def _region(value: dict, sizes: dict) -> Optional[Region]:
    """A region of a result's value, or None for results without a shape (choices, text, ratings)."""
    if kind_of(value) is None:
        return None
    labels = [label for key in _label_keys(value) for label in value[key] if isinstance(label, str)]
    return Region(labels[0] if labels else None, value, sizes.get("original_width"), sizes.get("original_height"),
                  float(sizes.get("image_rotation") or 0))


def kind_of(value: dict) -> Optional[str]:
    """The shape of a result's value: brush, bitmask, polygon, ellipse, rectangle, keypoint or None."""
    if "rle" in value:
        return "brush"
    if any(isinstance(v, str) and v.startswith("data:image/") for v in value.values()):
        return "bitmask"
    if "points" in value:
        return "polygon"
    if "radiusX" in value and "x" in value:
        return "ellipse"
    if all(key in value for key in ("x", "y", "width", "height")):
        return "rectangle"
    if "x" in value and "y" in value:
        return "keypoint"
    return None


def image_reference(data: dict) -> Optional[str]:
    """The image of a task's data: its "image", else the first value that names an image file."""
    if isinstance(data.get("image"), str):
        return data["image"]
    return next((v for v in data.values() if isinstance(v, str) and image_names(v)
                 and PurePosixPath(image_names(v)[-1]).suffix.lower() in IMAGE_SUFFIXES), None)


def image_names(reference: str) -> List[str]:
    """The relative paths an image may have in an export folder, most specific first: the path of its
    URL (`?d=` of local files) and each shorter ending of it; for an upload, the name it was
    uploaded with last (`uploaded_name`)."""
    url = urlsplit(reference.replace("\\", "/"))
    local = parse_qs(url.query).get("d")
    path = local[0] if local else unquote(url.path)  # parse_qs has unquoted the query
    parts = [part for part in path.split("/") if part not in ("", ".", "..")]
    names = ["/".join(parts[start:]) for start in range(len(parts))]
    original = uploaded_name(reference)
    return names + ([original] if original else [])


def uploaded_name(reference: str) -> Optional[str]:
    """The name an uploaded image had (`/data/upload/3/0a1b2c3d-photo.jpg` -> `photo.jpg`): Label
    Studio puts a random prefix before it, which would make every image a sequence of its own."""
    parts = unquote(urlsplit(reference.replace("\\", "/")).path).split("/")
    prefixed = UPLOAD_PREFIX.fullmatch(parts[-1]) if "upload" in parts[:-1] else None
    return prefixed.group(1) if prefixed else None


@dataclass
class SemanticClasses:
    names: List[str]
    class_of_label: Dict[str, int]
    background: int


def semantic_classes(tasks: Sequence[Task]) -> SemanticClasses:
    """A background class (a label such as "background", else one put first) and every label of the
    regions, sorted (letter case aside)."""
    labels = sorted({r.label for t in tasks for r in t.regions or [] if r.label is not None},
                    key=lambda label: (label.lower(), label))
    background = next((label for label in labels if label.lower() in C.BACKGROUND_NAMES), None)
    names = labels if background is not None else ["background"] + labels
    return SemanticClasses(names, {name: index for index, name in enumerate(names)},
                           names.index(background) if background is not None else 0)


# --------------------------------------------------------------------------------------------
# Drawing


def decode_rle(rle: Sequence[int], where: str) -> np.ndarray:
    """The values Label Studio's run-length code holds (uint8). The code is a bit stream: the number
    of values (32 bits), the bits of a value - 1 (5 bits), four sizes - 1 of run-length fields (4 bits
    each), then runs: a bit (1: one value repeated, 0: values one after the other), 2 bits choosing
    the run-length field, the run's length - 1 in it, then the value or the values."""
    try:
        data = bytes(rle)
    except (TypeError, ValueError):
        raise DataError(f"{where}: a brush's \"rle\" must be a list of bytes (0..255); export the project "
                        f"again") from None
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))  # groups of values are read from it whole
    position = 0

    def read(size: int) -> int:  # a field of at most 32 bits, from the 5 bytes that hold it
        nonlocal position
        if position + size > bits.size:
            raise DataError(f"{where}: a brush's \"rle\" ends before its last run; export the project again")
        start = position >> 3
        window = int.from_bytes(data[start:start + 5].ljust(5, b"\0"), "big")
        value = (window >> (40 - (position & 7) - size)) & ((1 << size) - 1)
        position += size
        return value

    count, word_size = read(32), read(5) + 1
    run_sizes = [read(4) + 1 for _ in range(4)]
    if word_size > 8:
        raise DataError(f"{where}: a brush's \"rle\" packs {word_size}-bit values; Label Studio's are 8-bit")
    weights = 1 << np.arange(word_size - 1, -1, -1)
    values = np.zeros(count, dtype=np.uint8)
    done = 0
    while done < count:
        repeated = read(1)
        end = done + 1 + read(run_sizes[read(2)])
        if end > count:
            raise DataError(f"{where}: a brush's \"rle\" runs past its {count} values; export the project again")
        if repeated:
            values[done:end] = read(word_size)
        else:
            size = (end - done) * word_size
            if position + size > bits.size:
                raise DataError(f"{where}: a brush's \"rle\" ends before its last run; export the project again")
            values[done:end] = bits[position:position + size].reshape(end - done, word_size) @ weights
            position += size
        done = end
    return values


def _brush_region(value: dict, height: int, width: int, where: str) -> np.ndarray:
    values = decode_rle(value["rle"], where)
    if values.size != height * width * 4:
        raise DataError(f"{where}: a brush of {values.size} values, not the {height}x{width}x4 (RGBA) of the "
                        f"image; export the project again")
    return values.reshape(height, width, 4)[..., 3] >= ALPHA_THRESHOLD


def _bitmask_region(value: dict, height: int, width: int, where: str) -> np.ndarray:
    url = next(v for v in value.values() if isinstance(v, str) and v.startswith("data:image/"))
    try:
        with Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2], validate=True))) as image:
            alpha = np.asarray(image.convert("RGBA"))[..., 3]
    except (binascii.Error, OSError, ValueError):
        raise DataError(f"{where}: a bitmask that is not a base64 PNG data URL; export the project again") from None
    if alpha.shape != (height, width):
        raise DataError(f"{where}: a bitmask of {alpha.shape[1]}x{alpha.shape[0]} pixels on a {width}x{height} image")
    return alpha >= ALPHA_THRESHOLD


def _corners(value: dict, kind: str, height: int, width: int) -> List[Tuple[float, float]]:
    """The corners (in pixels) of a polygon, a rectangle or an ellipse."""
    if kind == "polygon":
        return [(float(x) * width / 100, float(y) * height / 100) for x, y in value["points"]]
    angle = math.radians(float(value.get("rotation") or 0))
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = float(value["x"]) * width / 100, float(value["y"]) * height / 100
    if kind == "rectangle":  # (x, y) is the corner the rotation turns about
        w, h = float(value["width"]) * width / 100, float(value["height"]) * height / 100
        offsets = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    else:
        rx, ry = float(value["radiusX"]) * width / 100, float(value["radiusY"]) * height / 100
        steps = [2 * math.pi * i / ELLIPSE_POINTS for i in range(ELLIPSE_POINTS)]
        offsets = [(rx * math.cos(t), ry * math.sin(t)) for t in steps]
    return [(x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in offsets]


def region_mask(region: Region, height: int, width: int, where: str) -> Optional[np.ndarray]:
    """The boolean mask (H, W) of a region; None for one without area (a keypoint, a polygon of
    fewer than 3 points)."""
    kind = kind_of(region.value)
    if kind == "brush":
        return _brush_region(region.value, height, width, where)
    if kind == "bitmask":
        return _bitmask_region(region.value, height, width, where)
    if kind == "keypoint":
        return None
    try:
        corners = _corners(region.value, kind, height, width)
    except (TypeError, ValueError, KeyError):
        raise DataError(f"{where}: a {kind} with positions that are not numbers: {str(region.value)[:120]}") from None
    if len(corners) < 3:
        return None
    mask = Image.new("1", (width, height))
    ImageDraw.Draw(mask).polygon(corners, outline=1, fill=1)
    return np.asarray(mask)


def draw_label(regions: Sequence[Region], height: int, width: int, classes: SemanticClasses,
               where: str) -> Tuple[np.ndarray, int]:
    """(the semantic label (H, W) uint8 of a task's regions, in order over the background; the number
    of regions without area or label, not drawn)."""
    label = np.full((height, width), classes.background, dtype=np.uint8)
    not_drawn = 0
    for number, region in enumerate(regions):
        if region.rotated:
            raise DataError(f"{where}: the image was turned by {region.rotated:g} degrees in the editor; turn it back "
                            f"to 0 and submit again (regions of a turned image are not read)")
        mask = None if region.label is None else region_mask(region, height, width,
                                                             f"{where}, region {number} ({region.label})")
        if mask is None:
            not_drawn += 1
            continue
        label[mask] = classes.class_of_label[region.label]
    return label, not_drawn


# --------------------------------------------------------------------------------------------
# Writing: a model's labels as Label Studio's pre-annotations (predictions)

LOCAL_FILES_URL = "/data/local-files/?d="  # how Label Studio serves files below its local-files document root
FROM_NAME, TO_NAME = "tag", "image"  # the names of its "Semantic Segmentation with Masks" template
# What a browser shows; a task's image of another kind (.npy, TIFF) is shown from a picture of it, named
# in its data's PICTURE_FIELD, while its "image" keeps naming the file the labels belong to.
SHOWN_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
PICTURE_FIELD = "picture"
RUN_SIZES = (3, 4, 8, 16)  # the run-length fields Label Studio's editor writes


def encode_rle(values: np.ndarray) -> List[int]:
    """Label Studio's run-length code of uint8 `values` (what `decode_rle` reads): runs of a repeated
    value, and groups of single values written one after the other."""
    values = np.asarray(values, dtype=np.uint8).ravel()
    fields = [f"{values.size:032b}", f"{8 - 1:05b}"] + [f"{size - 1:04b}" for size in RUN_SIZES]

    def header(repeated: bool, length: int) -> str:
        index = next(i for i, size in enumerate(RUN_SIZES) if length - 1 < 2 ** size)
        return f"{int(repeated)}{index:02b}{length - 1:0{RUN_SIZES[index]}b}"

    singles: List[int] = []

    def write_singles() -> None:
        for start in range(0, len(singles), 2 ** 16):
            group = singles[start:start + 2 ** 16]
            fields.append(header(False, len(group)) + "".join(f"{v:08b}" for v in group))
        singles.clear()

    changes = np.flatnonzero(values[1:] != values[:-1]) + 1
    for start, end in zip(np.r_[0, changes].tolist(), np.r_[changes, values.size].tolist()):
        if end - start == 1:
            singles.append(int(values[start]))
            continue
        write_singles()
        for run_start in range(start, end, 2 ** 16):
            fields.append(header(True, min(end - run_start, 2 ** 16)) + f"{int(values[start]):08b}")
    write_singles()
    bits = np.frombuffer("".join(fields).encode("ascii"), dtype=np.uint8) - ord("0")
    return np.packbits(bits).tolist()


def label_results(label: np.ndarray, class_names: Sequence[str], skipped: Sequence[int] = ()) -> List[dict]:
    """The regions of a semantic label (H, W) as Label Studio's results: a brush per class it shows
    (as its editor writes a brush: each RGBA channel the mask), the classes in `skipped` (a
    background) and 255 (no label) left out."""
    height, width = label.shape
    results = []
    for class_id in np.unique(label).tolist():
        if class_id >= len(class_names) or class_id in skipped:
            continue
        alpha = np.where(label == class_id, 255, 0).astype(np.uint8)
        results.append({"id": f"class{class_id}", "type": "brushlabels", "from_name": FROM_NAME, "to_name": TO_NAME,
                        "original_width": int(width), "original_height": int(height), "image_rotation": 0,
                        "value": {"format": "rle", "rle": encode_rle(np.repeat(alpha.ravel(), 4)),
                                  "brushlabels": [class_names[class_id]]}})
    return results


def label_config(class_names: Sequence[str], palette: Sequence[Sequence[int]], skipped: Sequence[int] = (),
                 shown: str = "image") -> str:
    """The labelling interface (Label Studio's XML) that reads `label_results`: a brush per class in
    its colour, over the picture of the tasks' data field `shown` (`PICTURE_FIELD` where the images
    are files a browser cannot show)."""
    from xml.sax.saxutils import quoteattr

    labels = "".join(f"    <Label value={quoteattr(name)} background=\"#{r:02x}{g:02x}{b:02x}\"/>\n"
                     for k, (name, (r, g, b)) in enumerate(zip(class_names, palette)) if k not in skipped)
    return (f"<View>\n  <Image name=\"{TO_NAME}\" value=\"${shown}\" zoom=\"true\"/>\n"
            f"  <BrushLabels name=\"{FROM_NAME}\" toName=\"{TO_NAME}\">\n{labels}  </BrushLabels>\n</View>\n")
