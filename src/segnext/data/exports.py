"""Your own data into the folder layout (`segnext data prepare folder SRC DST`): colour masks with the
palette of a classes.json, and what labelling tools export, read as they come:

    colour masks        SRC/images/<split>/ (or SRC/<split>/images/), SRC/labels/<split>/ (or
                        SRC/<split>/labels/, masks/ for labels/) colour masks, SRC/classes.json (palette)
    CVAT, Datumaro      "Segmentation mask": SRC/SegmentationClass/, JPEGImages/, labelmap.txt,
                        ImageSets/Segmentation/<subset>.txt
    CVAT's XML          "CVAT for images 1.1": SRC/annotations.xml (polygons, boxes, ellipses, masks),
                        SRC/images/
    Roboflow            "Semantic Segmentation Masks": SRC/<split>/NAME.jpg, NAME_mask.png, _classes.csv
    COCO format         CVAT's "COCO 1.0", Roboflow's "COCO Segmentation", Label Studio's "COCO":
                        SRC/annotations/instances_<subset>.json, SRC/<split>/_annotations.coco.json,
                        SRC/result.json (polygons and masks of objects)
    Label Studio        "JSON" or "JSON-MIN": SRC/<export>.json (brushes, polygons, rectangles,
                        ellipses, bitmasks), the images anywhere under SRC
    VIA                 the VGG Image Annotator's JSON: SRC/via_region_data.json (or SRC/<split>/*.json)
                        beside the images, or a saved project
    labelme             SRC/**/NAME.json beside each image, SRC/labels.txt
    YOLO segmentation   SRC/data.yaml, SRC/labels/<split>/*.txt polygons (Roboflow's "YOLOv8", CVAT's
                        "Ultralytics YOLO Segmentation", Label Studio's "YOLO")
    Supervisely         SRC/meta.json, SRC/<dataset>/img/NAME.jpg, SRC/<dataset>/ann/NAME.jpg.json

Each gives DST/labels/<split>/*.png of class ids (255: no label), DST/images/ linked to the source's
images, and DST/classes.json; a split per subset or split folder of the source.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..constants import IGNORE_INDEX, IMAGE_SUFFIXES
from ..utils import atomic_write
from . import classes as C
from .bands import read_image_or_bands
from .conversion import (
    Guarded,
    ImageIndex,
    PrepareReport,
    check_distinct_colours,
    colours_to_ids,
    describe_colours,
    link_folder,
    link_image,
    run_counted_tasks,
    run_tasks,
    up_to_date,
    write_classes_json,
)
from .datasets import read_classes_json, visible_entries
from .formats import coco, cvat, label_studio, labelme, supervisely, via, yolo
from .io import DataError, decode_image, read_image, read_label, write_label
from .palette import default_palette

# --------------------------------------------------------------------------------------------
# Colour masks, each colour the class of the palette in SRC/classes.json (or a grey level)

COLOUR_MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")


def _convert_colour_mask(source: str, target: str, palette: list, ignore_colours: list, overwrite: bool):
    if up_to_date([target], overwrite):
        return "skipped", ""
    if source.lower().endswith((".jpg", ".jpeg")):
        raise DataError(f"{source}: a JPEG mask; JPEG blurs the colours at every edge into colours of no class. "
                        f"Export the masks as PNG")
    with Image.open(source) as image:
        if image.mode in ("1", "L", "I", "F") or image.mode.startswith("I;16"):
            mask = _grey_levels_as_colours(source, image, palette, ignore_colours)
        else:
            mask = np.asarray(image.convert("RGB"))
    ids, unknown = colours_to_ids(mask, palette, ignore_colours)
    if unknown:
        raise DataError(f"{source}: colours in neither the palette of classes.json nor its \"ignore_colors\": "
                        f"{describe_colours(unknown)}. Add each to \"palette\" (with its class) or to "
                        f"\"ignore_colors\"")
    write_label(target, ids, palette=palette)
    return "converted", ""


def _grey_levels_as_colours(source: str, image, palette: list, ignore_colours: list) -> np.ndarray:
    """A single-channel mask as colours: grey level v is the colour [v, v, v] (binary masks saved as
    0 and 255 with the palette [[0, 0, 0], [255, 255, 255]]). A mask whose levels are not all greys
    of the palette or the ignore colours holds class ids already: an error that says so."""
    levels = np.asarray(image.convert("L") if image.mode == "1" else image)
    values = np.unique(levels)
    greys = {c[0] for c in list(palette) + list(ignore_colours) if c[0] == c[1] == c[2]}
    if not set(values.tolist()) <= greys:
        shown = ", ".join(str(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        raise DataError(f"{source}: a single-channel mask with values {shown}, not all grey colours [v, v, v] of "
                        f"classes.json's palette or ignore_colors. If they are class ids, the folder dataset reads "
                        f"them as they are (no conversion needed); if a class is stored as a grey level (binary "
                        f"masks of 0 and 255), give it that colour in the palette, e.g. [255, 255, 255]")
    return np.repeat(levels.astype(np.uint8)[..., None], 3, axis=2)


def read_colour_classes(path: Path) -> Tuple[dict, List[List[int]], List[List[int]]]:
    """classes.json of a dataset with colour masks: (its contents, the palette, the ignore colours).
    The palette is required here: it is what says which colour is which class."""
    names, palette, _ = read_classes_json(path)
    meta = json.loads(path.read_text())
    if "palette" not in meta:
        raise DataError(f"{path}: no \"palette\"; colour masks need the colour of each class, e.g. "
                        f'"palette": [[70, 130, 180], [128, 64, 128]] for "classes": ["sky", "road"]')
    ignore_colours = meta.get("ignore_colors", [])
    if not isinstance(ignore_colours, list) or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in ignore_colours):
        raise DataError(f"{path}: \"ignore_colors\" must be a list of [r, g, b] (0..255), e.g. [[0, 0, 0]]")
    check_distinct_colours(path, palette, ignore_colours)
    return meta, palette, ignore_colours


def _colour_mask_folders(source: Path) -> List[Tuple[Path, str]]:
    """(folder of masks, its split) below SRC, in the layouts the folder dataset reads: labels/<split>/
    (and labels/ itself, for a dataset not split yet: split "."), or <split>/labels/; masks/ for labels/."""
    found = []
    for name in ("labels", "masks"):
        top = source / name
        if top.is_dir():
            found += [(top, ".")] + [(p, p.name) for p in sorted(top.iterdir()) if p.is_dir()]
    for split in sorted(p for p in source.iterdir() if p.is_dir() and p.name not in ("images", "labels", "masks")):
        found += [(split / name, split.name) for name in ("labels", "masks") if (split / name).is_dir()]
    return found


# The names exports give the standard splits (Roboflow's valid; CVAT's Train, Validation, Test)
STANDARD_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def dst_split(name: str, names: Sequence[str], report: Optional[PrepareReport] = None) -> str:
    """The split in DST of an export's split `name` (of all its split `names`): the names training
    reads by default, train and val (and test), for the names exports give them (`valid`,
    `Validation`, `Train`), unless another split of the export takes that name; the others keep
    theirs. With `report`, a renaming is noted there (once)."""
    target = STANDARD_SPLITS.get(name.lower())
    if target is None or target == name or any(
            other != name and STANDARD_SPLITS.get(other.lower(), other) == target for other in names):
        return name
    note = f"the split {name} is written as {target}" + (", the split training validates on" if target == "val" else "")
    if report is not None and note not in report.notes:
        report.notes.append(note)
    return target


def note_without_images(report: PrepareReport, export: str, searched: str, destination: Path) -> None:
    """The report's note for an export none of whose images was found: its labels are drawn anyway."""
    report.notes.append(f"no image of {export} was found {searched}: the labels are drawn anyway; give the images' "
                        f"folder with --images, or put them in {destination / 'images'} under the same names")


