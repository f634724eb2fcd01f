"""What an evaluation leaves behind, and what is read back from it: the results JSON (metrics, the
test that gave them, each image's class areas), the per-image table, the images of a split by name
and group, and the comparisons and intervals those areas allow.

The results JSON of `segnext eval` and a training run's results.json share one layout
(`results_for_json`): aAcc and the means, a per-class table, then what the caller adds (`test`:
`test_record`; with per-image scores, `resampled_scores`: `image_areas`, `interval`, `per_group`,
`compared_with`). `read_results` reads one back for `segnext compare` and `segnext eval --compare`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..constants import PER_CLASS_METRICS
from ..inference.settings import TestConfig
from ..utils import atomic_write, json_safe, json_text, write_csv
from .bootstrap import bootstrap_interval, few_units_note, paired_difference, sampling_units
from .metrics import ConfidenceCalibration, area_scores, image_scores


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
    out.update({key: results[key] for key in ("category_mIoU", "category_IoU", "num_images", "seconds",
                                              "majority_class_mIoU", "calibration", "coverage") if key in results})
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


def check_tested_alike(evaluations, option: str) -> None:
    """Raise unless the `evaluations` (`read_results`' dicts: the runs of one side of a comparison, or
    the folds to pool; `option` names them in the error) were tested with the same settings: a
    difference between those would pass for one between seeds, or folds."""
    first = evaluations[0].get("test") or {}
    for evaluation in evaluations[1:]:
        theirs = evaluation.get("test") or {}
        differing = [f"{key} {theirs.get(key)} against {first.get(key)}" for key in sorted(set(first) | set(theirs))
                     if theirs.get(key) != first.get(key)]
        if differing:
            raise ValueError(f"{option} {evaluation['path']}: tested otherwise than {evaluations[0]['path']} "
                             f"({', '.join(differing)}); evaluate the runs of one recipe alike")


def compare_results(areas, baseline, groups: Optional[Sequence[Optional[str]]]) -> Dict[str, Any]:
    """`paired_difference` of the images' `areas` against `baseline` (`read_results`, checked by
    `check_same_images`), resampling the images or their `groups` as `sampling_units` says, with what
    names the baseline (`results`, `checkpoint`, `test`) and the `note` on what the interval covers.
    Several runs of a recipe (training seeds) on either side: `areas` a list of the runs' areas,
    `baseline` a list of `read_results`' (`results` and `checkpoint` are then lists too)."""
    runs = [torch.as_tensor(run) for run in (areas if isinstance(areas, (list, tuple)) else [areas])]
    baselines = list(baseline) if isinstance(baseline, (list, tuple)) else [baseline]
    resampled_groups, note = sampling_units(groups, len(runs[0]))
    difference = paired_difference(np.stack([run.numpy() for run in runs]),
                                   np.stack([other["areas"].numpy() for other in baselines]), resampled_groups)
    named = {key: [other.get(key) for other in baselines] if len(baselines) > 1 else baselines[0].get(key)
             for key in ("path", "checkpoint")}
    return {"results": named["path"], "checkpoint": named["checkpoint"], "test": baselines[0].get("test"),
            "images": len(runs[0]), "note": _with_few_units_note(note, difference), **difference}


def _with_few_units_note(note: Optional[str], interval: Dict[str, Any]) -> Optional[str]:
    """`sampling_units`' note on what the interval covers, and `few_units_note`'s, joined."""
    return "; ".join(part for part in (note, few_units_note(interval)) if part) or None


def group_scores(areas, groups: Optional[Sequence[Optional[str]]]) -> List[Dict[str, Any]]:
    """Each group's scores (video sequence, city: `groups` names each image's), as the whole split is
    scored but over the group's images alone: `group`, `images`, `pixels`, `aAcc`, `mIoU` (over the
    classes in its labels or its predictions) and `IoU` per class; in order of first appearance.
    Empty unless there are two groups or more."""
    members: Dict[str, List[int]] = {}  # in order of first appearance
    for index, group in enumerate(groups or []):
        if group is not None:
            members.setdefault(group, []).append(index)
    if len(members) < 2:
        return []
    areas = torch.as_tensor(areas)
    return [{"group": group, "images": len(indices), **image_scores(areas[indices].sum(0))}
            for group, indices in members.items()]


