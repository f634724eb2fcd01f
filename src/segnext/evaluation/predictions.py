"""Scoring label maps written elsewhere (`segnext eval --predictions DIR`): `segnext predict`'s files,
a deployed service's, another implementation's, found by the names of the images they predict and
scored as `evaluate` scores a model's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from ..utils import progress_bar
from .evaluate import evaluation_results
from .metrics import SegmentationMetric, class_areas


def evaluate_predictions(dataset, folder, *, max_images: Optional[int] = None, per_image: bool = False,
                         progress: bool = False, benchmark_ids: Optional[str] = None,
                         skip_unlabelled: bool = False) -> Dict[str, Any]:
    """Score label maps written elsewhere against `dataset`'s labels, with the results `evaluate` gives
    a model (no calibration: files hold no confidence): `segnext predict`'s files, those of another
    implementation, of a deployed service. `folder` holds a PNG of class ids at each
    image's own size, named after the image (`PredictionFolder` says how they are found); a missing,
    misshapen or out-of-range one is an error naming it, before or while scoring. `benchmark_ids`
    ("cityscapes", "ade20k", "voc"): the files hold that benchmark server's ids instead of class ids
    (`segnext predict --submission`'s files, Cityscapes label ids, MMSegmentation's format_only).
    skip_unlabelled: pixels the files leave unlabelled (255, `segnext predict --unsure-below`'s) are
    left out of the scores, which are then those of the labels given, and `coverage` says how many of
    the labelled pixels were given one (without it such a file is an error: every pixel is scored)."""
    from ..data.io import read_label
    from ..data.submission import check_submission_classes, label_from_submission, submission_format

    benchmark = submission_format(benchmark_ids) if benchmark_ids else None
    if benchmark is not None:  # the ids name the benchmark's classes: the dataset must have them
        check_submission_classes(benchmark, getattr(dataset, "class_names", None), dataset.num_classes,
                                 owner="dataset")

    predictions = PredictionFolder(folder)
    total = len(dataset) if max_images is None else min(max_images, len(dataset))
    image_paths = getattr(dataset, "image_paths", None)
    if not image_paths:
        raise ValueError(f"{getattr(dataset, 'name', 'this dataset')}: its images have no file names to find "
                         f"their predictions in {folder} by")
    found = [predictions.path_for(image_paths[index]) for index in range(total)]
    missing = [image_paths[index] for index in range(total) if found[index] is None]
    if missing:
        raise ValueError(f"{folder}: no prediction for {len(missing)} of the {total} images, e.g. "
                         f"{Path(missing[0]).stem}.png for {missing[0]}; predict them all (segnext predict "
                         f"IMAGE_FOLDER --out {folder}), or score the first N with --max-images N")
    num_classes, ignore_index = dataset.num_classes, getattr(dataset, "ignore_index", 255)
    metric = SegmentationMetric(num_classes, ignore_index, getattr(dataset, "class_names", None))
    areas = torch.zeros(total, 3, num_classes, dtype=torch.int64) if per_image else None
    labelled = left_unlabelled = 0  # labelled pixels, and those the predictions leave without a label
    start = time.perf_counter()
    bar = progress_bar(total, desc="eval", unit="img", dynamic_ncols=True, leave=False, enabled=progress)
    for index, path in enumerate(found):
        label = np.asarray(dataset[index]["label"])
        prediction = read_label(path)
        if benchmark is not None:
            prediction = label_from_submission(prediction, benchmark, str(path))
        if prediction.shape != label.shape:
            raise ValueError(f"{path}: the prediction is {prediction.shape[1]}x{prediction.shape[0]} but the label of "
                             f"{image_paths[index]} is {label.shape[1]}x{label.shape[0]}; predictions are scored at "
                             f"the image's own size (as segnext predict writes them)")
        unlabelled = prediction == IGNORE_INDEX if num_classes <= IGNORE_INDEX else None
        if unlabelled is not None and unlabelled.any():
            if not skip_unlabelled:
                raise ValueError(f"{path}: the prediction leaves pixels unlabelled ({IGNORE_INDEX}, as segnext predict "
                                 f"--unsure-below writes them), and every labelled pixel is scored; score the labels "
                                 f"given with --skip-unlabelled (and how many pixels got one), or predictions written "
                                 f"without --unsure-below")
            left_unlabelled += int((unlabelled & (label != ignore_index)).sum())
            label = np.where(unlabelled, ignore_index, label)
            prediction = np.where(unlabelled, 0, prediction)
        labelled += int((label != ignore_index).sum())  # scored: labelled, and given a label
        if prediction.size and int(prediction.max()) >= num_classes:
            raise ValueError(f"{path}: the prediction holds class id {int(prediction.max())}, but the dataset has "
                             f"{num_classes} classes (0..{num_classes - 1}); was it written for another dataset, or "
                             f"in a benchmark server's ids (--submission)?")
        confusion = metric.update(torch.from_numpy(prediction.astype(np.int64)),
                                  torch.from_numpy(label.astype(np.int64)))
        if areas is not None:
            areas[index] = class_areas(confusion)
        bar.update(1)
    bar.close()
    results = evaluation_results(metric, areas, dataset, total, start)
    if skip_unlabelled:
        pixels = labelled + left_unlabelled
        results["coverage"] = {"labelled_pixels": pixels, "unlabelled_pixels": left_unlabelled,
                               "percent": 100.0 * labelled / pixels if pixels else float("nan")}
    return results


# The endings of label maps: segnext predict's PNGs, and its GeoTIFFs (--geotiff).
LABEL_SUFFIXES = (".png", ".tif")


class PredictionFolder:
    """The label maps in a folder (and its sub-folders), found by the names of the images they
    predict: `name.png` for `name.jpg` (or `name.jpg.png`, the name `segnext predict` gives when
    name.jpg and name.png are both inputs; `.tif` for `segnext predict --geotiff`'s). Where several
    files carry that name, the one whose sub-folders end like the image's own folders is taken
    (Cityscapes' city folders)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"{folder}: no such folder of predictions; write them with segnext predict IMAGES "
                             f"--out {folder}")
        self.by_name: Dict[str, List[Path]] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.suffix in LABEL_SUFFIXES and path.is_file():
                self.by_name.setdefault(path.name, []).append(path)

    def path_for(self, image) -> Optional[Path]:
        """The prediction of the image at path `image`, or None."""
        image = Path(image)
        candidates = [path for suffix in LABEL_SUFFIXES for name in (image.stem, image.name)
                      for path in self.by_name.get(f"{name}{suffix}", [])]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        folders = image.parent.parts

        def shared_folders(path: Path) -> int:
            parts = path.relative_to(self.folder).parent.parts
            count = 0
            while count < min(len(parts), len(folders)) and parts[-1 - count] == folders[-1 - count]:
                count += 1
            return count

        ranked = sorted(candidates, key=shared_folders, reverse=True)
        if shared_folders(ranked[0]) == shared_folders(ranked[1]):
            raise ValueError(f"{self.folder}: {ranked[0]} and {ranked[1]} could both be the prediction of {image}; "
                             f"keep the predictions of one run in the folder")
        return ranked[0]


__all__ = ["PredictionFolder", "evaluate_predictions"]
