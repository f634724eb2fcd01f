"""Label maps as a benchmark's evaluation server takes them: the test splits' labels are not public,
so the paper's test-set numbers (Pascal VOC test, Cityscapes test) come from uploading predictions.

    cityscapes  Cityscapes' label ids (7 road, 8 sidewalk, ..., 33 bicycle), not the 19 train ids the
                model predicts, in a greyscale PNG named after the image: cityscapesScripts'
                evaluation, which the server runs, finds each prediction by the
                <city>_<sequence>_<frame> in its name, in any sub-folder (MMSegmentation's
                CityscapesMetric with format_only writes the same ids). Uploaded as a zip.
    ade20k      ADE20K's 1-based class ids (1 wall ... 150 flag; 0, "other", is never predicted) in a
                greyscale PNG named after the image, as the Scene Parsing benchmark reads them
                (MMSegmentation's format_only adds the same 1 to reduce_zero_label datasets).
    voc         the 21 class ids in a PNG with the VOC colour map, in
                results/VOC2012/Segmentation/comp6_test_cls/, the tree the PASCAL VOC server takes as
                a tar.gz (comp6: trained with data beyond VOC's, as an ImageNet encoder is).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from .classes import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    VOC_CLASSES,
    VOC_PALETTE,
)


def _cityscapes_label_ids() -> np.ndarray:
    """train id -> label id, for every uint8 value (the ignore value 255 -> 0, "unlabeled")."""
    table = np.zeros(256, np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        table[train_id] = label_id
    return table


_CITYSCAPES_LABEL_IDS = _cityscapes_label_ids()
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class SubmissionFormat:
    """How one benchmark's server wants a label map: `encode` maps the model's class ids to the
    server's, `palette` (or None: greyscale) colours the PNG, `folder` is where below the output
    folder the files go, and `archive` the kind of file that is uploaded ("zip" or "tar.gz")."""
    name: str
    classes: Tuple[str, ...]
    encode: Callable[[np.ndarray], np.ndarray]
    palette: Optional[Tuple[Tuple[int, int, int], ...]] = None
    folder: str = ""
    archive: str = "zip"


SUBMISSION_FORMATS = {
    "cityscapes": SubmissionFormat("cityscapes", CITYSCAPES_CLASSES, lambda labels: _CITYSCAPES_LABEL_IDS[labels]),
    "ade20k": SubmissionFormat("ade20k", ADE20K_CLASSES, lambda labels: labels.astype(np.uint8) + 1),
    "voc": SubmissionFormat("voc", VOC_CLASSES, lambda labels: labels.astype(np.uint8), VOC_PALETTE,
                            folder="results/VOC2012/Segmentation/comp6_test_cls", archive="tar.gz"),
}


def submission_format(name: str) -> SubmissionFormat:
    """The format of benchmark `name`; an unknown one is an error that lists them."""
    if name not in SUBMISSION_FORMATS:
        raise ValueError(f"no submission format for {name!r}; choose one of {', '.join(SUBMISSION_FORMATS)}")
    return SUBMISSION_FORMATS[name]


def _plain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def check_submission_classes(benchmark: SubmissionFormat, class_names: Optional[Sequence[str]],
                             num_classes: int) -> None:
    """Refuse a model whose classes are not the benchmark's, in number or (where the model names them)
    by name: its ids would be uploaded as other classes. Names are compared without case, spaces
    or punctuation ("traffic light" and "traffic_light" agree); generic names (class_0, ...) pass."""
    expected = benchmark.classes
    if num_classes != len(expected):
        raise ValueError(f"the model predicts {num_classes} classes, but {benchmark.name} has {len(expected)} "
                         f"({', '.join(expected[:4])}, ...); use a model trained on {benchmark.name}")
    if not class_names or all(re.fullmatch(r"class_\d+", str(name)) for name in class_names):
        return
    for index, (name, wanted) in enumerate(zip(class_names, expected)):
        if _plain(str(name)) != _plain(wanted):
            raise ValueError(f"the model's class {index} is {name!r}, where {benchmark.name} has {wanted!r}: its "
                             f"predictions would be scored as other classes; use a model trained on "
                             f"{benchmark.name}'s classes in their order")


def submission_label(labels: np.ndarray, benchmark: SubmissionFormat) -> np.ndarray:
    """The label map (the model's class ids, (H, W)) in the benchmark's ids, as uint8."""
    labels = np.asarray(labels)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= len(benchmark.classes)):
        raise ValueError(f"label map holds ids {int(labels.min())}..{int(labels.max())}, outside the ids of "
                         f"{benchmark.name}, 0..{len(benchmark.classes) - 1}")
    return benchmark.encode(labels)


def write_submission_archive(archive: PathLike, root: PathLike, files: Sequence[PathLike]) -> Path:
    """Pack `files` (below the folder `root`, named relative to it) into `archive`, a .zip or .tar.gz,
    atomically. Only the files given: a folder that holds an earlier run's predictions too would
    otherwise upload those."""
    import tarfile
    import zipfile

    from ..utils import atomic_write

    archive, root = Path(archive), Path(root)
    names = sorted((Path(file), Path(file).relative_to(root).as_posix()) for file in files)

    def write(temporary: Path) -> None:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as packed:  # PNGs are compressed already
                for file, name in names:
                    packed.write(file, name)
        elif archive.name.endswith(".tar.gz"):
            with tarfile.open(temporary, "w:gz") as packed:
                for file, name in names:
                    packed.add(file, name, recursive=False)
        else:
            raise ValueError(f"{archive}: an archive is a .zip or a .tar.gz")

    return atomic_write(archive, write, size=sum(file.stat().st_size for file, _ in names))
