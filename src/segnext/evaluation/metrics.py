"""Segmentation metrics with MMSegmentation's conventions (aAcc, mIoU, mAcc, per-class IoU/Acc;
also Dice, precision and recall)."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..constants import DEFAULT_METRIC_COLUMNS, IGNORE_INDEX, PER_CLASS_METRICS


class SegmentationMetric:
    """Accumulates a confusion matrix over (prediction, target) label maps.

    `update(pred, target)` takes integer tensors (or arrays) of shape (B, H, W) or (H, W).
    `compute()` returns percentages: aAcc, mIoU, mAcc and per-class IoU/Acc lists, and per-class
    Dice, Precision and Recall lists with their means (mDice, mPrecision, mRecall). A value that is
    0/0 is NaN and is left out of the means, as MMSegmentation does: IoU and Dice of a class absent
    from target and prediction, Acc and Recall of a class absent from the target, Precision of a
    class never predicted.

    A class's F1 score is its Dice. (MMSegmentation's `mFscore` computes it from precision and
    recall, which gives 0/0 = NaN for a class that is predicted only where it is not, and leaves that
    class out of the mean: its mFscore can read higher than its mDice for that reason alone.)
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, class_names: Optional[Sequence[str]] = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # [target, pred]

    def reset(self) -> None:
        self.confusion.zero_()

    def update(self, pred, target) -> torch.Tensor:
        """Add the pixels of `pred` against `target`; returns their own confusion matrix [target, pred]."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError("SegmentationMetric.update expects integer label maps; take argmax of logits first")
        pred = pred.reshape(-1).to("cpu", torch.int64)
        target = target.reshape(-1).to("cpu", torch.int64)
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        k = self.num_classes
        bad = target[(target < 0) | (target >= k)]
        if bad.numel():
            raise ValueError(f"target holds label values {sorted(set(bad.unique().tolist()))[:10]} outside 0..{k - 1} "
                             f"that are not the ignore index {self.ignore_index}")
        if pred.numel() and (pred.min() < 0 or pred.max() >= k):
            raise ValueError(f"prediction holds label values outside 0..{k - 1}")
        confusion = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        self.confusion += confusion
        return confusion

    def merge(self, other: SegmentationMetric) -> None:
        self.confusion += other.confusion

    def compute(self) -> Dict[str, object]:
        return area_scores(class_areas(self.confusion), self.class_names)

    def table(self, results: Optional[Dict[str, object]] = None,
              columns: Sequence[str] = DEFAULT_METRIC_COLUMNS) -> str:
        """A per-class text table of `columns` followed by the summary line."""
        return format_results(results or self.compute(), columns)


class ConfidenceCalibration:
    """How far the model's confidence can be trusted: the labelled pixels counted by their confidence
    (the probability of their predicted label) in `bins` equal bins of [0, 1].

    `update(pred, confidence, target)` takes a label map, its confidence map and the target, of one
    shape. `compute()` returns, for each bin, its pixels, their accuracy and their mean confidence (a
    reliability diagram); the expected calibration error `ECE` (Naeini et al., AAAI 2015: the mean of
    |accuracy - mean confidence| over the bins, weighted by their pixels; 0 where the confidence is
    the accuracy); and under each of `thresholds` (multiples of 1 / bins), the share of pixels, their
    error rate, the error rate of the others and the share of all errors they hold: what a person who
    checks the unsure pixels would find. All in percent. `counts` (pixels, correct pixels, summed
    confidence per bin; float64) is all there is to sum over processes."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, bins: int = 20, thresholds: Sequence[float] = (0.5, 0.7, 0.9)):
        edges = [threshold * bins for threshold in thresholds]
        if bins < 1 or any(abs(edge - round(edge)) > 1e-9 or not 0 < edge < bins for edge in edges):
            raise ValueError(f"thresholds {tuple(thresholds)} must be multiples of 1 / bins (bins={bins}) "
                             f"inside (0, 1)")
        self.ignore_index = ignore_index
        self.bins = bins
        self.thresholds = tuple(thresholds)
        self.counts = torch.zeros(3, bins, dtype=torch.float64)

    @classmethod
    def from_computed(cls, computed: Dict[str, Any], ignore_index: int = IGNORE_INDEX) -> ConfidenceCalibration:
        """The counts behind `computed` (a `compute()`, as results JSONs keep it), read back from its
        bins: to sum the calibrations of evaluations of other images (the folds of a cross-validation)."""
        rows = computed["bins"]
        calibration = cls(ignore_index, len(rows), [row["below"] for row in computed["under"]])
        for index, row in enumerate(rows):
            pixels = row["pixels"]
            if pixels:  # an empty bin's accuracy and confidence are NaN (null in JSON)
                calibration.counts[:, index] = torch.tensor([pixels, round(row["accuracy"] * pixels / 100.0),
                                                             row["mean_confidence"] * pixels / 100.0])
        return calibration

    def update(self, pred, confidence, target) -> None:
        pred, confidence, target = (torch.as_tensor(x) for x in (pred, confidence, target))
        if not pred.shape == confidence.shape == target.shape:
            raise ValueError(f"prediction, confidence and target must have one shape, got {tuple(pred.shape)}, "
                             f"{tuple(confidence.shape)} and {tuple(target.shape)}")
        pred, confidence, target = (x.reshape(-1).cpu() for x in (pred, confidence, target))
        valid = target != self.ignore_index
        confidence = confidence[valid].double()
        correct = (pred[valid].long() == target[valid].long()).double()
        bins = (confidence * self.bins).long().clamp_(0, self.bins - 1)
        self.counts[0] += torch.bincount(bins, minlength=self.bins).double()
        self.counts[1] += torch.bincount(bins, weights=correct, minlength=self.bins)
        self.counts[2] += torch.bincount(bins, weights=confidence, minlength=self.bins)

    def compute(self) -> Dict[str, Any]:
        pixels, correct, summed = self.counts.tolist()
        total, right = sum(pixels), sum(correct)

        def percent(part: float, whole: float) -> float:
            return 100.0 * part / whole if whole else math.nan

        under = []
        for threshold in self.thresholds:
            edge = round(threshold * self.bins)
            count, wrong = sum(pixels[:edge]), sum(pixels[:edge]) - sum(correct[:edge])
            under.append({"below": threshold, "pixels": percent(count, total), "error_rate": percent(wrong, count),
                          "others_error_rate": percent(total - right - wrong, total - count),
                          "share_of_errors": percent(wrong, total - right)})
        return {"pixels": int(total), "accuracy": percent(right, total), "mean_confidence": percent(sum(summed), total),
                "ECE": percent(sum(abs(c - s) for c, s in zip(correct, summed)), total),
                "bins": [{"from": b / self.bins, "to": (b + 1) / self.bins, "pixels": int(pixels[b]),
                          "accuracy": percent(correct[b], pixels[b]),
                          "mean_confidence": percent(summed[b], pixels[b])} for b in range(self.bins)],
                "under": under}


