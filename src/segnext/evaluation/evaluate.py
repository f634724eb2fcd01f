"""Evaluation as the official test loop: each image through `segnext.inference.segment_group`,
predictions at the original label size, scored by `SegmentationMetric` (aAcc, mIoU, mAcc,
per-class IoU/Acc). One image at a time by default, as the official loop; `batch_size` groups
images of one resized size into shared forward passes (each still gets its single-image labels),
and `workers` read and resize the next images in other processes while the model runs, as
`segnext predict` does.

Several processes can share the work: each scores the images `rank, rank + world, ...` of the
dataset, and `reduce` sums the confusion matrices over processes (for DistributedDataParallel:
an all-reduce), so the numbers equal a single-process evaluation.

`per_image=True` also scores each image on its own (aAcc, mIoU, IoU per class), to find the images
a model fails on, or whose labels are wrong; `write_per_image` writes them as a table, hardest first.
`calibration=True` also counts the labelled pixels by their confidence (`ConfidenceCalibration`:
how often the model is right when it says 90%, and what share of its errors lies under 70%), from
`segnext.inference.segment_group_confidence`, whose labels are `segment_group`'s.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..constants import PER_CLASS_METRICS
from ..inference.batching import as_is, batches_by_size
from ..inference.preprocess import prepare
from ..inference.segment import evaluation_mode, segment_group, segment_group_confidence
from ..inference.settings import TestConfig
from ..utils import atomic_write, json_safe, json_text, write_csv
from .bootstrap import bootstrap_interval, paired_difference, sampling_units
from .metrics import ConfidenceCalibration, SegmentationMetric, class_areas, image_scores, majority_class_miou


@torch.no_grad()
def evaluate(model, dataset, config: TestConfig, *, num_classes: Optional[int] = None,
             ignore_index: Optional[int] = None, class_names: Optional[Sequence[str]] = None,
             max_images: Optional[int] = None, device=None, shard: Tuple[int, int] = (0, 1),
             reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, progress: bool = False,
             keep_predictions: int = 0, also_first: Optional[int] = None,
             memory_efficient: Optional[bool] = None, batch_size: int = 1, workers: int = 0,
             per_image: bool = False, calibration: bool = False) -> Dict[str, Any]:
    """Score `model` on `dataset` (items: dict(image=uint8 HxWx3 RGB, label=uint8 HxW)).

    Returns SegmentationMetric.compute() plus `num_images`, `seconds`, `confusion` (the int64 matrix
    [target, prediction]) and `majority_class_mIoU` (the trivial baseline).
    shard: (rank, world size): this process scores images rank, rank + world, ...
    reduce: sums a tensor over the processes (in place), e.g. an all-reduce; None for one process.
    keep_predictions: k -> also `predictions`, k (image, label, prediction) triples of this
        process, evenly spread over the split (for overlays).
    also_first: N -> also `first_images`, the metrics of the first N images alone (from the same
        pass), to compare with evaluations that used only those.
    memory_efficient: see `segnext.inference.segment` (the same labels; None: the device's choice).
    batch_size: images of one resized size per forward pass (the same labels as one at a time).
    workers: DataLoader processes that read and resize the next images (0: in this process).
    per_image: also `per_image`, a list in dataset order of each image's `image_scores` (pixels,
        aAcc, mIoU, IoU per class) with its `index` and, where the dataset lists them, `image` and
        `label` paths, and `image_areas`, the (images, 3, K) int64 `class_areas` of each image; every
        process gets those of all images (through `reduce`).
    calibration: also `calibration`, `ConfidenceCalibration.compute()` over all the images (the
        same labels, each pixel's confidence computed with them).
    """
    num_classes = num_classes or getattr(dataset, "num_classes", None) or model.num_classes
    ignore_index = ignore_index if ignore_index is not None else getattr(dataset, "ignore_index", 255)
    class_names = class_names or getattr(dataset, "class_names", None)
    metric = SegmentationMetric(num_classes, ignore_index, class_names)
    first = SegmentationMetric(num_classes, ignore_index, class_names) if also_first else None
    rank, world = shard
    total = len(dataset) if max_images is None else min(max_images, len(dataset))
    indices = range(rank, total, world)
    # Overlays spread over the split: neighbouring frames of a video dataset look all alike.
    keep = set(np.linspace(0, len(indices) - 1, keep_predictions).round().astype(int).tolist()
               if keep_predictions and len(indices) else [])
    kept: List[tuple] = []
    # Each image's class areas in its row; rows of other processes' images stay zero until `reduce`.
    areas = torch.zeros(total, 3, num_classes, dtype=torch.int64) if per_image else None
    calibrated = ConfidenceCalibration(ignore_index) if calibration else None
    start = time.perf_counter()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), desc="eval", unit="img", dynamic_ncols=True, leave=False)
    samples = DataLoader(_PreparedSamples(dataset, indices, config, keep), batch_size=None,
                         num_workers=workers, collate_fn=as_is,
                         generator=torch.Generator())  # its seed draw must not advance the global RNG
    with evaluation_mode(model):
        for group in batches_by_size(((tag, image) for *tag, image in samples), batch_size):
            images = [image for _, image in group]
            if calibrated is None:
                predictions = segment_group(model, images, config, device, memory_efficient=memory_efficient)
                confidences = [None] * len(group)
            else:
                predictions, confidences = zip(*segment_group_confidence(model, images, config, device,
                                                                         memory_efficient=memory_efficient))
            for ((position, index, label), image), prediction, confidence in zip(group, predictions, confidences):
                prediction = prediction.cpu()
                label = torch.from_numpy(label.astype(np.int64))
                confusion = metric.update(prediction, label)
                if calibrated is not None:
                    calibrated.update(prediction, confidence, label)
                if areas is not None:
                    areas[index] = class_areas(confusion)
                if first is not None and index < also_first:
                    first.update(prediction, label)
                if position in keep:
                    kept.append((position, image.rgb, label.numpy().astype(np.uint8),
                                 prediction.numpy().astype(np.uint8)))
            if bar is not None:
                bar.update(len(group))
    if bar is not None:
        bar.close()
    kept = [item[1:] for item in sorted(kept, key=lambda item: item[0])]  # groups may finish out of order
    if reduce is not None:
        for summed in (metric, first):
            if summed is not None:
                summed.confusion = reduce(summed.confusion)
        if areas is not None:
            areas = reduce(areas)
        if calibrated is not None:
            calibrated.counts = reduce(calibrated.counts)
    results = metric.compute()
    if first is not None:
        results["first_images"] = {**first.compute(), "num_images": min(also_first, total)}
    results["num_images"] = total
    results["seconds"] = time.perf_counter() - start
    results["majority_class_mIoU"] = majority_class_miou(metric.confusion)
    results["confusion"] = metric.confusion  # [target, prediction] pixel counts, summed over processes
    if calibrated is not None:
        results["calibration"] = calibrated.compute()
    if keep_predictions:
        results["predictions"] = kept
    if areas is not None:
        image_paths = getattr(dataset, "image_paths", None)
        label_paths = getattr(dataset, "label_paths", None)
        results["per_image"] = [{"index": index, **({"image": image_paths[index]} if image_paths else {}),
                                 **({"label": label_paths[index]} if label_paths else {}), **image_scores(row)}
                                for index, row in enumerate(areas)]
        results["image_areas"] = areas  # what `bootstrap_interval` and `paired_difference` resample
    return results


class _PreparedSamples(Dataset):
    """The (position, index, label, prepared image) of each image to score (read and resized in a
    worker process when there are workers); the images at the positions `kept` keep their pixels."""

    def __init__(self, dataset, indices: Sequence[int], config: TestConfig, kept: Set[int]):
        self.dataset, self.indices, self.config, self.kept = dataset, list(indices), config, kept

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        sample = self.dataset[self.indices[position]]
        image = prepare(sample["image"], self.config, keep_image=position in self.kept)
        return position, self.indices[position], np.asarray(sample["label"]), image


def test_record(config: TestConfig, nmf_seed: Optional[int], precision: Optional[str]) -> Dict[str, Any]:
    """How a results JSON records its test (its `test`): the settings that decide the labels, as JSON
    has them (lists, not tuples), so that two evaluations' records compare as they are."""
    return {"img_scale": _listed(config.img_scale), "size_divisor": config.size_divisor, "mode": config.mode,
            "crop_size": _listed(config.crop_size), "stride": _listed(config.stride), "scales": list(config.scales),
            "flip": config.flip, "nmf_seed": nmf_seed, "precision": precision}


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def results_for_json(results: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """A JSON-safe copy (NaN -> null) with a per-class table, without the kept predictions."""
    names = results.get("class_names") or [str(i) for i in range(len(results["IoU"]))]
    metrics = [name for name in PER_CLASS_METRICS if name in results]
    out = {key: results[key] for key in ["aAcc"] + [f"m{name}" for name in metrics] if key in results}
    out["per_class"] = [{"class": name, **{metric: results[metric][index] for metric in metrics}}
                        for index, name in enumerate(names)]
    out.update({key: results[key] for key in ("num_images", "seconds", "majority_class_mIoU", "calibration")
                if key in results})
    out.update(extra)
    return json_safe(out)


def write_results(path, results: Dict[str, Any], **extra: Any) -> Path:
    """Write `results_for_json(results, **extra)` to `path` atomically."""
    text = json_text(results_for_json(results, **extra)) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text))


