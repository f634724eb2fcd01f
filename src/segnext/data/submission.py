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
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .classes import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    VOC_CLASSES,
    VOC_PALETTE,
)

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class SubmissionFormat:
    """How one benchmark's server wants a label map: `server_ids` holds the server's id of each of the
    model's classes, `palette` (or None: greyscale) colours the PNG, `folder` is where below the output
    folder the files go, and `archive` the kind of file that is uploaded ("zip" or "tar.gz")."""
    name: str
    classes: Tuple[str, ...]
    server_ids: Tuple[int, ...]
    palette: Optional[Tuple[Tuple[int, int, int], ...]] = None
    folder: str = ""
    archive: str = "zip"


SUBMISSION_FORMATS = {
    "cityscapes": SubmissionFormat("cityscapes", CITYSCAPES_CLASSES, tuple(sorted(
        CITYSCAPES_ID_TO_TRAIN_ID, key=CITYSCAPES_ID_TO_TRAIN_ID.get))),  # train id k -> its label id
    "ade20k": SubmissionFormat("ade20k", ADE20K_CLASSES, tuple(range(1, 151))),
    "voc": SubmissionFormat("voc", VOC_CLASSES, tuple(range(21)), VOC_PALETTE,
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
                             num_classes: int, owner: str = "model") -> None:
    """Refuse a model (or, `owner` "dataset", the dataset ids are read back for) whose classes are not
    the benchmark's, in number or (where they are named) by name: its ids would stand for other
    classes. Names are compared without case, spaces or punctuation ("traffic light" and
    "traffic_light" agree); generic names (class_0, ...) pass."""
    expected = benchmark.classes
    advice = f"use a {owner} with the classes of {benchmark.name}, in their order"
    if num_classes != len(expected):
        raise ValueError(f"the {owner} has {num_classes} classes, but {benchmark.name} has {len(expected)} "
                         f"({', '.join(expected[:4])}, ...); {advice}")
    if not class_names or all(re.fullmatch(r"class_\d+", str(name)) for name in class_names):
        return
    for index, (name, wanted) in enumerate(zip(class_names, expected)):
        if _plain(str(name)) != _plain(wanted):
            raise ValueError(f"the {owner}'s class {index} is {name!r}, where {benchmark.name} has {wanted!r}: its "
                             f"ids would stand for other classes; {advice}")


def submission_label(labels: np.ndarray, benchmark: SubmissionFormat) -> np.ndarray:
    """The label map (the model's class ids, (H, W)) in the benchmark's ids, as uint8."""
    labels = np.asarray(labels)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= len(benchmark.classes)):
        raise ValueError(f"label map holds ids {int(labels.min())}..{int(labels.max())}, outside the ids of "
                         f"{benchmark.name}, 0..{len(benchmark.classes) - 1}")
    return np.asarray(benchmark.server_ids, np.uint8)[labels]


def label_from_submission(server_ids: np.ndarray, benchmark: SubmissionFormat, name: str = "label map") -> np.ndarray:
    """The inverse of `submission_label`: a label map in the benchmark's ids (another implementation's
    Cityscapes label ids, MMSegmentation's format_only files) in class ids, as uint8. An id that is
    no class's (Cityscapes' void ids, ADE20K's 0) is an error naming it."""
    server_ids = np.asarray(server_ids)
    table = np.full(max(256, int(server_ids.max(initial=0)) + 1), -1, np.int64)
    table[list(benchmark.server_ids)] = np.arange(len(benchmark.server_ids))
    labels = table[server_ids]
    if labels.size and int(labels.min()) < 0:
        unknown = sorted(set(server_ids[labels < 0].tolist()))
        raise ValueError(f"{name}: holds {benchmark.name} id(s) {', '.join(map(str, unknown[:5]))} of no class it "
                         f"scores (its ids: {', '.join(map(str, benchmark.server_ids[:4]))}, ...)")
    return labels.astype(np.uint8)


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