def format_calibration(calibration: dict, table: bool = True) -> str:
    """`ConfidenceCalibration.compute()` as text: the mean confidence against the accuracy, then
    (with `table`) each confidence bin's accuracy, and the pixels under each threshold and the errors
    they hold."""
    summary = (f"calibration: over {calibration['pixels']:,} labelled pixels the mean confidence is "
               f"{calibration['mean_confidence']:.1f}% for an accuracy of {calibration['accuracy']:.1f}%; "
               f"ECE {calibration['ECE']:.2f}% (0: the confidence is the accuracy)")
    if not table:
        return summary
    lines = [summary, "  confidence   pixels   right"]
    for row in calibration["bins"]:
        if row["pixels"]:
            share = 100.0 * row["pixels"] / calibration["pixels"]
            lines.append(f"  {100 * row['from']:3.0f}-{100 * row['to']:3.0f}%   {share:6.1f}%  {row['accuracy']:5.1f}%")
    for row in calibration["under"]:
        lines.append(f"  under {100 * row['below']:.0f}% confidence: {row['pixels']:.1f}% of the pixels, "
                     f"{row['error_rate']:.1f}% of them wrong (the others {row['others_error_rate']:.1f}%): "
                     f"{row['share_of_errors']:.1f}% of all errors")
    return "\n".join(lines)


def format_results(results: Dict[str, Any], columns: Sequence[str] = DEFAULT_METRIC_COLUMNS,
                   iou_interval: Optional[Sequence[Sequence[float]]] = None) -> str:
    """The per-class table of `columns` (of PER_CLASS_METRICS) and the summary line (aAcc and the
    means of those columns) of `SegmentationMetric.compute()`'s results; `iou_interval`: each
    class's [low, high] (`bootstrap_interval`'s `IoU`), a column after the others."""
    unknown = [column for column in columns if column not in PER_CLASS_METRICS]
    if unknown or not columns:
        raise ValueError(f"metrics {unknown or list(columns)}: choose from {', '.join(PER_CLASS_METRICS)}")
    names = results.get("class_names") or [str(i) for i in range(len(results["IoU"]))]
    width = max(8, *(len(n) for n in names))
    widths = [max(6, len(column)) for column in columns]
    lines = [f"{'class':<{width}}" + "".join(f"  {column:>{w}}" for column, w in zip(columns, widths))
             + ("  IoU 95% interval" if iou_interval is not None else "")]
    for index, name in enumerate(names):
        interval = ""
        if iou_interval is not None:
            low, high = iou_interval[index]
            interval = f"  {_fmt(low)} - {_fmt(high).strip()}" if not math.isnan(low) else "     nan"
        lines.append(f"{name:<{width}}" + "".join(f"  {_fmt(results[column][index]):>{w}}"
                                                  for column, w in zip(columns, widths)) + interval)
    count = f"  ({results['num_images']} images)" if "num_images" in results else ""
    means = "".join(f"  m{column} {_fmt(results[f'm{column}'])}" for column in columns)
    lines.append(f"aAcc {_fmt(results['aAcc'])}{means}{count}")
    return "\n".join(lines)