def areas_for_json(areas) -> List[List[int]]:
    """Each image's `class_areas` (`image_areas`: (images, 3, K)) as one flat list of numbers: class,
    intersection, labelled and predicted pixels of each class in its label or its prediction
    (`areas_from_json` reads them back)."""
    rows = []
    for image in torch.as_tensor(areas):
        present = torch.nonzero(image[1] + image[2]).flatten()
        rows.append(torch.cat([present[:, None], image[:, present].T], 1).flatten().tolist())
    return rows


def areas_from_json(rows: Sequence[Sequence[int]], num_classes: int, where: str = "image_areas") -> torch.Tensor:
    """The (images, 3, num_classes) int64 areas that `areas_for_json` wrote; `where` names the
    source in the error a malformed row raises."""
    areas = torch.zeros(len(rows), 3, num_classes, dtype=torch.int64)
    for index, row in enumerate(rows):
        values = torch.as_tensor(row, dtype=torch.int64).reshape(-1)
        malformed = values.numel() % 4 or (values.numel() and (values.min() < 0 or
                                                               values.view(-1, 4)[:, 0].max() >= num_classes))
        if malformed:
            raise ValueError(f"{where}: image {index}'s areas are not (class, intersection, labelled, predicted) "
                             f"quadruples of {num_classes} classes; evaluate that model again")
        quadruples = values.view(-1, 4)
        areas[index][:, quadruples[:, 0]] = quadruples[:, 1:].T
    return areas