def note_unsplit(report: PrepareReport, destination: Path, what: str) -> None:
    """The report's note for an export of no train/val split: how to hold out whole sequences."""
    report.notes.append(f"{what} has no train and val splits: hold out whole sequences or sessions with "
                        f"`segnext data split folder {destination} --split . --hold-out-fraction 0.2`")


# --------------------------------------------------------------------------------------------
# The "Segmentation mask" export of CVAT and Datumaro: the Pascal VOC layout with the classes of the task
VOC_EXPORT_MASKS, VOC_EXPORT_IMAGES, VOC_EXPORT_LISTS = "SegmentationClass", "JPEGImages", "ImageSets/Segmentation"
VOC_BOUNDARY_COLOUR = [224, 224, 192]  # Pascal VOC's "void" outline around objects


def read_labelmap(path: Path) -> Tuple[List[str], List[List[int]]]:
    """The classes and colours of a labelmap.txt (`name:r,g,b:parts:actions` a line, # comments)."""
    names, palette = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        try:
            colour = [int(v) for v in fields[1].split(",")]
        except (IndexError, ValueError):
            colour = []
        if not fields[0].strip() or len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise DataError(f"{path}, line {number}: {line.strip()!r} is not `name:r,g,b::` (a class and its "
                            f"colour, e.g. `car:0,0,142::`)")
        names.append(fields[0].strip())
        palette.append(colour)
    if not names:
        raise DataError(f"{path}: no classes in it; each line is `name:r,g,b::`, e.g. `background:0,0,0::`")
    return names, palette


def _voc_export_classes(source: Path, report: PrepareReport) -> Tuple[dict, List[List[int]], List[List[int]]]:
    """(classes.json contents, palette, ignore colours) of a VOC-layout export: its classes.json if it
    has one, else its labelmap.txt, else Pascal VOC's 21 classes (CVAT writes no labelmap for them)."""
    if (source / "classes.json").is_file():
        return read_colour_classes(source / "classes.json")
    if (source / "labelmap.txt").is_file():
        names, palette = read_labelmap(source / "labelmap.txt")
        check_distinct_colours(source / "labelmap.txt", palette, [])
        report.notes.append(f"classes from {source / 'labelmap.txt'}: {', '.join(names)}")
        return {"classes": names}, palette, []
    report.notes.append(f"{source} has no labelmap.txt nor classes.json: read as Pascal VOC's 21 classes, "
                        f"its outline colour {VOC_BOUNDARY_COLOUR} ignored")
    return {"classes": list(C.VOC_CLASSES)}, [list(c) for c in C.VOC_PALETTE], [VOC_BOUNDARY_COLOUR]


def _voc_export_pair(mask: str, target: str, image: Optional[str], image_target: str, palette: list,
                     ignore_colours: list, overwrite: bool):
    outcome = _convert_colour_mask(mask, target, palette, ignore_colours, overwrite)
    link_image(image, image_target)  # after its label: an image is never left without one
    return outcome