def most_confused(confusion, class_names: Sequence[str], top: int = 5) -> List[Tuple[str, str, float]]:
    """The `top` confusions, largest first: (class, the class predicted instead, the share of the
    class's labelled pixels predicted as it, in %), from a [target, prediction] confusion matrix."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    shares = 100.0 * confusion / confusion.sum(1, keepdim=True).clamp(min=1)
    shares.fill_diagonal_(0)
    order = torch.argsort(shares.flatten(), descending=True)[:top]
    k = len(confusion)
    return [(class_names[i // k], class_names[i % k], shares.flatten()[i].item())
            for i in order.tolist() if shares.flatten()[i] > 0]


def class_areas(confusion: torch.Tensor) -> torch.Tensor:
    """(3, K) pixel counts of each class from a [target, prediction] confusion matrix: labelled and
    predicted as it (the intersection), labelled as it, predicted as it. Enough for every per-class
    metric; the rows of several images are kept where their whole matrices would be K times larger."""
    return torch.stack([confusion.diag(), confusion.sum(1), confusion.sum(0)])


def area_scores(areas: torch.Tensor, class_names: Sequence[str]) -> Dict[str, Any]:
    """`SegmentationMetric.compute()`'s results from the `class_areas` of the images scored (summed):
    aAcc, per class IoU, Acc, Dice, Precision, Recall (0/0: NaN) and their means over the classes
    that are not NaN, in percent; `class_names`."""
    intersect, area_target, area_pred = torch.as_tensor(areas).double()
    per_class = {
        "IoU": intersect / (area_target + area_pred - intersect),  # 0/0 -> NaN
        "Acc": intersect / area_target,
        "Dice": 2 * intersect / (area_target + area_pred),
        "Precision": intersect / area_pred,
        "Recall": intersect / area_target,  # the Acc, under the name that goes with precision
    }
    total = area_target.sum()
    results: Dict[str, Any] = {"aAcc": 100.0 * (intersect.sum() / total).item() if total > 0 else math.nan}
    results.update({f"m{name}": 100.0 * _nanmean(values) for name, values in per_class.items()})
    results.update({name: [100.0 * v for v in values.tolist()] for name, values in per_class.items()})
    results["class_names"] = list(class_names)
    return results


def image_scores(areas: torch.Tensor) -> Dict[str, Any]:
    """The scores of one image from its `class_areas`, in percent: `pixels` (labelled), `aAcc`, `IoU`
    per class (NaN for a class in neither its label nor its prediction) and `mIoU`, their mean over
    the classes in its label or its prediction, so that a class predicted where there is none
    counts (with IoU 0). NaN where the image has no labelled pixel."""
    intersect, area_target, area_pred = torch.as_tensor(areas).double()
    iou = 100.0 * intersect / (area_target + area_pred - intersect)
    labelled = area_target.sum()
    return {"pixels": int(labelled), "aAcc": 100.0 * (intersect.sum() / labelled).item() if labelled > 0 else math.nan,
            "mIoU": _nanmean(iou), "IoU": iou.tolist()}


def category_scores(confusion: torch.Tensor, class_names: Sequence[str],
                    categories: Dict[str, Sequence[str]]) -> Dict[str, Any]:
    """The IoU of each category (a group of classes scored as one, as the Cityscapes benchmark's "IoU
    category"), in percent, from a [target, prediction] confusion matrix: `category_IoU` by name (NaN
    for a category in neither the labels nor the predictions) and `category_mIoU`, their mean. Pixels
    of a class in no category count in none."""
    index = {name: k for k, name in enumerate(class_names)}
    membership = torch.zeros(len(class_names), len(categories), dtype=torch.float64)
    for column, members in enumerate(categories.values()):
        for name in members:
            membership[index[name], column] = 1.0
    merged = membership.T @ torch.as_tensor(confusion).double() @ membership
    intersect, target, predicted = merged.diag(), merged.sum(1), merged.sum(0)
    iou = 100.0 * intersect / (target + predicted - intersect)
    return {"category_IoU": dict(zip(categories, iou.tolist())), "category_mIoU": _nanmean(iou)}


def format_categories(results: Dict[str, Any]) -> str:
    """`category_scores` as one line."""
    shown = ", ".join(f"{name} {iou:.1f}" for name, iou in results["category_IoU"].items())
    return f"category mIoU {results['category_mIoU']:.2f} ({shown})"


def majority_class_miou(confusion: torch.Tensor) -> float:
    """mIoU of always predicting the most frequent class: the trivial baseline ("chance")."""
    per_class = confusion.sum(1).double()  # target pixels of each class
    present = int((per_class > 0).sum())
    if present == 0:
        return math.nan
    return 100.0 * (per_class.max() / per_class.sum()).item() / present


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return kept.mean().item() if kept.numel() else math.nan


def _fmt(value: float) -> str:
    return f"{value:6.2f}" if not math.isnan(value) else "   nan"