def image_names(dataset, count: Optional[int] = None) -> Optional[List[str]]:
    """The first `count` images' paths below the dataset's root (as listed, for images elsewhere):
    what identifies the images of two evaluations wherever they ran; None for a dataset that lists
    no paths."""
    paths = getattr(dataset, "image_paths", None)
    if not paths:
        return None
    base = os.path.abspath(os.path.expanduser(str(getattr(dataset, "root", ""))))
    names = []
    for path in paths[:count]:
        relative = os.path.relpath(os.path.abspath(path), base)
        names.append(Path(relative).as_posix() if not relative.startswith("..") else str(path))
    return names


def dataset_image_groups(dataset, count: Optional[int] = None) -> Optional[List[Optional[str]]]:
    """The group (video sequence, city) of each of the first `count` images, read from their names
    (`segnext.data.splits.image_groups`), for a dataset of `segnext.data.DATASETS`; None otherwise."""
    from ..data.datasets import DATASETS, get_spec
    from ..data.splits import image_groups

    name, root, split = (getattr(dataset, key, None) for key in ("name", "root", "split"))
    paths = getattr(dataset, "image_paths", None)
    if name not in DATASETS or not root or not split or not paths:
        return None
    return image_groups(get_spec(name, root), root, split, paths[:count])


def read_results(path, option: str = "--compare") -> Dict[str, Any]:
    """The results JSON at `path` (`segnext eval --interval`'s, or a training run's results.json; a
    run folder stands for its results.json), with its per-image class areas read back as the tensor
    `areas` and its `path`; `option` names the source in the errors."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{option} {path}: no such file; give the results JSON of `segnext eval --interval` or "
                         f"a training run's results.json") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{option} {path}: not a results JSON ({error})") from None
    if not isinstance(results, dict) or not isinstance(results.get("image_areas"), dict):
        raise ValueError(f"{option} {path}: it holds no per-image class areas; evaluate that model again with "
                         f"`segnext eval --interval` (the areas of each image are what the resamples draw)")
    results["areas"] = areas_from_json(results["image_areas"].get("areas") or [], len(results.get("per_class", [])),
                                       where=f"{option} {path}")
    results["path"] = str(path)
    return results


def check_same_images(baseline: Dict[str, Any], dataset_name: Optional[str], names: Optional[Sequence[str]],
                      count: int, option: str = "--compare") -> None:
    """Raise unless `baseline` (`read_results`) scored the same `count` images of `dataset_name`, by
    name where both know the names."""
    where = f"{option} {baseline['path']}"
    if baseline.get("dataset") != dataset_name:
        raise ValueError(f"{where}: scored on {baseline.get('dataset')}, not {dataset_name}; compare evaluations "
                         f"of the same images")
    theirs = baseline["image_areas"].get("images")
    if len(baseline["areas"]) != count or (names and theirs and list(theirs) != list(names)):
        differing = next((f"{mine} against {other}" for mine, other in zip(names or [], theirs or [])
                          if mine != other), None)
        counts = (f"{len(baseline['areas'])} against {count} here" if len(baseline["areas"]) != count else
                  f"as many, {count}, but not the same")
        raise ValueError(f"{where}: scored on other images ({counts}" + (f"; first differing: {differing}"
                         if differing else "") + "); evaluate both models on the same split with the same number "
                         "of images")


def compare_results(areas, baseline: Dict[str, Any], groups: Optional[Sequence[Optional[str]]]) -> Dict[str, Any]:
    """`paired_difference` of the images' `areas` against `baseline` (`read_results`, checked by
    `check_same_images`), resampling the images or their `groups` as `sampling_units` says, with what
    names the baseline (`results`, `checkpoint`, `test`) and the `note` on what the interval covers."""
    areas = torch.as_tensor(areas)
    resampled_groups, note = sampling_units(groups, len(areas))
    difference = paired_difference(areas.numpy(), baseline["areas"].numpy(), resampled_groups)
    return {"results": baseline["path"], "checkpoint": baseline.get("checkpoint"), "test": baseline.get("test"),
            "images": len(areas), "note": note, **difference}


def group_scores(areas, groups: Optional[Sequence[Optional[str]]]) -> List[Dict[str, Any]]:
    """Each group's scores (video sequence, city: `groups` names each image's), as the whole split is
    scored but over the group's images alone: `group`, `images`, `pixels`, `aAcc`, `mIoU` (over the
    classes in its labels or its predictions) and `IoU` per class; in order of first appearance.
    Empty unless there are two groups or more."""
    named = list(dict.fromkeys(group for group in groups or [] if group is not None))
    if len(named) < 2:
        return []
    areas = torch.as_tensor(areas)
    rows = []
    for group in named:
        members = [index for index, name in enumerate(groups) if name == group]
        rows.append({"group": group, "images": len(members), **image_scores(areas[members].sum(0))})
    return rows


def resampled_scores(results: Dict[str, Any], dataset, *, interval: bool = True,
                     baseline: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What the results JSON gains from `evaluate(..., per_image=True)`'s `image_areas`:
    `image_areas` (each image's name, group and class areas, for a later comparison), `interval`
    (`bootstrap_interval`, when `interval`, and `per_group`: `group_scores` where the images come in
    groups) and `compared_with` (`compare_results` against
    `baseline`), each with the images or groups resampled and a note on what the interval covers
    (`sampling_units`)."""
    areas = results["image_areas"]
    groups = dataset_image_groups(dataset, len(areas))
    section: Dict[str, Any] = {"image_areas": {"images": image_names(dataset, len(areas)), "groups": groups,
                                               "areas": areas_for_json(areas)}}
    if interval:
        resampled_groups, note = sampling_units(groups, len(areas))
        section["interval"] = {**bootstrap_interval(areas.numpy(), resampled_groups), "images": len(areas),
                               "note": note}
        scored = group_scores(areas, groups)
        if scored:
            section["per_group"] = scored
    if baseline is not None:
        section["compared_with"] = compare_results(areas, baseline, groups)
    return section