def prepare_voc_export(source: Path, destination: Path, workers=None, overwrite=False,
                       progress=True) -> PrepareReport:
    """CVAT's (and Datumaro's) "Segmentation mask" export -> the folder layout: SRC/SegmentationClass/
    colour masks, SRC/JPEGImages/ images, SRC/labelmap.txt classes (`name:r,g,b::`),
    SRC/ImageSets/Segmentation/<subset>.txt the subsets. Each subset becomes a split (`default`, the
    one subset of a task that defines none, becomes images/ and labels/ not split yet); images are
    linked file by file."""
    report = PrepareReport("folder", destination)
    meta, palette, ignore_colours = _voc_export_classes(source, report)
    masks = {str(p.relative_to(source / VOC_EXPORT_MASKS).with_suffix("").as_posix()): p
             for p in visible_entries(source / VOC_EXPORT_MASKS, recursive=True)
             if p.suffix.lower() in COLOUR_MASK_SUFFIXES + (".jpg", ".jpeg")}
    image_dir = source / VOC_EXPORT_IMAGES
    images = {} if not image_dir.is_dir() else {
        str(p.relative_to(image_dir).with_suffix("").as_posix()): p for p in visible_entries(image_dir, recursive=True)
        if p.suffix.lower() in IMAGE_SUFFIXES}
    lists = sorted((source / VOC_EXPORT_LISTS).glob("*.txt")) if (source / VOC_EXPORT_LISTS).is_dir() else []
    subsets = {path.stem: [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
               for path in lists} or {"default": sorted(masks)}
    if not image_dir.is_dir():
        report.notes.append(f"{image_dir} not found: the export holds no images (export again with \"Save images\", "
                            f"or put them there and run the same command again); the masks are converted anyway")
    tasks = []
    for subset, stems in subsets.items():
        split = "." if subset == "default" and len(subsets) == 1 else dst_split(subset, list(subsets), report)
        for stem in stems:
            if stem not in masks:
                report.failures.append(f"{source / VOC_EXPORT_LISTS / (subset + '.txt')}: {stem} has no mask in "
                                       f"{source / VOC_EXPORT_MASKS}")
                continue
            image = images.get(stem)
            if image is None and image_dir.is_dir():
                report.failures.append(f"{masks[stem]}: no image {stem}.* in {image_dir}")
                continue
            image_target = destination / "images" / split / (stem + (image.suffix if image else ""))
            tasks.append((str(masks[stem]), str(destination / "labels" / split / (stem + ".png")),
                          None if image is None else str(image), str(image_target), palette, ignore_colours,
                          overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source / VOC_EXPORT_MASKS}: no masks ({', '.join(COLOUR_MASK_SUFFIXES)})")
    write_classes_json(destination, meta, palette, overwrite)
    report.add(run_tasks(Guarded(_voc_export_pair), tasks, workers, "colour masks", progress))
    if set(subsets) == {"default"}:
        note_unsplit(report, destination, "the export")
    return report


# --------------------------------------------------------------------------------------------
# Roboflow's "Semantic Segmentation Masks" export: <split>/NAME.jpg beside <split>/NAME_mask.png (pixel
# values), and the classes of those values in <split>/_classes.csv
ROBOFLOW_CLASSES, ROBOFLOW_MASK_ENDING = "_classes.csv", "_mask.png"


def read_pixel_value_classes(path: Path) -> Dict[int, str]:
    """{pixel value: class name} of a `_classes.csv` (`Pixel Value, Class` a row, after a header)."""
    classes = {}
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    for number, row in enumerate(rows, 1):
        if not row or not "".join(row).strip() or (number == 1 and not row[0].strip().isdigit()):
            continue  # the header
        if len(row) < 2 or not row[0].strip().isdigit() or not 0 <= int(row[0]) <= 254 or not row[1].strip():
            raise DataError(f"{path}, line {number}: {','.join(row)!r} is not `pixel value, class` (0..254)")
        classes[int(row[0])] = row[1].strip()
    if not classes:
        raise DataError(f"{path}: no classes in it; each row is `pixel value, class`, e.g. `0, background`")
    return dict(sorted(classes.items()))


def _pixel_value_pair(mask: str, target: str, image: Optional[str], image_target: str, table: np.ndarray,
                      palette: list, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image, image_target)
        return "skipped", ""
    values = read_label(mask)
    unknown = sorted(set(np.unique(values).tolist()) - set(np.flatnonzero(table != IGNORE_INDEX).tolist()))
    if unknown:
        raise DataError(f"{mask}: pixel values {', '.join(map(str, unknown[:10]))} are no class of "
                        f"{ROBOFLOW_CLASSES}; add them there")
    write_label(target, table[values], palette=palette)
    link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", ""


def prepare_roboflow_masks(source: Path, destination: Path, workers=None, overwrite=False,
                           progress=True) -> PrepareReport:
    """Roboflow's "Semantic Segmentation Masks" export -> the folder layout: each SRC/<split>/ with a
    _classes.csv becomes a split; NAME_mask.png (pixel values) -> DST/labels/<split>/NAME.png (the
    classes in the order of their values), NAME.jpg linked as DST/images/<split>/NAME.jpg."""
    report = PrepareReport("folder", destination)
    splits = sorted(p.parent for p in source.glob(f"*/{ROBOFLOW_CLASSES}"))
    classes = [read_pixel_value_classes(split / ROBOFLOW_CLASSES) for split in splits]
    for split, other in zip(splits[1:], classes[1:]):
        if other != classes[0]:
            raise DataError(f"{split / ROBOFLOW_CLASSES} lists other classes than {splits[0] / ROBOFLOW_CLASSES}; "
                            f"export the splits of one dataset version")
    values = list(classes[0])
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[values] = np.arange(len(values))
    palette = default_palette(len(values))
    tasks = []
    for split in splits:
        files = sorted(p for p in visible_entries(split, recursive=False) if p.is_file())
        masks = [p for p in files if p.name.lower().endswith(ROBOFLOW_MASK_ENDING)]
        images = {p.stem: p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p not in masks}
        for mask in masks:
            stem = mask.name[: -len(ROBOFLOW_MASK_ENDING)]
            if stem not in images:
                report.failures.append(f"{mask}: no image {stem}.* beside it")
                continue
            name = dst_split(split.name, [s.name for s in splits], report)
            tasks.append((str(mask), str(destination / "labels" / name / (stem + ".png")), str(images[stem]),
                          str(destination / "images" / name / images[stem].name), table, palette, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no *{ROBOFLOW_MASK_ENDING} beside the {ROBOFLOW_CLASSES} of "
                                f"{', '.join(str(s) for s in splits)}")
    write_classes_json(destination, {"classes": list(classes[0].values())}, palette, overwrite)
    report.add(run_tasks(Guarded(_pixel_value_pair), tasks, workers, "masks", progress))
    report.notes.append(f"classes by pixel value: {', '.join(f'{v} {n}' for v, n in classes[0].items())}")
    return report


# --------------------------------------------------------------------------------------------
# COCO-format annotation files: CVAT's "COCO 1.0" (annotations/instances_<subset>.json, images/<subset>/),
# Roboflow's "COCO Segmentation" (<split>/_annotations.coco.json beside the images), Label Studio's
# "COCO" (result.json, images/), COCO itself (annotations/instances_train2017.json, train2017/)


def _coco_subset(path: Path, source: Path) -> str:
    """The subset an annotation file holds: Roboflow's folder, the X of instances_X.json, else the
    file's name."""
    if path.name == coco.SPLIT_FILE and path.parent != source:
        return path.parent.name
    return path.stem[len("instances_"):] if path.stem.startswith("instances_") else path.stem


def _coco_split(subset: str, path: Path, files: Sequence[Path]) -> str:
    """The split in DST of an annotation file's subset: `.` (not split yet) for an export of one file
    that names no subset (CVAT's `default`, Label Studio's result.json)."""
    unnamed = subset == "default" or (path.stem == subset and path.name != coco.SPLIT_FILE)
    return "." if len(files) == 1 and unnamed else subset


def _find_coco_image(file_name: str, roots: Sequence[Path]) -> Optional[Tuple[Path, str]]:
    """(the image, its name in DST without the suffix) for an image's file_name: looked up as it is
    and by its base name under each root (exports keep images beside the annotations, in images/,
    in images/<subset>/ or in <subset>/, and some tools write their own upload path)."""
    relative = Path(file_name.replace("\\", "/"))
    for root in roots:
        for name in (relative, Path(relative.name)):
            if not name.is_absolute() and ".." not in name.parts and (root / name).is_file():
                return root / name, name.with_suffix("").as_posix()
    return None


def _coco_pair(annotations: list, width: Optional[int], height: Optional[int], classes: coco.SemanticClasses,
               image: Optional[str], target: str, image_target: str, palette: list, where: str, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image, image_target)
        return "skipped", ""
    if image is not None:
        found_height, found_width = read_image(image).shape[:2]
        if (width or found_width, height or found_height) != (found_width, found_height):
            raise DataError(f"{image}: {found_width}x{found_height} pixels (EXIF orientation applied), but {where} "
                            f"gives {width}x{height}: its annotations would not fit this image; export the images "
                            f"together with the annotations")
        width, height = found_width, found_height
    if not width or not height:
        raise DataError(f"{where}: no width and height for this image, and the image was not found")
    label = coco.draw_label(annotations, height, width, classes.class_of_category, classes.background, where)
    write_label(target, label, palette=palette)
    link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", ""


def prepare_coco_json(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                      paths: Optional[List[Path]] = None, image_folder: Optional[Path] = None) -> PrepareReport:
    """COCO-format annotation files (polygons or run-length masks) -> the folder layout: one split per
    file (see `_coco_subset`), each object drawn in its class over a background class
    (`coco.draw_label`), images linked. Images without any region are left out: a tool exports
    the images nobody labelled yet too, and they are not all background."""
    coco.pycocotools_mask()  # before any work: it draws every region
    report = PrepareReport("folder", destination)
    paths = coco.find_annotation_files(source) if paths is None else paths
    files = [coco.read_coco_file(path) for path in paths]
    classes = coco.semantic_classes(files)
    palette = default_palette(len(classes.names))
    wanted = []  # (annotation file, split, image, (image file, name in DST) or None where not found)
    subsets = [_coco_subset(path, source) for path in paths]
    splits = [_coco_split(subset, path, paths) for subset, path in zip(subsets, paths)]
    for path, annotation_file, subset, split in zip(paths, files, subsets, splits):
        elsewhere = [image_folder / subset, image_folder] if image_folder else []
        roots = list(dict.fromkeys([source / "images" / subset, source / "images", path.parent, source / subset,
                                    source] + elsewhere))
        wanted += [(path, dst_split(split, splits, report), image, _find_coco_image(image.file_name, roots))
                   for image in annotation_file.images if image.annotations]
    if not wanted:
        raise FileNotFoundError(f"{', '.join(map(str, paths))}: no image has a polygon or mask to draw "
                                f"({sum(f.boxes_only for f in files)} annotations are boxes only); export a "
                                f"project labelled with polygons, masks or brushes")
    with_images = any(found for *_, found in wanted)
    if not with_images:
        note_without_images(report, ", ".join(map(str, paths)), "beside it, in images/ or in images/<split>/",
                            destination)
    tasks = []
    for path, split, image, found in wanted:
        where = f"{path} ({image.file_name})"
        if found is None and with_images:
            report.failures.append(f"{where}: image not found beside the annotations, in images/ or images/<split>/"
                                   + (f", nor in {image_folder}" if image_folder else ""))
            continue
        name = found[1] if found else Path(image.file_name.replace("\\", "/")).with_suffix("").name
        tasks.append((image.annotations, image.width, image.height, classes,
                      None if found is None else str(found[0]), str(destination / "labels" / split / (name + ".png")),
                      str(destination / "images" / split / (name + (found[0].suffix if found else ""))),
                      palette, where, overwrite))
    write_classes_json(destination, {"classes": classes.names}, palette, overwrite)
    report.add(run_tasks(Guarded(_coco_pair), tasks, workers, "annotations", progress))
    report.notes.append(f"classes: {', '.join(classes.names)} (pixels no object covers: "
                        f"{classes.names[classes.background]})")
    if classes.left_out:
        report.notes.append(f"left out the category {', '.join(classes.left_out)}: it only groups the others")
    unlabelled = sum(len(f.images) for f in files) - len(wanted)
    if unlabelled:
        report.notes.append(f"left out {unlabelled} images without any polygon or mask (not labelled yet, or "
                            f"only boxes)")
    boxes_only = sum(f.boxes_only for f in files)
    if boxes_only:
        report.notes.append(f"{boxes_only} annotations are boxes without a region: not drawn")
    if splits == ["."]:
        note_unsplit(report, destination, "the export")
    return report


# --------------------------------------------------------------------------------------------
# CVAT's XML ("CVAT for images 1.1"): SRC/annotations.xml; the images in SRC/images/ (or below SRC)


def _cvat_pair(image: cvat.CvatImage, classes: cvat.SemanticClasses, image_file: Optional[str], target: str,
               image_target: str, where: str, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image_file, image_target)
        return "skipped", ""
    if image_file is not None:
        found_height, found_width = read_image(image_file).shape[:2]
        if (found_width, found_height) != (image.width, image.height):
            raise DataError(f"{image_file}: {found_width}x{found_height} pixels (EXIF orientation applied), but "
                            f"{where} gives {image.width}x{image.height}: its shapes would not fit this image")
    label, not_drawn = cvat.draw_label(image, classes, where)
    write_label(target, label, palette=classes.palette)
    link_image(image_file, image_target)  # after its label: an image is never left without one
    return "converted", str(not_drawn)  # counted for the report


def prepare_cvat_xml(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                     paths: Optional[List[Path]] = None, image_folder: Optional[Path] = None) -> PrepareReport:
    """CVAT's XML ("CVAT for images 1.1") -> the folder layout: each image's shapes drawn
    (`cvat.draw_label`) in the labels' colours, its image found in SRC/images/<subset>/, SRC/images/
    or anywhere below SRC, and linked. A split per subset (a task's `default` alone: images/ and
    labels/ not split yet)."""
    coco.pycocotools_mask()  # before any work: it draws the polygons
    report = PrepareReport("folder", destination)
    paths = cvat.find_export_files(source) if paths is None else paths
    exports = [cvat.read_export(path) for path in paths]
    classes = cvat.semantic_classes(exports, default_palette(256))
    images = ImageIndex([source] + ([image_folder] if image_folder else []), left_out=[destination])
    wanted = [(export, image) for export in exports for image in export.images]
    subsets = sorted({image.subset for _, image in wanted})
    tasks, targets = [], {}
    for export, image in wanted:
        split = "." if subsets == ["default"] else dst_split(image.subset, subsets, report)
        where = f"{export.path} ({image.name})"
        name = image.name.replace("\\", "/").lstrip("/")
        try:
            found = images.find([f"images/{image.subset}/{name}", f"images/{name}", name], where)
        except DataError as error:
            report.failures.append(str(error))
            continue
        stem = Path(name).with_suffix("").as_posix()
        if f"{split}/{stem}" in targets:
            report.failures.append(f"{where}: a second image named {stem} in the split (the first: "
                                   f"{targets[f'{split}/{stem}']}); keep one")
            continue
        targets[f"{split}/{stem}"] = where
        if found is None and images.by_ending:
            report.failures.append(f"{where}: image not found in images/{image.subset}/, images/ or below "
                                   f"{images.describe()}")
            continue
        suffix = found[0].suffix if found else Path(name).suffix
        tasks.append((image, classes, None if found is None else str(found[0]),
                      str(destination / "labels" / split / (stem + ".png")),
                      str(destination / "images" / split / (stem + suffix)), where, overwrite))
    if not wanted:
        raise FileNotFoundError(f"{', '.join(map(str, paths))}: no <image> in it" + (
            " but tracks: export the task as \"CVAT for images 1.1\" (it writes each frame's shapes, the tracks' "
            "too), not \"CVAT for video\"" if any(e.tracks for e in exports) else ""))
    if not images.by_ending:
        note_without_images(report, ", ".join(map(str, paths)), f"under {images.describe()} (export the dataset "
                            f"with its images)", destination)
    write_classes_json(destination, {"classes": classes.names}, classes.palette, overwrite)
    not_drawn = run_counted_tasks(report, _cvat_pair, tasks, workers, "CVAT images", progress)
    if not_drawn:
        report.notes.append(f"{not_drawn} shapes without area (polylines, points, skeletons, cuboids) not drawn")
    report.notes.append(f"classes from {', '.join(map(str, paths))}: {', '.join(classes.names)} (pixels no shape "
                        f"covers: {classes.names[classes.background]})")
    if subsets == ["default"]:
        note_unsplit(report, destination, "the export")
    return report


# --------------------------------------------------------------------------------------------
# The VGG Image Annotator (VIA): SRC/via_region_data.json (or SRC/<split>/...json) beside the images


def _via_pair(image: via.ViaImage, image_file: str, classes: via.SemanticClasses, target: str, image_target: str,
              where: str, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image_file, image_target)
        return "skipped", ""
    height, width = read_image(image_file).shape[:2]
    label, not_drawn = via.draw_label(image, height, width, classes, where)
    write_label(target, label, palette=default_palette(len(classes.names)))
    link_image(image_file, image_target)  # after its label: an image is never left without one
    return "converted", str(not_drawn)  # counted for the report


def prepare_via(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                paths: Optional[List[Path]] = None, image_folder: Optional[Path] = None) -> PrepareReport:
    """VIA's JSON (exported annotations or a saved project) -> the folder layout: each image's
    regions drawn (`via.draw_label`), the image found beside the file (or anywhere below SRC) and
    linked. A file in a folder makes that folder's split (train/, val/); one file at the top gives
    images/ and labels/ not split yet, several there a split each."""
    report = PrepareReport("folder", destination)
    paths = via.find_via_files(source) if paths is None else paths
    files = [via.read_via_file(path) for path in paths]
    classes = via.semantic_classes(files)
    images = ImageIndex([source] + ([image_folder] if image_folder else []), left_out=[destination])
    names = [path.parent.name if path.parent != source else path.stem for path in paths]
    splits = ["."] if len(paths) == 1 and paths[0].parent == source else names
    tasks, targets = [], {}
    for file, split in zip(files, splits):
        split = dst_split(split, splits, report)
        for image in file.images:
            where = f"{file.path} ({image.filename})"
            name = image.filename.replace("\\", "/").rsplit("/", 1)[-1]
            beside = file.path.parent / name
            try:
                found = (beside, name) if beside.is_file() else images.find([name], where)
            except DataError as error:
                report.failures.append(str(error))
                continue
            if found is None:
                report.failures.append(f"{where}: image not found beside {file.path.name} nor below "
                                       f"{images.describe()} (VIA's JSON does not hold the image's size: the image "
                                       f"is needed)")
                continue
            stem = Path(name).stem
            if f"{split}/{stem}" in targets:
                first = targets[f"{split}/{stem}"]
                report.failures.append(f"{where}: a second image named {stem} (the first: {first}); keep one")
                continue
            targets[f"{split}/{stem}"] = where
            tasks.append((image, str(found[0]), classes, str(destination / "labels" / split / (stem + ".png")),
                          str(destination / "images" / split / name), where, overwrite))
    write_classes_json(destination, {"classes": classes.names}, default_palette(len(classes.names)), overwrite)
    not_drawn = run_counted_tasks(report, _via_pair, tasks, workers, "VIA images", progress)
    if not_drawn:
        report.notes.append(f"{not_drawn} regions without area (polylines, points) or without a class not drawn")
    origin = f"region attribute {classes.attribute!r}" if classes.attribute else \
        f"the regions carry no attribute: all one class, {via.ONE_CLASS!r}"
    report.notes.append(f"classes ({origin}): {', '.join(classes.names)} (pixels no region covers: "
                        f"{classes.names[classes.background]})")
    if splits == ["."]:
        note_unsplit(report, destination, "the export")
    return report


# --------------------------------------------------------------------------------------------
# Labelme: SRC/**/NAME.json beside (or pointing to) each image; the classes in SRC/labels.txt


def _labelme_image(file: labelme.LabelmeFile) -> Optional[Path]:
    """The image a labelme file annotates: at its imagePath (relative to the file, Windows separators
    too), else beside the file with the same name."""
    relative = file.image_path.replace("\\", "/")
    candidates = [file.path.parent / relative] if relative else []
    candidates += [file.path.with_suffix(suffix) for suffix in IMAGE_SUFFIXES]
    candidates += [file.path.with_suffix(suffix.upper()) for suffix in IMAGE_SUFFIXES]
    return next((path for path in candidates if path.is_file()), None)


def _labelme_pair(json_path: str, classes: labelme.LabelmeClasses, palette: list, target: str,
                  image_target: str, overwrite: bool):
    file = labelme.read_labelme_file(Path(json_path))
    image = _labelme_image(file)
    embedded = None if image is not None else labelme.image_bytes(file)
    if image is None and embedded is None:
        raise DataError(f"{json_path}: its image {file.image_path!r} is neither there nor beside the file, and the "
                        f"file holds no imageData; put the image back (or save the file again in labelme)")
    if not up_to_date([target], overwrite):
        pixels = read_image(image) if image is not None else decode_image(embedded, name=f"{json_path} imageData")
        height, width = pixels.shape[:2]
        if (file.width or width, file.height or height) != (width, height):
            raise DataError(f"{image or json_path}: {width}x{height} pixels (EXIF orientation applied), but "
                            f"{json_path} gives {file.width}x{file.height}: its shapes would not fit this image")
        write_label(target, labelme.draw_label(file, height, width, classes), palette=palette)
        outcome = "converted"
    else:
        outcome = "skipped"
    if image is not None:
        link_image(str(image), image_target)  # after its label: an image is never left without one
    elif not os.path.exists(image_target):
        os.makedirs(os.path.dirname(image_target), exist_ok=True)
        atomic_write(Path(image_target), lambda tmp: tmp.write_bytes(embedded))
    return outcome, ""


def prepare_labelme(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                    paths: Optional[List[Path]] = None) -> PrepareReport:
    """Labelme's JSON files (polygons, rectangles, circles, lines, points, masks) -> the folder layout:
    each file's shapes drawn as labelme2voc draws them (`labelme.draw_label`), its image linked (or
    written from the imageData it holds). Files under SRC/train/, SRC/val/ ... make those splits; the
    others give images/ and labels/ not split yet, their sub-folders kept."""
    report = PrepareReport("folder", destination)
    paths = labelme.find_labelme_files(source) if paths is None else paths
    files = []
    for path in paths:
        try:
            file = labelme.read_labelme_file(path)
        except DataError as error:
            report.failures.append(str(error))
            continue
        file.image_data = None  # the images of all files at once could fill the memory: the workers read each
        files.append(file)
    labels_file = source / labelme.LABELS_FILE
    classes = labelme.labelme_classes(files, labels_file if labels_file.is_file() else None)
    palette = default_palette(len(classes.names))
    tasks, splits = [], set()
    tops = sorted({f.path.relative_to(source).parts[0] for f in files if len(f.path.relative_to(source).parts) > 1
                   and f.path.relative_to(source).parts[0].lower() in STANDARD_SPLITS})
    for file in files:
        path, relative = file.path, file.path.relative_to(source)
        split, name = (dst_split(relative.parts[0], tops, report), Path(*relative.parts[1:])) \
            if relative.parts[0] in tops else (".", relative)
        splits.add(split)
        suffix = Path(file.image_path.replace("\\", "/")).suffix or ".png"
        image = _labelme_image(file)
        tasks.append((str(path), classes, palette, str(destination / "labels" / split / name.with_suffix(".png")),
                      str(destination / "images" / split / name.with_suffix(image.suffix if image else suffix)),
                      overwrite))
    write_classes_json(destination, {"classes": classes.names}, palette, overwrite)
    report.add(run_tasks(Guarded(_labelme_pair), tasks, workers, "labelme files", progress))
    origin = labels_file if labels_file.is_file() else f"the labels in the files, sorted (to choose the order, list " \
        f"them in {labels_file}, `_background_` first)"
    report.notes.append(f"classes from {origin}: {', '.join(classes.names)}")
    if splits == {"."}:
        note_unsplit(report, destination, "the export (no train/ and val/ folders)")
    return report


# --------------------------------------------------------------------------------------------
# YOLO segmentation: SRC/data.yaml names the classes; SRC/labels/<split>/NAME.txt the polygons of
# SRC/images/<split>/NAME.jpg (or SRC/<split>/labels/ and SRC/<split>/images/)


def yolo_label_folders(source: Path) -> List[Tuple[Path, Path, str]]:
    """(labels folder, its images folder, the split) of a YOLO dataset: labels/<split>/ beside
    images/<split>/ (Ultralytics', CVAT's), <split>/labels/ beside <split>/images/ (Roboflow's), or
    labels/ beside images/ not split yet."""
    found = []
    if (source / "labels").is_dir():
        if any(p.suffix == ".txt" for p in (source / "labels").iterdir()):
            found.append((source / "labels", source / "images", "."))
        found += [(p, source / "images" / p.name, p.name) for p in sorted((source / "labels").iterdir())
                  if p.is_dir() and not p.name.startswith(".")]
    found += [(p / "labels", p / "images", p.name) for p in sorted(source.iterdir())
              if p.is_dir() and p.name not in ("images", "labels") and (p / "labels").is_dir()]
    return found


def _yolo_pair(label_file: Optional[str], image: str, target: str, image_target: str, num_names: int,
               class_ids: list, background: int, palette: list, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image, image_target)
        return "skipped", ""
    objects, _ = yolo.read_objects(Path(label_file), num_names) if label_file else ([], 0)
    height, width = read_image(image).shape[:2]
    write_label(target, yolo.draw_label(objects, height, width, class_ids, background), palette=palette)
    link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", ""


def prepare_yolo(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """A YOLO segmentation dataset (data.yaml, labels/<split>/*.txt polygons) -> the folder layout:
    the polygons drawn over a background class (`yolo.draw_label`), a split per folder, images
    linked. An image without a label file is a background image, as YOLO reads it."""
    report = PrepareReport("folder", destination)
    yaml_path = yolo.find_data_yaml(source)
    names = yolo.read_names(yaml_path)
    classes, class_ids, background = yolo.semantic_classes(names)
    palette = default_palette(len(classes))
    tasks, without_label = [], 0
    folders = yolo_label_folders(source)
    splits = [split for *_, split in folders]
    for label_dir, image_dir, split in folders:
        labels = {p.relative_to(label_dir).with_suffix("").as_posix(): p
                  for p in visible_entries(label_dir, recursive=split != ".") if p.suffix == ".txt"}
        images = {} if not image_dir.is_dir() else {
            p.relative_to(image_dir).with_suffix("").as_posix(): p
            for p in visible_entries(image_dir, recursive=split != ".") if p.suffix.lower() in IMAGE_SUFFIXES}
        for stem in sorted(set(labels) - set(images)):
            report.failures.append(f"{labels[stem]}: no image {stem}.* in {image_dir}")
        for stem, image in sorted(images.items()):
            label_file = labels.get(stem)
            without_label += label_file is None
            name = dst_split(split, splits, report)
            tasks.append((None if label_file is None else str(label_file), str(image),
                          str(destination / "labels" / name / (stem + ".png")),
                          str(destination / "images" / name / (stem + image.suffix)), len(names), class_ids,
                          background, palette, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no images beside YOLO's labels/<split>/ or <split>/labels/ folders "
                                f"({yaml_path} names the classes)")
    boxes = sum(yolo.count_boxes(Path(task[0])) for task in tasks if task[0])
    write_classes_json(destination, {"classes": classes}, palette, overwrite)
    report.add(run_tasks(Guarded(_yolo_pair), tasks, workers, "YOLO labels", progress))
    report.notes.append(f"classes from {yaml_path}: {', '.join(classes)} (pixels no polygon covers: "
                        f"{classes[background]})")
    if without_label:
        report.notes.append(f"{without_label} images have no label file: background images, as YOLO reads them")
    if boxes:
        report.notes.append(f"{boxes} lines are boxes (class cx cy w h), not polygons: not drawn")
    if splits == ["."]:
        note_unsplit(report, destination, "the dataset")
    return report


# --------------------------------------------------------------------------------------------
# Label Studio's "JSON" and "JSON-MIN" exports: SRC/<export>.json; the images anywhere under SRC


def _label_studio_pair(regions: list, image: Optional[str], target: str, image_target: str,
                       classes: label_studio.SemanticClasses, palette: list, where: str, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image, image_target)
        return "skipped", ""
    sizes = {(r.width, r.height) for r in regions if r.width and r.height}
    if len(sizes) > 1:
        raise DataError(f"{where}: its regions give the image different sizes ({sorted(sizes)})")
    width, height = sizes.pop() if sizes else (None, None)
    if image is not None:  # an array or TIFF of bands too: `segnext predict --label-studio` shows them as pictures
        found_height, found_width = read_image_or_bands(image).shape[:2]
        if (width or found_width, height or found_height) != (found_width, found_height):
            raise DataError(f"{image}: {found_width}x{found_height} pixels (EXIF orientation applied), but {where} "
                            f"gives {width}x{height}: its regions would not fit this image")
        width, height = found_width, found_height
    if not width or not height:
        raise DataError(f"{where}: no region gives the image's size and the image was not found; put the image "
                        f"in the export folder")
    label, not_drawn = label_studio.draw_label(regions, height, width, classes, where)
    write_label(target, label, palette=palette)
    link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", str(not_drawn)  # counted for the report


def _label_studio_names(task: label_studio.Task, names: List[str], found: Optional[Tuple[Path, str]]) -> List[str]:
    """DST's names for a task's image, the first free one taken: for an upload, the name it was
    uploaded with (Label Studio's random prefix would make each image a sequence of its own), then
    with that prefix (two uploads of one name); else the path it was found by (sequence folders
    kept), or the file's name (the images may be put there later)."""
    original = label_studio.uploaded_name(task.image or "")
    file_name = names[0].rsplit("/", 1)[-1] if names else f"task-{task.id}"
    chosen = [original, file_name] if original else [found[1] if found else file_name]
    return [PurePosixPath(name).with_suffix("").as_posix() for name in chosen]


def prepare_label_studio(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                         paths: Optional[List[Path]] = None, image_folder: Optional[Path] = None) -> PrepareReport:
    """Label Studio's JSON or JSON-MIN exports -> the folder layout: each task's regions drawn
    (`label_studio.draw_label`), its image found anywhere under SRC (by the path Label Studio
    keeps, or its upload name with or without Label Studio's prefix) and linked. One export gives
    images/ and labels/ not split yet; several give a split each, named by the file (train.json,
    val.json). Tasks nobody labelled are left out."""
    report = PrepareReport("folder", destination)
    paths = label_studio.find_export_files(source) if paths is None else paths
    exports = [(path, label_studio.read_export(path)) for path in paths]
    tasks_of_all = [task for _, tasks in exports for task in tasks]
    classes = label_studio.semantic_classes(tasks_of_all)
    palette = default_palette(len(classes.names))
    images = ImageIndex([source] + ([image_folder] if image_folder else []), left_out=[destination])
    splits = ["."] if len(paths) == 1 else [path.stem for path in paths]
    wanted = []  # (task, split, its image or None, its name in DST)
    targets, tasks_of_image = {}, {}  # the task of each name in DST, of each image
    for (_, tasks), split in zip(exports, splits):
        for task in tasks:
            if task.regions is None:
                continue
            if task.image is None:
                report.failures.append(f"{task.where}: its \"data\" names no image (an \"image\", or a path or URL of "
                                       f"an image file); export an image-labelling project")
                continue
            names = label_studio.image_names(task.image)
            try:
                found = images.find(names, task.where)
            except DataError as error:
                report.failures.append(str(error))
                continue
            image = found[0] if found else None
            candidates = _label_studio_names(task, names, found)
            name = next((n for n in candidates if f"{split}/{n}" not in targets), None)
            shown = image or task.image
            if name is None or (split, shown) in tasks_of_image:
                first = tasks_of_image.get((split, shown)) or targets[f"{split}/{candidates[-1]}"]
                report.failures.append(f"{task.where}: a second task for {shown} (the first: {first}); keep one")
                continue
            targets[f"{split}/{name}"] = tasks_of_image[split, shown] = task.where
            wanted.append((task, dst_split(split, splits, report), image, name))
    predicted_only = sum(task.regions is None and task.predicted for task in tasks_of_all)
    accept = f" ({predicted_only} tasks hold predictions only: open each in Label Studio, correct it and submit it)" \
        if predicted_only else ""
    if not wanted and not report.failures:
        raise FileNotFoundError(f"{', '.join(map(str, paths))}: no task has a submitted annotation{accept}; label some "
                                f"images in Label Studio, submit them and export again")
    with_images = any(image for _, _, image, _ in wanted)
    if not with_images:
        note_without_images(report, ", ".join(map(str, paths)), f"under {images.describe()}", destination)
    tasks = []
    for task, split, image, name in wanted:
        if image is None and with_images:
            report.failures.append(f"{task.where}: its image {task.image} is not under {images.describe()} (by its "
                                   f"path, its name, or its name without Label Studio's upload prefix)")
            continue
        tasks.append((task.regions, None if image is None else str(image),
                      str(destination / "labels" / split / (name + ".png")),
                      str(destination / "images" / split / (name + (image.suffix if image else ""))),
                      classes, palette, task.where, overwrite))
    write_classes_json(destination, {"classes": classes.names}, palette, overwrite)
    not_drawn = run_counted_tasks(report, _label_studio_pair, tasks, workers, "Label Studio tasks", progress)
    if not_drawn:
        report.notes.append(f"{not_drawn} regions without area or without a label (keypoints, unlabelled shapes) "
                            f"not drawn")
    unlabelled = sum(task.regions is None for task in tasks_of_all)
    if unlabelled:
        report.notes.append(f"left out {unlabelled} tasks without a submitted annotation (not labelled yet, or "
                            f"skipped){accept}")
    report.notes.append(f"classes: {', '.join(classes.names)} (pixels no region covers: "
                        f"{classes.names[classes.background]})")
    if splits == ["."]:
        note_unsplit(report, destination, "the export")
    return report


# --------------------------------------------------------------------------------------------
# Supervisely: SRC/meta.json (classes, colours); SRC/<dataset>/img/NAME.jpg, SRC/<dataset>/ann/NAME.jpg.json


def _supervisely_pair(annotation: str, image: Optional[str], target: str, image_target: str,
                      classes: supervisely.ProjectClasses, overwrite: bool):
    if up_to_date([target], overwrite):
        link_image(image, image_target)
        return "skipped", ""
    height, width, objects = supervisely.read_annotation(Path(annotation))
    if image is not None:
        found_height, found_width = read_image(image).shape[:2]
        if (found_height, found_width) != (height, width):
            raise DataError(f"{image}: {found_width}x{found_height} pixels (EXIF orientation applied), but "
                            f"{annotation} gives {width}x{height}: its objects would not fit this image")
    label, without_area = supervisely.draw_label(objects, height, width, classes, annotation)
    write_label(target, label, palette=classes.palette)
    link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", str(without_area)  # counted for the report


def prepare_supervisely(source: Path, destination: Path, workers=None, overwrite=False,
                        progress=True) -> PrepareReport:
    """A Supervisely project -> the folder layout: each dataset folder a split (one dataset not named
    train, val ...: images/ and labels/ not split yet), the objects drawn (`supervisely.draw_label`),
    the images linked."""
    report = PrepareReport("folder", destination)
    classes = supervisely.read_meta(source / supervisely.META_FILE)
    datasets = sorted(p.parent for p in source.glob("*/ann") if p.is_dir() and not p.parent.name.startswith("."))
    unsplit = len(datasets) == 1 and datasets[0].name.lower() not in STANDARD_SPLITS
    tasks = []
    for dataset in datasets:
        split = "." if unsplit else dst_split(dataset.name, [d.name for d in datasets], report)
        for annotation in sorted(p for p in visible_entries(dataset / "ann", recursive=True)
                                 if p.name.lower().endswith(".json")):
            relative = annotation.relative_to(dataset / "ann").with_suffix("")  # NAME.jpg.json -> NAME.jpg
            image = dataset / "img" / relative
            if not image.is_file():
                report.failures.append(f"{annotation}: no image {dataset / 'img' / relative}")
                continue
            label = destination / "labels" / split / relative.with_suffix(".png")
            tasks.append((str(annotation), str(image), str(label), str(destination / "images" / split / relative),
                          classes, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no annotation files in <dataset>/ann/ beside {supervisely.META_FILE}")
    write_classes_json(destination, {"classes": classes.names}, classes.palette, overwrite)
    without_area = run_counted_tasks(report, _supervisely_pair, tasks, workers, "Supervisely annotations", progress)
    if without_area:
        report.notes.append(f"{without_area} objects without area (points, lines) not drawn")
    report.notes.append(f"classes from {source / supervisely.META_FILE}: {', '.join(classes.names)} (pixels no object "
                        f"covers: {classes.names[classes.background]})")
    if unsplit:
        note_unsplit(report, destination, f"the project (one dataset, {datasets[0].name})")
    return report


# --------------------------------------------------------------------------------------------
# The entry: what SRC holds decides the reading


def _images_beside(source: Path, image_folder: Optional[Path]) -> None:
    """Refuse an image folder given for an export that keeps its images in its own layout."""
    if image_folder is not None:
        raise ValueError(f"--images {image_folder}: only exports that name their images look for them elsewhere "
                         f"(COCO-format files, CVAT's XML, Label Studio's JSON, VIA's JSON); {source} is none of "
                         f"those: put the images where its format has them (docs/datasets.md)")


def prepare_folder(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                   image_folder: Optional[Path] = None) -> PrepareReport:
    """SRC into the folder layout at DST. An export of a labelling tool is read as the sections above
    say (CVAT's masks, Roboflow's masks; without a classes.json, CVAT's XML, Label Studio's JSON,
    COCO-format files, VIA's JSON, labelme's files, a YOLO dataset); otherwise SRC has the folder layout
    (images/<split>/, labels/<split>/, classes.json; or <split>/images/, <split>/labels/; or images/
    and labels/ without split folders; masks/ for labels/) with labels that are colour images: each
    pixel's colour is its class's in the palette of classes.json, or one of its "ignore_colors"
    (-> 255). DST gets the label PNGs of class ids (palettised, so they still look the same), images/
    linked to SRC's, and classes.json."""
    if destination.resolve() == source.resolve():
        raise ValueError(f"{destination}: DST must be another folder than SRC (the colour masks stay as they are; "
                         f"the class-id labels go to DST/labels, the images are linked)")
    if (source / VOC_EXPORT_MASKS).is_dir():
        _images_beside(source, image_folder)
        return prepare_voc_export(source, destination, workers, overwrite, progress)
    if supervisely.is_project(source):
        _images_beside(source, image_folder)
        return prepare_supervisely(source, destination, workers, overwrite, progress)
    if any(source.glob(f"*/{ROBOFLOW_CLASSES}")):
        _images_beside(source, image_folder)
        return prepare_roboflow_masks(source, destination, workers, overwrite, progress)
    if not (source / "classes.json").is_file():  # no palette: an export whose files name the classes?
        cvat_files = cvat.find_export_files(source)
        if cvat_files:
            return prepare_cvat_xml(source, destination, workers, overwrite, progress, cvat_files, image_folder)
        label_studio_files = label_studio.find_export_files(source)
        if label_studio_files:
            return prepare_label_studio(source, destination, workers, overwrite, progress, label_studio_files,
                                        image_folder)
        annotation_files = coco.find_annotation_files(source)
        if annotation_files:
            return prepare_coco_json(source, destination, workers, overwrite, progress, annotation_files, image_folder)
        via_files = via.find_via_files(source)
        if via_files:
            return prepare_via(source, destination, workers, overwrite, progress, via_files, image_folder)
        _images_beside(source, image_folder)
        labelme_files = labelme.find_labelme_files(source)
        if labelme_files:
            return prepare_labelme(source, destination, workers, overwrite, progress, labelme_files)
        if yolo.find_data_yaml(source) and yolo_label_folders(source):
            return prepare_yolo(source, destination, workers, overwrite, progress)
        if not _colour_mask_folders(source) and label_studio.is_brush_png_export(source):
            raise FileNotFoundError(f"{source}: Label Studio's \"Brush labels to PNG\" export, a mask per region that "
                                    f"does not say which image it belongs to; export the project as JSON instead (it "
                                    f"holds the brushes and the images' names) and put the images beside it")
        if not _colour_mask_folders(source):
            raise FileNotFoundError(
                f"{source}: none of the exports segnext reads (CVAT's or Datumaro's \"Segmentation mask\", CVAT's XML, "
                f"Roboflow's \"Semantic Segmentation Masks\", COCO-format polygons or masks, Label Studio's JSON, "
                f"the VGG Image Annotator's JSON, labelme's files, a YOLO segmentation dataset, a Supervisely project; "
                f"docs/datasets.md), nor colour masks in labels/ or masks/ with a classes.json. Export the labels in "
                f"one of those formats, or point SRC at the folder that holds them")
    _images_beside(source, image_folder)
    meta, palette, ignore_colours = read_colour_classes(source / "classes.json")
    report = PrepareReport("folder", destination)
    tasks, first_mask = [], {}
    mask_folders = _colour_mask_folders(source)
    names = sorted({split for _, split in mask_folders})
    for folder, split in mask_folders:
        # a split's sub-folders (sequences) are kept; the sub-folders of an unsplit labels/ are its splits
        masks = visible_entries(folder, recursive=split != ".")
        for mask in sorted(p for p in masks if p.is_file()):
            if mask.suffix.lower() not in COLOUR_MASK_SUFFIXES + (".jpg", ".jpeg"):
                continue
            target = destination / "labels" / dst_split(split, names, report) / \
                mask.relative_to(folder).with_suffix(".png")
            if str(target) in first_mask:
                report.failures.append(f"{mask}: a second mask for {mask.stem} (the first: {first_mask[str(target)]}); "
                                       f"keep one")
                continue
            first_mask[str(target)] = mask
            tasks.append((str(mask), str(target), palette, ignore_colours, overwrite))
    if not tasks:
        raise FileNotFoundError(f"{source}: no colour masks in labels/<split>/, <split>/labels/ or labels/ (or masks/ "
                                f"for labels/; {', '.join(COLOUR_MASK_SUFFIXES)}); the layout is images/<split>/, "
                                f"labels/<split>/ and classes.json (docs/datasets.md)")
    write_classes_json(destination, meta, palette, overwrite)
    report.add(run_tasks(Guarded(_convert_colour_mask), tasks, workers, "colour masks", progress))
    split_first = sorted({split for folder, split in mask_folders if folder.parent.name == split != "."})
    renamed = [split for split in names if dst_split(split, names) != split]
    if split_first:  # SRC/<split>/images -> DST/images/<split>: the folder dataset's order
        for split in split_first:
            link_folder(destination, source, f"images/{dst_split(split, names)}", report, source_name=f"{split}/images")
    elif renamed:  # SRC/images/valid -> DST/images/val: a link for each split
        for split in names:
            if split != ".":
                link_folder(destination, source, f"images/{dst_split(split, names)}", report,
                            source_name=f"images/{split}")
    else:
        link_folder(destination, source, "images", report)
    return report

