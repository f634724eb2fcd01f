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
a model fails on, or whose labels are wrong (`segnext.evaluation.results` writes them as a table,
hardest first, and keeps each image's class areas for intervals and comparisons).
`calibration=True` also counts the labelled pixels by their confidence (`ConfidenceCalibration`:
how often the model is right when it says 90%, and what share of its errors lies under 70%), from
`segnext.inference.segment_group_confidence`, whose labels are `segment_group`'s.
`should_stop` lets a training run's stop request (Ctrl-C, SIGTERM) end an evaluation at the next
forward pass (`EvaluationStopped`) instead of after the last image. Several processes then agree
once, after their loops (one more sum through `reduce`): a process asked to stop leaves its loop at
once, the others at theirs (they are usually asked too: torchrun and cluster schedulers signal every
process), and all raise, so that none is left waiting in a sum the others never reach.
`save_partial` and `resume_from` keep what an evaluation has scored (`PartialScores`) and let a rerun
of it go on from there (`segnext eval` keeps them beside its results).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..inference.batching import as_is, batches_by_size
from ..inference.preprocess import prepare
from ..inference.segment import evaluation_mode, segment_group, segment_group_confidence
from ..inference.settings import TestConfig
from ..utils import progress_bar
from .metrics import (
    ConfidenceCalibration,
    SegmentationMetric,
    category_scores,
    class_areas,
    image_scores,
    majority_class_miou,
)

# The reason a process gives when another process was asked to stop the evaluation.
STOPPED_ELSEWHERE = "a stop request to another process"


class EvaluationStopped(Exception):
    """`evaluate(..., should_stop=...)` ended before the last image; `reason` is what `should_stop` said."""

    def __init__(self, reason):
        super().__init__(f"evaluation stopped by {reason}")
        self.reason = reason


@torch.no_grad()
def evaluate(model, dataset, config: TestConfig, *, num_classes: Optional[int] = None,
             ignore_index: Optional[int] = None, class_names: Optional[Sequence[str]] = None,
             max_images: Optional[int] = None, device=None, shard: Tuple[int, int] = (0, 1),
             reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, progress: bool = False,
             keep_predictions: int = 0, also_first: Optional[int] = None,
             memory_efficient: Optional[bool] = None, batch_size: int = 1, workers: int = 0,
             per_image: bool = False, calibration: bool = False,
             should_stop: Optional[Callable[[], Any]] = None, resume_from: Optional[PartialScores] = None,
             save_partial: Optional[Callable[[PartialScores], None]] = None,
             save_every: float = 60.0) -> Dict[str, Any]:
    """Score `model` on `dataset` (items: dict(image=uint8 HxWx3 RGB, or float32 HxWxC bands for test
    settings of C channels, label=uint8 HxW)).

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
    should_stop: called after each forward pass; an answer other than None raises EvaluationStopped
        with it. Under `reduce`, every process passes one (or none): the stop is agreed after the loop,
        and a process not asked itself raises with the reason `STOPPED_ELSEWHERE`.
    resume_from: the `PartialScores` of an evaluation of the same images, model and settings that was
        interrupted: its images are not scored again, their sums are added (one process only).
    save_partial: called with the `PartialScores` so far every `save_every` seconds, and when the
        loop is left by an exception (Ctrl-C, a failing image), so that a rerun can resume from them.
    """
    num_classes = num_classes or getattr(dataset, "num_classes", None) or model.num_classes
    ignore_index = ignore_index if ignore_index is not None else getattr(dataset, "ignore_index", 255)
    class_names = class_names or getattr(dataset, "class_names", None)
    metric = SegmentationMetric(num_classes, ignore_index, class_names)
    first = SegmentationMetric(num_classes, ignore_index, class_names) if also_first else None
    rank, world = shard
    resumable = resume_from is not None or save_partial is not None
    if resumable and (world > 1 or keep_predictions or also_first):
        raise ValueError("an evaluation resumes in one process, without keep_predictions or also_first")
    total = len(dataset) if max_images is None else min(max_images, len(dataset))
    done = set(resume_from.done) if resume_from is not None else set()
    indices = [index for index in range(rank, total, world) if index not in done]
    # Overlays spread over the split: neighbouring frames of a video dataset look all alike.
    keep = set(np.linspace(0, len(indices) - 1, keep_predictions).round().astype(int).tolist()
               if keep_predictions and len(indices) else [])
    kept: List[tuple] = []
    # Each image's class areas in its row; rows of other processes' images stay zero until `reduce`.
    areas = torch.zeros(total, 3, num_classes, dtype=torch.int64) if per_image else None
    calibrated = ConfidenceCalibration(ignore_index) if calibration else None
    if resume_from is not None:
        resume_from.add_to(metric, areas, calibrated)
    scored = sorted(done)

    def partial() -> PartialScores:
        return PartialScores(list(scored), metric.confusion.clone(), None if areas is None else areas.clone(),
                             None if calibrated is None else calibrated.counts.clone())

    saved_at = time.perf_counter()
    reason = None
    start = time.perf_counter()
    bar = None
    if progress and rank == 0:
        bar = progress_bar(len(indices), desc="eval", unit="img", dynamic_ncols=True, leave=False)
    samples = DataLoader(_PreparedSamples(dataset, indices, config, keep), batch_size=None,
                         num_workers=workers, collate_fn=as_is,
                         generator=torch.Generator())  # its seed draw must not advance the global RNG
    with evaluation_mode(model), _saved_when_left(save_partial, partial, scored, len(done)):
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
                scored.append(index)
            if bar is not None:
                bar.update(len(group))
            if save_partial is not None and time.perf_counter() - saved_at >= save_every:
                save_partial(partial())
                saved_at = time.perf_counter()
            reason = should_stop() if should_stop is not None else None
            if reason is not None:
                break
    if bar is not None:
        bar.close()
    if should_stop is not None:
        _agree_to_stop(reason, reduce)
    kept = [item[1:] for item in sorted(kept, key=lambda item: item[0])]  # groups may finish out of order
    if reduce is not None:
        for summed in (metric, first):
            if summed is not None:
                summed.confusion = reduce(summed.confusion)
        if areas is not None:
            areas = reduce(areas)
        if calibrated is not None:
            calibrated.counts = reduce(calibrated.counts)
    results = evaluation_results(metric, areas, dataset, total, start)
    if first is not None:
        results["first_images"] = {**first.compute(), "num_images": min(also_first, total)}
    if calibrated is not None:
        results["calibration"] = calibrated.compute()
    if keep_predictions:
        results["predictions"] = kept
    return results


@dataclass
class PartialScores:
    """What an evaluation has scored so far: the dataset `done` indices and the sums over them (the
    confusion matrix; the per-image class areas, rows of other images zero; the calibration counts),
    as plain data (`to_json`) for a rerun to resume from."""
    done: List[int]
    confusion: torch.Tensor
    areas: Optional[torch.Tensor] = None
    calibration: Optional[torch.Tensor] = None

    def add_to(self, metric: SegmentationMetric, areas: Optional[torch.Tensor],
               calibrated: Optional[ConfidenceCalibration]) -> None:
        if (areas is None) != (self.areas is None) or (calibrated is None) != (self.calibration is None):
            raise ValueError("the partial scores were made with other per_image / calibration settings")
        metric.confusion += self.confusion
        if areas is not None:
            areas += self.areas
        if calibrated is not None:
            calibrated.counts += self.calibration

    def to_json(self) -> Dict[str, Any]:
        rows = None if self.areas is None else self.areas[self.done].tolist()
        return {"done": self.done, "confusion": self.confusion.tolist(), "areas": rows,
                "calibration": None if self.calibration is None else self.calibration.tolist()}

    @classmethod
    def from_json(cls, data: Dict[str, Any], num_images: int) -> PartialScores:
        confusion = torch.tensor(data["confusion"], dtype=torch.int64)
        areas = None
        if data.get("areas") is not None:
            areas = torch.zeros(num_images, 3, confusion.shape[0], dtype=torch.int64)
            if data["done"]:
                areas[data["done"]] = torch.tensor(data["areas"], dtype=torch.int64)
        calibration = None if data.get("calibration") is None else torch.tensor(data["calibration"],
                                                                                 dtype=torch.float64)
        return cls(list(data["done"]), confusion, areas, calibration)


@contextmanager
def _saved_when_left(save_partial, partial: Callable[[], PartialScores], scored: List[int], resumed: int):
    """Save the partial scores when the loop is left by an exception (Ctrl-C, an unreadable image),
    if it scored anything since it started."""
    try:
        yield
    except BaseException:
        if save_partial is not None and len(scored) > resumed:
            save_partial(partial())
        raise


def evaluation_results(metric: SegmentationMetric, areas: Optional[torch.Tensor], dataset, total: int,
             start: float) -> Dict[str, Any]:
    """The results of an evaluation (`evaluate`'s, `evaluate_predictions`'): the metrics of `metric`
    and what `evaluate`'s docstring lists beside them, for the first `total` images of `dataset`."""
    results = metric.compute()
    results["num_images"] = total
    results["seconds"] = time.perf_counter() - start
    results["majority_class_mIoU"] = majority_class_miou(metric.confusion)
    results["confusion"] = metric.confusion  # [target, prediction] pixel counts, summed over processes
    categories = getattr(dataset, "categories", None) or {}
    if categories and all(name in metric.class_names for members in categories.values() for name in members):
        results.update(category_scores(metric.confusion, metric.class_names, categories))
    if areas is not None:
        image_paths = getattr(dataset, "image_paths", None)
        label_paths = getattr(dataset, "label_paths", None)
        results["per_image"] = [{"index": index, **({"image": image_paths[index]} if image_paths else {}),
                                 **({"label": label_paths[index]} if label_paths else {}), **image_scores(row)}
                                for index, row in enumerate(areas)]
        results["image_areas"] = areas  # what `bootstrap_interval` and `paired_difference` resample
    return results


def _agree_to_stop(reason: Any, reduce: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> None:
    """Raise EvaluationStopped if this process (`reason`) or, under `reduce`, any other was asked to stop."""
    if reduce is not None:
        asked = reduce(torch.tensor([int(reason is not None)], dtype=torch.int64))
        if reason is None and asked.item() > 0:
            reason = STOPPED_ELSEWHERE
    if reason is not None:
        raise EvaluationStopped(reason)


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


__all__ = ["STOPPED_ELSEWHERE", "EvaluationStopped", "PartialScores", "evaluate", "evaluation_results"]