def hardest_first(per_image: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """`evaluate(..., per_image=True)`'s images, the lowest mIoU first (then the lowest aAcc); images
    without a labelled pixel last."""

    def key(scores):
        unscored = math.isnan(scores["mIoU"])
        return (unscored, 0.0 if unscored else scores["mIoU"], 0.0 if unscored else scores["aAcc"], scores["index"])
    return sorted(per_image, key=key)


def write_per_image(path, results: Dict[str, Any]) -> Path:
    """The per-image scores of `results` (from `evaluate(..., per_image=True)`) as CSV, hardest first:
    image, label, labelled pixels, aAcc, mIoU, then the IoU of each class (empty where the class is in
    neither the image's label nor its prediction). Written atomically."""
    names = results.get("class_names") or [str(k) for k in range(len(results["IoU"]))]
    rows = hardest_first(results["per_image"])

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.2f}"

    return write_csv(path, ["image", "label", "pixels", "aAcc", "mIoU"] + [f"IoU {name}" for name in names],
                     ([scores.get("image", scores["index"]), scores.get("label", ""), scores["pixels"],
                       number(scores["aAcc"]), number(scores["mIoU"])] + [number(v) for v in scores["IoU"]]
                      for scores in rows))


__all__ = ["areas_for_json", "areas_from_json", "check_same_images", "compare_results", "dataset_image_groups",
           "evaluate", "group_scores", "hardest_first", "image_names", "read_results", "resampled_scores",
           "results_for_json", "test_record", "write_per_image", "write_results"]