def resampled_scores(results: Dict[str, Any], dataset, *, interval: bool = True,
                     baseline: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What the results JSON gains from `evaluate(..., per_image=True)`'s `image_areas`:
    `image_areas` (each image's name, group and class areas, for a later comparison), `interval`
    (`bootstrap_interval`, when `interval`, and `per_group`: `group_scores` where the images come in
    groups) and `compared_with` (`compare_results` against
    `baseline`), each with the images or groups resampled and a note on what the interval covers
    (`sampling_units`)."""
    areas = results["image_areas"]
    return _resampled_section(areas, image_names(dataset, len(areas)), dataset_image_groups(dataset, len(areas)),
                              interval=interval, baseline=baseline)


def _resampled_section(areas: torch.Tensor, names: Optional[List[str]], groups: Optional[Sequence[Optional[str]]], *,
                       interval: bool = True, baseline: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`resampled_scores`' section from the images' areas, names and groups."""
    section: Dict[str, Any] = {"image_areas": {"images": names, "groups": groups, "areas": areas_for_json(areas)}}
    if interval:
        resampled_groups, note = sampling_units(groups, len(areas))
        resampled = bootstrap_interval(areas.numpy(), resampled_groups)
        section["interval"] = {**resampled, "images": len(areas), "note": _with_few_units_note(note, resampled)}
        scored = group_scores(areas, groups)
        if scored:
            section["per_group"] = scored
    if baseline is not None:
        section["compared_with"] = compare_results(areas, baseline, groups)
    return section


def pool_results(evaluations: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Several evaluations, each of other images (the folds of a cross-validation: each fold's model
    on the groups it did not train on; `read_results`' dicts), scored as one split: the results as
    `SegmentationMetric.compute()` gives them from all the images' class areas, `num_images`, and the
    section of `resampled_scores` (the images by name below their split folders, their groups and
    areas, the interval, `per_group`), and `calibration` where every evaluation counted it alike.
    Raises, naming the file, where evaluations cannot be pooled:
    another dataset or other classes, other test settings, images without names, an image twice."""
    from ..data.splits import shared_groups

    first = evaluations[0]
    classes = [row.get("class") for row in first.get("per_class", [])]
    check_tested_alike(evaluations, "RUN")
    owner: Dict[str, str] = {}
    names: List[str] = []
    groups: List[Optional[str]] = []
    for evaluation in evaluations:
        where = f"RUN {evaluation['path']}"
        if evaluation.get("dataset") != first.get("dataset"):
            raise ValueError(f"{where}: scored on {evaluation.get('dataset')}, not {first.get('dataset')} like "
                             f"{first['path']}; pool the folds of one dataset")
        theirs = [row.get("class") for row in evaluation.get("per_class", [])]
        if theirs != classes:
            raise ValueError(f"{where}: its classes ({', '.join(map(str, theirs))}) are not those of {first['path']} "
                             f"({', '.join(map(str, classes))}); pool the folds of one recipe")
        images = evaluation["image_areas"].get("images")
        if not images:
            raise ValueError(f"{where}: its images are not named; evaluate that model again (`segnext eval "
                             f"--interval`), which names them")
        for name in images:
            # the split folder left out: the same image held out by two folds' splits is one image
            name = "/".join(part for part in name.split("/") if part != evaluation.get("split"))
            if name in owner:
                raise ValueError(f"{where}: scores {name}, which {owner[name]} scores too; give each fold's run once, "
                                 f"the folds holding out other images (`segnext data split --folds`)")
            owner[name] = evaluation["path"]
            names.append(name)
        groups += evaluation["image_areas"].get("groups") or [None] * len(images)
    order = sorted(range(len(names)), key=names.__getitem__)
    areas = torch.cat([evaluation["areas"] for evaluation in evaluations])[order]
    names, groups = [names[index] for index in order], [groups[index] for index in order]
    pooled = {**area_scores(areas.sum(0), classes), "num_images": len(names),
              **_resampled_section(areas, names, shared_groups(groups))}
    calibrations = [evaluation.get("calibration") for evaluation in evaluations]
    if all(calibrations):  # a training run's final evaluation counts them; `eval` with --calibration
        summed = [ConfidenceCalibration.from_computed(calibration) for calibration in calibrations]
        if len({(each.bins, each.thresholds) for each in summed}) == 1:
            for each in summed[1:]:
                summed[0].counts += each.counts
            pooled["calibration"] = summed[0].compute()
    return pooled


def hardest_first(per_image: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """`evaluate(..., per_image=True)`'s images, the lowest mIoU first (then the lowest aAcc); images
    without a labelled pixel last."""

    def key(scores):
        unscored = math.isnan(scores["mIoU"])
        return (unscored, 0.0 if unscored else scores["mIoU"], 0.0 if unscored else scores["aAcc"], scores["index"])
    return sorted(per_image, key=key)


def write_per_image(path, results: Dict[str, Any], groups: Optional[Sequence[Optional[str]]] = None) -> Path:
    """The per-image scores of `results` (from `evaluate(..., per_image=True)`) as CSV, hardest first:
    image, label, labelled pixels, aAcc, mIoU, then the IoU of each class (empty where the class is in
    neither the image's label nor its prediction). With `groups` (each image's video sequence or city,
    `dataset_image_groups`) naming two or more, a `group` column after the label, to sort or filter
    the images by it. Written atomically."""
    names = results.get("class_names") or [str(k) for k in range(len(results["IoU"]))]
    rows = hardest_first(results["per_image"])
    grouped = len({group for group in groups or [] if group is not None}) >= 2

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.2f}"

    def row(scores: Dict[str, Any]) -> list:
        group = [groups[scores["index"]] or ""] if grouped else []
        return ([scores.get("image", scores["index"]), scores.get("label", "")] + group
                + [scores["pixels"], number(scores["aAcc"]), number(scores["mIoU"])]
                + [number(v) for v in scores["IoU"]])

    header = ["image", "label"] + (["group"] if grouped else []) + ["pixels", "aAcc", "mIoU"]
    return write_csv(path, header + [f"IoU {name}" for name in names], (row(scores) for scores in rows))


__all__ = ["areas_for_json", "areas_from_json", "check_same_images", "compare_results", "dataset_image_groups",
           "group_scores", "hardest_first", "image_names", "read_results", "resampled_scores", "results_for_json",
           "test_record", "write_per_image", "write_results"]
