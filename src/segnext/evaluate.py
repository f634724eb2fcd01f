"""Evaluation as the official test loop: one image at a time through `segnext.inference.segment`
(keep-ratio resize, whole-image or sliding-window logits, optional multi-scale + flip), predictions
at the original label size, scored by `SegmentationMetric` (aAcc, mIoU, mAcc, per-class IoU/Acc).

In DistributedDataParallel each process scores the images `rank, rank + world, ...` and the
confusion matrices are summed over processes, so the numbers equal a single-process evaluation.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from .inference import TestConfig, segment
from .metrics import SegmentationMetric


def test_config_from(evaluation, data=None) -> TestConfig:
    """TestConfig from the `evaluation` section of a training config (mean/std from `data`)."""
    extra = {} if data is None else {"mean": tuple(data.mean), "std": tuple(data.std)}
    return TestConfig(img_scale=evaluation.img_scale, size_divisor=evaluation.size_divisor, mode=evaluation.mode,
                      crop_size=evaluation.crop_size, stride=evaluation.stride, scales=tuple(evaluation.scales),
                      flip=evaluation.flip, **extra)


@torch.no_grad()
def evaluate(model, dataset, config: TestConfig, *, num_classes: Optional[int] = None,
             ignore_index: Optional[int] = None, class_names: Optional[Sequence[str]] = None,
             max_images: Optional[int] = None, device: Optional[torch.device] = None, env=None,
             progress: bool = False, keep_predictions: int = 0,
             also_first: Optional[int] = None) -> Dict[str, Any]:
    """Score `model` on `dataset` (items: dict(image=uint8 HxWx3 RGB, label=uint8 HxW)).

    Returns SegmentationMetric.compute() plus `num_images`, `seconds`, `confusion` (the int64 matrix
    [target, prediction]) and `majority_class_mIoU` (the trivial baseline); with keep_predictions=k
    also `predictions`: k (image, label, prediction) triples of this process, evenly spread (for overlays).
    `env` (segnext.train.distributed.Distributed) shards the images over processes.
    also_first=N adds `first_images`: the metrics of the first N images alone (from the same pass), to
    compare with earlier evaluations that used only those.
    """
    from .train.distributed import all_reduce_sum

    num_classes = num_classes or getattr(dataset, "num_classes", None) or model.num_classes
    ignore_index = ignore_index if ignore_index is not None else getattr(dataset, "ignore_index", 255)
    class_names = class_names or getattr(dataset, "class_names", None)
    metric = SegmentationMetric(num_classes, ignore_index, class_names)
    first = SegmentationMetric(num_classes, ignore_index, class_names) if also_first else None
    rank, world = (env.rank, env.world_size) if env is not None else (0, 1)
    total = len(dataset) if max_images is None else min(max_images, len(dataset))
    indices = range(rank, total, world)
    was_training = model.training
    model.eval()
    kept: List[tuple] = []
    # Overlays spread over the split: neighbouring frames of a video dataset look all alike.
    keep_positions = set(np.linspace(0, len(indices) - 1, keep_predictions).round().astype(int).tolist()
                         if keep_predictions and len(indices) else [])
    start = time.perf_counter()
    iterator = indices
    if progress and rank == 0:
        from tqdm import tqdm

        iterator = tqdm(indices, desc="eval", unit="img", dynamic_ncols=True, leave=False)
    try:
        for position, index in enumerate(iterator):
            sample = dataset[index]
            image = sample["image"]
            if not image.flags.writeable:  # torch.from_numpy warns about read-only arrays
                image = image.copy()
            prediction = segment(model, image, config, device).cpu()
            label = torch.from_numpy(np.asarray(sample["label"]).astype(np.int64))
            metric.update(prediction, label)
            if first is not None and index < also_first:
                first.update(prediction, label)
            if position in keep_positions:
                kept.append((sample["image"], np.asarray(sample["label"]), prediction.numpy().astype(np.uint8)))
    finally:
        model.train(was_training)
    for summed in (metric, first):
        if summed is not None and env is not None and env.enabled:
            confusion = summed.confusion.to(env.device)
            all_reduce_sum(confusion, env)
            summed.confusion = confusion.cpu()
    results = metric.compute()
    if first is not None:
        results["first_images"] = {**first.compute(), "num_images": min(also_first, total)}
    results["num_images"] = total
    results["seconds"] = time.perf_counter() - start
    results["majority_class_mIoU"] = majority_class_miou(metric.confusion)
    results["confusion"] = metric.confusion  # [target, prediction] pixel counts, summed over processes
    if keep_predictions:
        results["predictions"] = kept
    return results


def majority_class_miou(confusion: torch.Tensor) -> float:
    """mIoU of always predicting the most frequent class: the trivial baseline ("chance")."""
    per_class = confusion.sum(1).double()  # target pixels of each class
    present = int((per_class > 0).sum())
    if present == 0:
        return math.nan
    return 100.0 * (per_class.max() / per_class.sum()).item() / present


def format_results(results: Dict[str, Any]) -> str:
    """The per-class table and the summary line."""
    names = results.get("class_names") or [str(i) for i in range(len(results["IoU"]))]
    width = max(8, *(len(n) for n in names))
    fmt = lambda v: f"{v:6.2f}" if not math.isnan(v) else "   nan"  # noqa: E731
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}"]
    lines += [f"{n:<{width}}  {fmt(i)}  {fmt(a)}" for n, i, a in zip(names, results["IoU"], results["Acc"])]
    lines.append(f"aAcc {fmt(results['aAcc'])}  mIoU {fmt(results['mIoU'])}  mAcc {fmt(results['mAcc'])}"
                 f"  ({results.get('num_images', '?')} images)")
    return "\n".join(lines)


def results_for_json(results: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """A JSON-safe copy (NaN -> null) with a per-class table, without the kept predictions."""
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    names = results.get("class_names") or [str(i) for i in range(len(results["IoU"]))]
    out = {key: clean(results[key]) for key in ("aAcc", "mIoU", "mAcc") if key in results}
    out["per_class"] = [{"class": n, "IoU": clean(i), "Acc": clean(a)}
                        for n, i, a in zip(names, results["IoU"], results["Acc"])]
    for key in ("num_images", "seconds", "majority_class_mIoU"):
        if key in results:
            out[key] = clean(results[key])
    out.update(extra)
    return out


def write_results(path, results: Dict[str, Any], **extra: Any) -> Path:
    from .checkpoint import _atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results_for_json(results, **extra), indent=2) + "\n"
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path
