"""The run report: WORK_DIR/report.png, and report.html with the same content for sharing (one
self-contained file, images embedded).

It is drawn from the files a run leaves, never from memory, so `segnext report WORK_DIR` redraws
it at any time, also while the run is going (curves only until the run ends):

    config.yaml        the run's name, dataset and bounds (max_iters, max_time_minutes)
    log.jsonl          training loss and learning rate, every evaluation (iteration, mIoU, images used)
    results.json       the final evaluation, the majority-class baseline, why the run stopped, best.pt
    per_image.csv      each val image's scores in the final evaluation, the hardest (lowest mIoU) first
    report_data/       written at the end of a run by `save_report_data`:
      final_eval.json  the final confusion matrix, class names, palette, ignore index
      samples/         a few val images with their label and prediction (NN_image.jpg, NN_label.png,
                       NN_prediction.png; the PNGs hold class ids, palettised)
      hardest/         the hardest val images drawn by `draw_hardest` (NN_<image>.jpg: image and
                       ground truth, prediction and errors)

What it shows: the stop reason ("time budget reached at 432/500 iterations"), the final metrics next
to the majority-class baseline, which evaluations used how many images, the loss, learning-rate and
mIoU curves, per-class IoU as bars (weakest first, in the class colours), the normalised confusion
matrix, and for each sample the image, the ground truth and the prediction as plain colour masks
(exactly the legend's colours) and an error map (red where prediction and label disagree); the HTML
also lists the hardest val images and shows them (where to look for wrong labels).

matplotlib draws the PNG and the charts of the HTML, on its own `Figure` objects (no pyplot, no
backend change); without it the HTML is still written, with its tables and images.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import itertools
import json
import math
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from PIL import Image, ImageDraw

from ..data.io import read_image, read_label, write_label
from ..data.palette import colorize, default_palette
from ..utils import atomic_write, json_safe
from .loggers import read_log

REPORT_DATA = "report_data"
FINAL_EVAL = "final_eval.json"
PER_IMAGE = "per_image.csv"  # `segnext.evaluation.write_per_image`'s table of the final evaluation
HARDEST_SHOWN = 5
HARDEST = "hardest"  # report_data/hardest/: the HARDEST_SHOWN hardest val images, drawn
HEADER_WIDTH = 180  # characters of a line under the PNG's title (16 inches at 10.5 pt)
MAX_BARS = 40  # more classes than this: the bar chart shows the weakest WEAKEST_SHOWN
MAX_MATRIX = 30  # more classes than this: the confusion matrix shows the weakest WEAKEST_SHOWN
WEAKEST_SHOWN = 25
ERROR_COLOUR = (230, 25, 25)
IGNORE_SHADES = (200, 235)  # the checkerboard of pixels without a label (not scored)
HTML_IMAGE_WIDTH = 480  # pixels of each sample picture in the HTML


# --------------------------------------------------------------------------------------------------
# What the run leaves for the report


def save_report_data(work_dir: Path, results: Dict[str, Any], palette: Optional[Sequence[Sequence[int]]],
                     class_names: Optional[Sequence[str]], ignore_index: int) -> Path:
    """WORK_DIR/report_data/: the final confusion matrix and the kept predictions of `results`
    (from `evaluate(..., keep_predictions=k)`), so that the report can be redrawn from files."""
    folder = Path(work_dir) / REPORT_DATA
    samples = folder / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    for old in samples.iterdir():  # an earlier session of this run may have kept more samples
        old.unlink()
    confusion = np.asarray(results["confusion"], dtype=np.int64)
    num_classes = len(confusion)
    palette = [list(map(int, c)) for c in palette] if palette else default_palette(num_classes)
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    listed = []
    for index, (image, label, prediction) in enumerate(results.get("predictions", [])):
        stem = f"{index:02d}"
        save_jpeg(samples / f"{stem}_image.jpg", image)
        write_label(samples / f"{stem}_label.png", np.asarray(label), palette)
        write_label(samples / f"{stem}_prediction.png", np.asarray(prediction), palette)
        listed.append({name: f"samples/{stem}_{name}.{'jpg' if name == 'image' else 'png'}"
                       for name in ("image", "label", "prediction")})
    text = json.dumps(json_safe({"class_names": names, "palette": palette, "ignore_index": int(ignore_index),
                                 "confusion": confusion.tolist(), "samples": listed})) + "\n"
    atomic_write(folder / FINAL_EVAL, lambda temporary: temporary.write_text(text))
    return folder


def draw_hardest(model, dataset, per_image: Sequence[Dict[str, Any]], test_config, device, count: int,
                 folder: Path) -> List[Path]:
    """The `count` hardest images of `per_image` (`evaluate(..., per_image=True)`'s) segmented again
    and drawn (`comparison_picture`) as NN_<image name>.jpg in `folder`, replacing the pictures of an
    earlier evaluation there; returns the files written (none when no image has a labelled pixel)."""
    from torch.utils.data import Subset

    from ..evaluation import evaluate, hardest_first

    chosen = [scores for scores in hardest_first(per_image) if scores["pixels"]][:count]
    folder = Path(folder)
    for old in folder.glob("[0-9][0-9]*_*.jpg"):
        old.unlink()
    if not chosen:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    again = evaluate(model, Subset(dataset, [scores["index"] for scores in chosen]), test_config,
                     num_classes=dataset.num_classes, ignore_index=dataset.ignore_index,
                     class_names=dataset.class_names, device=device, keep_predictions=len(chosen))
    width = max(2, len(str(len(chosen))))
    written = []
    for rank, (scores, (image, label, prediction)) in enumerate(zip(chosen, again["predictions"]), start=1):
        written.append(folder / f"{rank:0{width}d}_{Path(str(scores.get('image', scores['index']))).stem}.jpg")
        save_jpeg(written[-1], comparison_picture(image, label, prediction, dataset.palette, dataset.ignore_index))
    return written


def save_jpeg(path: Path, image: np.ndarray) -> None:
    picture = Image.fromarray(np.ascontiguousarray(image))
    atomic_write(path, lambda temporary: picture.save(temporary, format="JPEG", quality=90))


@dataclass
class RunFiles:
    """Everything the report shows, as read from a work dir."""

    work_dir: Path
    config: Dict[str, Any]
    train: List[Dict[str, Any]]  # log records of type "train"
    evals: List[Dict[str, Any]]  # log records of type "eval"
    results: Optional[Dict[str, Any]]  # results.json (None while the run goes)
    class_names: List[str]
    palette: List[List[int]]
    ignore_index: int = 255
    confusion: Optional[np.ndarray] = None  # [ground truth, prediction] pixel counts of the final evaluation
    samples: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    diverged: Optional[Dict[str, Any]] = None
    hardest: List[Dict[str, str]] = field(default_factory=list)  # the first rows of per_image.csv
    hardest_pictures: List[Path] = field(default_factory=list)  # report_data/hardest/*.jpg, hardest first


def read_run(work_dir: Path) -> RunFiles:
    """The files of a run folder (see the module docstring); what is missing is left out."""
    work_dir = Path(work_dir)
    config = _read_yaml(work_dir / "config.yaml")
    records = read_log(work_dir / "log.jsonl")
    results = _read_json(work_dir / "results.json")
    final = _read_json(work_dir / REPORT_DATA / FINAL_EVAL) or {}
    evals = [r for r in records if r.get("type") == "eval"]
    num_classes = len(final.get("confusion") or []) or len((results or {}).get("per_class") or []) \
        or (len(evals[-1].get("IoU") or []) if evals else 0)
    names = final.get("class_names") or [row["class"] for row in (results or {}).get("per_class", [])] \
        or _dataset_class_names(config) or [str(i) for i in range(num_classes)]
    palette = final.get("palette") or _dataset_palette(config) or default_palette(max(num_classes, len(names)))
    samples = []
    for entry in final.get("samples", []):
        try:
            samples.append((read_image(work_dir / REPORT_DATA / entry["image"]),
                            read_label(work_dir / REPORT_DATA / entry["label"]),
                            read_label(work_dir / REPORT_DATA / entry["prediction"])))
        except (OSError, ValueError, KeyError):  # a sample removed by hand: draw the others
            continue
    confusion = np.asarray(final["confusion"], dtype=np.int64) if final.get("confusion") else None
    diverged = next((r for r in records if r.get("type") == "diverged"), None)
    return RunFiles(work_dir, config, [r for r in records if r.get("type") == "train" and r.get("loss") is not None],
                    evals, results, list(names), [list(c) for c in palette], int(final.get("ignore_index", 255)),
                    confusion, samples, diverged, _read_hardest(work_dir / PER_IMAGE),
                    sorted((work_dir / REPORT_DATA / HARDEST).glob("[0-9][0-9]*_*.jpg")))


def _read_hardest(path: Path) -> List[Dict[str, str]]:
    """The first HARDEST_SHOWN scored rows of a per-image table (it is written hardest first)."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return list(itertools.islice((row for row in csv.DictReader(file) if row.get("mIoU")), HARDEST_SHOWN))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def _read_json(path: Path) -> Optional[dict]:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _dataset_spec(config: dict):
    """The dataset spec named by a run's config, for class names before the run has ended."""
    from ..data.datasets import get_spec

    data = config.get("data") or {}
    try:
        return get_spec(str(data.get("dataset")), data.get("root") or None)
    except (ValueError, OSError):
        return None


def _dataset_class_names(config: dict) -> List[str]:
    spec = _dataset_spec(config)
    return list(spec.class_names) if spec is not None else []


def _dataset_palette(config: dict) -> List[List[int]]:
    spec = _dataset_spec(config)
    return [list(c) for c in spec.palette] if spec is not None else []


# --------------------------------------------------------------------------------------------------
# The words of the report


def title(run: RunFiles) -> str:
    model = (run.config.get("model") or {}).get("name", "model")
    data = run.config.get("data") or {}
    dataset = data.get("dataset", "?")
    if dataset == "folder" and data.get("root"):
        dataset = f"folder ({data['root']})"
    if run.results is not None:
        results = run.results
        return f"{model} on {dataset}: mIoU {_number(results.get('mIoU'))} at iteration {results.get('iteration')}"
    return f"{model} on {dataset}: not finished (iteration {_last_iteration(run)})"


def stop_text(run: RunFiles) -> str:
    """Why and where the run stopped, against its bounds, and the training files it skipped."""
    skipped = len((run.results or {}).get("unreadable_training_files") or [])
    return _stop_reason(run) + (f"; {skipped} unreadable training file(s) skipped (results.json lists them)"
                                if skipped else "")


def _stop_reason(run: RunFiles) -> str:
    train = run.config.get("train") or {}
    max_iters, budget = train.get("max_iters"), train.get("max_time_minutes")
    results = run.results or {}
    iteration = results.get("iteration", _last_iteration(run))
    of = f"{iteration}/{max_iters}" if max_iters else f"{iteration}"
    seconds = results.get("train_seconds") or (run.train[-1].get("elapsed_s") if run.train else None)
    took = f" in {_duration(seconds)}" if seconds else ""
    reason = results.get("stop_reason")
    if run.diverged is not None and run.results is None:
        return f"Diverged: the loss became {run.diverged.get('loss')} at iteration {run.diverged.get('iter')}"
    if reason == "time limit":
        return f"Stopped: time budget reached at {of} iterations ({_minutes(budget)}){took}"
    if reason == "finished":
        return f"Finished: {of} iterations{took}"
    if run.results is not None:
        return f"Stopped at iteration {of}{took}"
    bound = f" (time budget {_minutes(budget)})" if budget else ""
    return f"Not finished: last logged iteration {of}{bound}{took}; the report is complete once the run ends"


def metrics_text(run: RunFiles) -> str:
    results = run.results
    if results is None:
        return "No final evaluation yet (results.json)."
    scores = [f"{key} {_number(results.get(key))}" for key in ("mIoU", "aAcc", "mAcc")]
    interval = results.get("interval") or {}
    if interval.get("mIoU") and None not in interval["mIoU"]:
        units = "groups of val images" if interval.get("unit") == "group" else "val images"
        scores[0] += (f" ({100 * interval.get('level', 0.95):.0f}% interval {_number(interval['mIoU'][0])}-"
                      f"{_number(interval['mIoU'][1])} over resampled {units})")
    scores = ", ".join(scores)
    return (f"Final evaluation on all {results.get('num_images', '?')} val images: {scores}; always predicting the "
            f"most frequent class (baseline): mIoU {_number(results.get('majority_class_mIoU'))}")


def facts(run: RunFiles) -> List[str]:
    """The lines under the title: how the run stopped, its scores (and what they are worth, when val
    is training data or shares its sequences), its evaluations."""
    notes = [(run.results or {}).get("validation_note"), ((run.results or {}).get("interval") or {}).get("note")]
    calibration = (run.results or {}).get("calibration")
    confidence = []
    if calibration:
        from ..evaluation import format_calibration

        summary = format_calibration(calibration, table=False)
        confidence = [summary[0].upper() + summary[1:]]
    return ([stop_text(run), metrics_text(run)] + confidence + [f"Note: {note}" for note in notes if note]
            + [evaluations_text(run)])


def evaluations_text(run: RunFiles) -> str:
    """Which evaluations used how many images, and which one best.pt holds."""
    periodic = [r for r in run.evals if not r.get("final")]
    parts = []
    for count in sorted({r.get("num_images") for r in periodic}, key=lambda n: (n is None, n)):
        group = [r for r in periodic if r.get("num_images") == count]
        its = [r["iter"] for r in group]
        span = f"iteration {its[0]}" if len(its) == 1 else f"iterations {its[0]}-{its[-1]}"
        parts.append(f"{len(group)} periodic on the first {count} val images ({span})")
    final = [r for r in run.evals if r.get("final")]
    if final:
        parts.append(f"final on all {final[-1].get('num_images')} at iteration {final[-1]['iter']}")
    text = "Evaluations: " + ("; ".join(parts) if parts else "none yet")
    best = (run.results or {}).get("best") or {}
    if best.get("mIoU") is not None:
        text += (f". best.pt: mIoU {_number(best['mIoU'])} at iteration {best.get('iteration')} "
                 f"(on {best.get('num_images')} images)")
    return text


def class_scores(run: RunFiles) -> Tuple[List[float], List[float]]:
    """Per-class IoU and Acc of the final evaluation, else of the latest one (NaN: no pixels)."""
    if run.results and run.results.get("per_class"):
        rows = run.results["per_class"]
        return [_nan(r.get("IoU")) for r in rows], [_nan(r.get("Acc")) for r in rows]
    if run.evals:
        return [_nan(v) for v in run.evals[-1].get("IoU") or []], []
    return [], []


def weakest_first(iou: Sequence[float], limit: int) -> List[int]:
    """Class indices to show: all in class order when there are at most `limit`, else the
    WEAKEST_SHOWN lowest IoUs, weakest first. Classes without val pixels (NaN) are left out."""
    scored = [i for i, v in enumerate(iou) if not math.isnan(v)]
    if len(iou) <= limit:
        return scored
    return sorted(scored, key=lambda i: iou[i])[:WEAKEST_SHOWN]


# --------------------------------------------------------------------------------------------------
# Pictures of the samples (the same arrays go into the PNG and the HTML)


def ignored_pattern(shape: Tuple[int, int]) -> np.ndarray:
    """A light checkerboard (H, W, 3) for pixels without a label: unlike any class colour."""
    cell = max(4, min(shape) // 24)
    rows, cols = np.indices(shape)
    shades = np.asarray(IGNORE_SHADES, dtype=np.uint8)[((rows // cell + cols // cell) % 2)]
    return np.repeat(shades[:, :, None], 3, axis=2)


def colour_mask(labels: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int) -> np.ndarray:
    """Labels as plain class colours (no blending: exactly the legend's), unlabelled pixels checkered."""
    labels = np.asarray(labels)
    picture = colorize(labels, palette, ignore_index)
    ignored = labels == ignore_index
    picture[ignored] = ignored_pattern(labels.shape)[ignored]
    return picture


def error_map(image: np.ndarray, labels: np.ndarray, prediction: np.ndarray,
              ignore_index: int) -> Tuple[np.ndarray, float]:
    """The image dimmed to grey, red where prediction and label disagree, unlabelled pixels
    checkered; and the share of labelled pixels that are wrong (percent)."""
    labels, prediction = np.asarray(labels), np.asarray(prediction)
    grey = image.astype(np.float32).mean(axis=2) * 0.45 + 70
    picture = np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    labelled = labels != ignore_index
    wrong = labelled & (labels != prediction)
    picture[wrong] = ERROR_COLOUR
    picture[~labelled] = ignored_pattern(labels.shape)[~labelled]
    return picture, 100.0 * wrong.sum() / max(int(labelled.sum()), 1)


def sample_pictures(run: RunFiles, image, labels, prediction) -> List[Tuple[np.ndarray, str]]:
    """(picture, caption) for the image, ground truth, prediction and errors of one sample."""
    errors, share = error_map(image, labels, prediction, run.ignore_index)
    return [(image, "image"), (colour_mask(labels, run.palette, run.ignore_index), "ground truth"),
            (colour_mask(prediction, run.palette, run.ignore_index), "prediction"),
            (errors, f"errors (red): {share:.1f}% of labelled pixels")]


MIN_PANEL_WIDTH = 240  # the widest caption, "errors (red): 100.0% of labelled pixels", fits


def comparison_picture(image: np.ndarray, labels: np.ndarray, prediction: np.ndarray,
                       palette: Sequence[Sequence[int]], ignore_index: int, longest_side: int = 1024) -> np.ndarray:
    """One picture of a sample: the image and its ground truth above, the prediction and the errors
    below, each captioned and scaled down to at most `longest_side` pixels (labels by their nearest
    pixel, so the class colours stay exact); an image narrower than its captions is enlarged by a whole
    factor, each pixel a block."""
    errors, share = error_map(image, labels, prediction, ignore_index)
    height, width = np.asarray(labels).shape
    scale = min(1.0, longest_side / max(height, width))
    if width < MIN_PANEL_WIDTH:
        scale = max(1, min(math.ceil(MIN_PANEL_WIDTH / width), longest_side // max(height, width)))
    enlarge_image = Image.NEAREST if scale > 1 else Image.BILINEAR
    panels = [(image, "image", enlarge_image),
              (colour_mask(labels, palette, ignore_index), "ground truth", Image.NEAREST),
              (colour_mask(prediction, palette, ignore_index), "prediction", Image.NEAREST),
              (errors, f"errors (red): {share:.1f}% of labelled pixels", Image.NEAREST)]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    caption = 14
    grid = Image.new("RGB", (2 * size[0], 2 * (size[1] + caption)), "white")
    draw = ImageDraw.Draw(grid)
    for position, (picture, text, resample) in enumerate(panels):
        left, top = (position % 2) * size[0], (position // 2) * (size[1] + caption)
        grid.paste(Image.fromarray(np.ascontiguousarray(picture)).resize(size, resample), (left, top + caption))
        draw.text((left + 3, top + 1), text, fill="black")
    return np.asarray(grid)


def classes_in_samples(run: RunFiles) -> List[int]:
    """Classes present in the samples' labels or predictions: the legend of the pictures."""
    present = set()
    for _, labels, prediction in run.samples:
        present.update(int(v) for v in np.unique(labels))
        present.update(int(v) for v in np.unique(prediction))
    return sorted(c for c in present if c < len(run.class_names) and c != run.ignore_index)


# --------------------------------------------------------------------------------------------------
# Drawing (matplotlib's object API: each chart draws on an Axes it is given)


def draw_loss(axis, run: RunFiles) -> None:
    if run.train:
        axis.plot([r["iter"] for r in run.train], [r["loss"] for r in run.train], color="tab:blue")
    axis.set(xlabel="iteration", ylabel="training loss", title="loss")
    axis.grid(alpha=0.3)


def draw_lr(axis, run: RunFiles) -> None:
    points = [r for r in run.train if r.get("lr") is not None]
    if points:
        axis.plot([r["iter"] for r in points], [r["lr"] for r in points], color="tab:purple")
    axis.set(xlabel="iteration", ylabel="learning rate (base)", title="learning rate")
    axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axis.grid(alpha=0.3)


def draw_miou(axis, run: RunFiles) -> None:
    """Periodic evaluations by the number of images they used, the final one, the baseline."""
    periodic = [r for r in run.evals if not r.get("final") and r.get("mIoU") is not None]
    for count in sorted({r.get("num_images") for r in periodic}, key=lambda n: (n is None, n)):
        group = [r for r in periodic if r.get("num_images") == count]
        axis.plot([r["iter"] for r in group], [r["mIoU"] for r in group], "o-", color="tab:green", markersize=4,
                  label=f"first {count} val images")
    for record in (r for r in run.evals if r.get("final") and r.get("mIoU") is not None):
        axis.plot([record["iter"]], [record["mIoU"]], "*", color="tab:red", markersize=13,
                  label=f"final, all {record.get('num_images')} images: {record['mIoU']:.1f}")
    baseline = (run.results or {}).get("majority_class_mIoU")
    if baseline is not None:
        axis.axhline(baseline, color="grey", linestyle="--", linewidth=1,
                     label=f"majority-class baseline {baseline:.1f}")
    axis.set(xlabel="iteration", ylabel="val mIoU (%)", title="validation mIoU")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower right")


def draw_class_iou(axis, run: RunFiles) -> None:
    """Horizontal bars, weakest at the top, each in its class colour."""
    iou, _ = class_scores(run)
    shown = sorted(weakest_first(iou, MAX_BARS), key=lambda i: iou[i])
    names = [_short(run.class_names[i]) if i < len(run.class_names) else str(i) for i in shown]
    colours = [np.asarray(run.palette[i % len(run.palette)]) / 255 for i in shown]
    positions = np.arange(len(shown))[::-1]  # the weakest on top
    axis.barh(positions, [iou[i] for i in shown], color=colours, edgecolor="black", linewidth=0.4)
    for y, i in zip(positions, shown):
        axis.text(iou[i] + 1, y, f"{iou[i]:.1f}", va="center", fontsize=7)
    axis.set_yticks(positions, names, fontsize=8 if len(shown) <= 25 else 6)
    axis.set_xlim(0, 105)
    axis.set_xlabel("IoU (%)")
    left_out = len(iou) - len(shown)
    axis.set_title("per-class IoU, weakest first" + (f" (the {len(shown)} weakest of {len(iou)}; "
                                                     f"all in report.html)" if left_out > 0 else ""))
    axis.grid(axis="x", alpha=0.3)


def draw_confusion(axis, figure, run: RunFiles) -> None:
    """Rows: ground truth, normalised to 1 (where each class's pixels went); columns: prediction."""
    iou, _ = class_scores(run)
    shown = weakest_first(iou, MAX_MATRIX)
    matrix = normalised_confusion(run.confusion)[np.ix_(shown, shown)]
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    names = [_short(run.class_names[i]) for i in shown]
    size = 8 if len(shown) <= 15 else 6
    axis.set_xticks(range(len(shown)), names, rotation=90, fontsize=size)
    axis.set_yticks(range(len(shown)), names, fontsize=size)
    axis.set(xlabel="prediction", ylabel="ground truth")
    if len(shown) <= 12:
        for row in range(len(shown)):
            for col in range(len(shown)):
                if matrix[row, col] >= 0.005:
                    axis.text(col, row, f"{100 * matrix[row, col]:.0f}", ha="center", va="center", fontsize=7,
                              color="white" if matrix[row, col] > 0.6 else "black")
    subset = f", the {len(shown)} weakest classes" if len(shown) < len(run.class_names) else ""
    axis.set_title(f"confusion matrix (rows normalised{subset})")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.02)


def normalised_confusion(confusion: np.ndarray) -> np.ndarray:
    """Each row (ground-truth class) divided by its pixel count; rows without pixels stay 0."""
    confusion = np.asarray(confusion, dtype=np.float64)
    return confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)


def legend_handles(run: RunFiles, classes: Sequence[int]):
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=np.asarray(run.palette[c % len(run.palette)]) / 255, edgecolor="black", linewidth=0.4,
                     label=run.class_names[c]) for c in classes]
    handles.append(Patch(facecolor=(IGNORE_SHADES[0] / 255,) * 3, edgecolor="black", linewidth=0.4, hatch="xx",
                         label="no label (not scored)"))
    handles.append(Patch(facecolor=np.asarray(ERROR_COLOUR) / 255, edgecolor="black", linewidth=0.4,
                         label="error (prediction != label)"))
    return handles


def draw_png(run: RunFiles, path: Path, dpi: int = 80) -> Optional[Path]:
    """The whole report as one picture; None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure  # drawn without pyplot: no GUI backend, no global state
    except ImportError:
        return None
    iou, _ = class_scores(run)
    with_classes = bool(iou) and run.confusion is not None
    bars = len(weakest_first(iou, MAX_BARS)) if iou else 0
    legend_classes = classes_in_samples(run)
    header_lines = [line for fact in facts(run) for line in textwrap.wrap(fact, HEADER_WIDTH)]
    header_height = 1.3 + 0.27 * max(0, len(header_lines) - 3)  # three lines fit the first 1.3 inches
    heights = [header_height, 3.2] + ([max(4.5, 0.2 * bars + 1.5)] if with_classes else []) + [3.2] * len(run.samples)
    if run.samples:
        heights.append(0.35 * (1 + (len(legend_classes) + 2) // 6))
    figure = Figure(figsize=(16, sum(heights)), layout="constrained")
    grid = figure.add_gridspec(len(heights), 12, height_ratios=heights)
    header = figure.add_subplot(grid[0, :])
    header.axis("off")
    header.text(0, 1, title(run), fontsize=15, fontweight="bold", va="top", transform=header.transAxes)
    header.text(0, 1 - 0.38 * 1.3 / header_height, "\n".join(header_lines), fontsize=10.5, va="top",
                transform=header.transAxes, linespacing=1.5)
    draw_loss(figure.add_subplot(grid[1, 0:4]), run)
    draw_lr(figure.add_subplot(grid[1, 4:8]), run)
    draw_miou(figure.add_subplot(grid[1, 8:12]), run)
    row = 2
    if with_classes:
        draw_class_iou(figure.add_subplot(grid[row, 0:5]), run)
        draw_confusion(figure.add_subplot(grid[row, 6:12]), figure, run)
        row += 1
    for image, labels, prediction in run.samples:
        for col, (picture, caption) in enumerate(sample_pictures(run, image, labels, prediction)):
            axis = figure.add_subplot(grid[row, 3 * col:3 * col + 3])
            axis.imshow(picture, interpolation="nearest")
            axis.set_title(caption, fontsize=10)
            axis.axis("off")
        row += 1
    if run.samples:
        # In the last row, which holds no axes: an empty axes there collapses matplotlib 3.9's layout.
        legend = figure.legend(handles=legend_handles(run, legend_classes), loc="center", ncol=6, fontsize=9,
                               frameon=False, bbox_to_anchor=(0.5, heights[-1] / 2 / sum(heights)))
        legend.set_in_layout(False)
    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=dpi, format="png"))
    def glyph(message) -> bool:  # "Glyph 22825 (...) missing from font(s) DejaVu Sans." ("current font" before 3.7)
        return str(message).startswith("Glyph ") and "missing from" in str(message)

    missing = sorted({str(w.message) for w in caught if glyph(w.message)})
    for other in (w for w in caught if not glyph(w.message)):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if missing:  # one warning, not one per character of every class name (CJK names, DejaVu fonts)
        characters = "".join(sorted({chr(int(code)) for m in missing for code in re.findall(r"Glyph (\d+)", m)}))
        warnings.warn(f"{path}: matplotlib's font lacks {len(characters)} character(s) of the class names "
                      f"({characters[:40]}), drawn as boxes there; the HTML report shows them", stacklevel=2)
    return path


# --------------------------------------------------------------------------------------------------
# The HTML version: the same content, one file


def write_html(run: RunFiles, path: Path) -> Path:
    """report.html: the facts, the charts (when matplotlib is installed), the per-class table, the
    confusion matrix and the samples, with every image embedded (base64)."""
    parts = [f"<h1>{_e(title(run))}</h1>", "<ul class='facts'>"]
    parts += [f"<li>{_e(line)}</li>" for line in facts(run)]
    if run.results and run.results.get("config"):
        parts.append(f"<li>{_e(str(run.results['config']))}</li>")
    parts.append("</ul>")
    charts = _chart_images(run)
    parts.append("<h2>Training</h2>")
    if charts:
        parts.append("<div class='row'>" + "".join(f"<img class='chart' alt='{_e(name)}' src='{uri}'>"
                                                   for name, uri in charts) + "</div>")
    else:
        parts.append("<p class='note'>The charts need matplotlib: pip install 'segnext[plot]', then "
                     "<code>segnext report RUN_DIR</code>.</p>")
    iou, acc = class_scores(run)
    if iou:
        parts += ["<h2>Per-class IoU, weakest first</h2>", _class_table(run, iou, acc)]
    if run.confusion is not None and iou:
        parts += ["<h2>Confusion matrix</h2>", _confusion_table(run, iou)]
    if (run.results or {}).get("per_group"):
        parts += ["<h2>Val images by group (sequence, city: read from the file names), lowest mIoU first</h2>",
                  _group_table(run.results["per_group"])]
    if run.hardest:
        parts += [f"<h2>The hardest val images (lowest mIoU; all in {PER_IMAGE})</h2>", _hardest_table(run)]
        parts += _hardest_pictures(run)
    if run.samples:
        parts.append("<h2>Predictions on val images</h2>")
        for image, labels, prediction in run.samples:
            cells = []
            for index, (picture, caption) in enumerate(sample_pictures(run, image, labels, prediction)):
                uri = _data_uri(picture, smooth=index == 0, photo=index in (0, 3))
                cells.append(f"<figure><img src='{uri}' alt='{_e(caption)}'><figcaption>{_e(caption)}</figcaption>"
                             f"</figure>")
            parts.append("<div class='samples'>" + "".join(cells) + "</div>")
        parts.append(_legend_html(run))
    parts.append(f"<p class='note'>Drawn from {_e(str(run.work_dir))}: log.jsonl, results.json and "
                 f"{REPORT_DATA}/. Redraw with <code>segnext report {_e(str(run.work_dir))}</code>.</p>")
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title(run))}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = Path(path)
    atomic_write(path, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    return path


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
ul.facts li { margin: 0.3em 0; } .note { color: #666; font-size: 0.9em; }
.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
img.chart { width: 100%; }
.samples { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin-bottom: 10px; }
.hardest { display: grid; grid-template-columns: repeat(2, 1fr); gap: 10px; margin-top: 10px; }
figure { margin: 0; } figure img { width: 100%; image-rendering: pixelated; }
figcaption { font-size: 0.85em; color: #444; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { padding: 2px 6px; }
table.classes td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 1em; height: 1em; border: 1px solid #000; vertical-align: middle; }
.bar { height: 0.9em; border: 1px solid #0006; }
table.confusion td { width: 2.2em; text-align: center; font-size: 0.8em; border: 1px solid #eee; }
table.confusion th.col { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; }
table.confusion th.rowname { text-align: right; font-weight: normal; }
.legend span { margin-right: 1.2em; white-space: nowrap; }
.ignored { background: repeating-conic-gradient(#c8c8c8 0 25%, #ebebeb 0 50%) 0 0 / 8px 8px; }
"""


def _chart_images(run: RunFiles) -> List[Tuple[str, str]]:
    """The loss, learning-rate and mIoU curves as one PNG data URI (none without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    figure = Figure(figsize=(15.6, 3.6), layout="constrained")
    for index, draw in enumerate((draw_loss, draw_lr, draw_miou)):
        draw(figure.add_subplot(1, 3, index + 1), run)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return [("loss, learning rate and validation mIoU",
             "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())]


def _class_table(run: RunFiles, iou: List[float], acc: List[float]) -> str:
    order = sorted(range(len(iou)), key=lambda i: (math.isnan(iou[i]), iou[i] if not math.isnan(iou[i]) else 0))
    rows = ["<table class='classes'><tr><th></th><th>class</th><th>IoU</th><th></th><th>Acc</th></tr>"]
    for i in order:
        colour = _css_colour(run.palette[i % len(run.palette)])
        value = iou[i]
        bar = "" if math.isnan(value) else \
            f"<div class='bar' style='width:{2.5 * value:.0f}px;background:{colour}'></div>"
        accuracy = acc[i] if i < len(acc) else math.nan
        name = run.class_names[i] if i < len(run.class_names) else str(i)
        rows.append(f"<tr><td><span class='swatch' style='background:{colour}'></span></td><td>{_e(name)}</td>"
                    f"<td class='num'>{_number(value, 'no val pixels')}</td><td>{bar}</td>"
                    f"<td class='num'>{_number(accuracy, '')}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _group_table(per_group: Sequence[Dict[str, Any]]) -> str:
    """Each group's images and scores (results.json's `per_group`), the lowest mIoU first."""
    rows = ["<table class='classes'><tr><th>group</th><th>images</th><th>mIoU</th><th>aAcc</th></tr>"]
    for row in sorted(per_group, key=lambda row: (row.get("mIoU") is None, row.get("mIoU") or 0.0)):
        rows.append(f"<tr><td>{_e(str(row.get('group')))}</td><td class='num'>{_e(str(row.get('images')))}</td>"
                    f"<td class='num'>{_number(row.get('mIoU'))}</td><td class='num'>{_number(row.get('aAcc'))}</td>"
                    f"</tr>")
    return "".join(rows) + "</table>"


def _hardest_table(run: RunFiles) -> str:
    """The hardest val images with their scores and weakest classes, and how to see them."""
    rows = ["<table class='classes'><tr><th>image</th><th>mIoU</th><th>aAcc</th><th>weakest classes</th></tr>"]
    for row in run.hardest:
        scores = sorted(((float(value), key[len("IoU "):]) for key, value in row.items()
                         if key.startswith("IoU ") and value), key=lambda score: score[0])  # ties: class order
        weakest = ", ".join(f"{name} {value:.1f}" for value, name in scores[:3])
        rows.append(f"<tr><td title='{_e(row.get('image', ''))}'>{_e(Path(row.get('image', '')).name)}</td>"
                    f"<td class='num'>{_e(row['mIoU'])}</td><td class='num'>{_e(row.get('aAcc', ''))}</td>"
                    f"<td>{_e(weakest)}</td></tr>")
    rows.append("</table>")
    command = f"segnext eval {run.work_dir / 'config.yaml'} -c {run.work_dir / 'final_model'} --hardest 8"
    return "".join(rows) + (f"<p class='note'>On images like the training images, these are where wrong labels "
                            f"show up. Drawn below with their labels and errors; more of them: "
                            f"<code>{_e(command)}</code></p>")


def _hardest_pictures(run: RunFiles) -> List[str]:
    """The hardest val images as the run drew them (image and ground truth above, prediction and
    errors below), two a row."""
    cells = []
    for path in run.hardest_pictures:
        try:
            with Image.open(path) as picture:
                uri = _data_uri(np.asarray(picture.convert("RGB")), smooth=True, photo=True, width=2 * HTML_IMAGE_WIDTH)
        except (OSError, ValueError):  # a picture removed or spoiled by hand: show the others
            continue
        caption = _e(path.stem)
        cells.append(f"<figure><img src='{uri}' alt='{caption}'><figcaption>{caption}</figcaption></figure>")
    return ["<div class='hardest'>" + "".join(cells) + "</div>"] if cells else []


def _confusion_table(run: RunFiles, iou: List[float]) -> str:
    shown = weakest_first(iou, MAX_MATRIX)
    matrix = normalised_confusion(run.confusion)[np.ix_(shown, shown)]
    names = [_e(_short(run.class_names[i])) for i in shown]
    note = (f"<p class='note'>The {len(shown)} weakest of {len(run.class_names)} classes. " if len(shown) <
            len(run.class_names) else "<p class='note'>") + \
        "Rows: ground truth, normalised (percent of the class's pixels); columns: prediction.</p>"
    rows = [note, "<table class='confusion'><tr><th></th>" + "".join(f"<th class='col'>{n}</th>" for n in names)
            + "</tr>"]
    for row, name in enumerate(names):
        cells = []
        for col in range(len(shown)):
            value = matrix[row, col]
            shade = int(255 - 200 * value)
            text_colour = "#fff" if value > 0.6 else "#000"
            cells.append(f"<td style='background:rgb({shade},{shade + (255 - shade) // 4},255);color:{text_colour}'>"
                         f"{100 * value:.0f}</td>" if value >= 0.005 else "<td></td>")
        rows.append(f"<tr><th class='rowname'>{name}</th>{''.join(cells)}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _legend_html(run: RunFiles) -> str:
    spans = [f"<span><span class='swatch' style='background:{_css_colour(run.palette[c % len(run.palette)])}'>"
             f"</span> {_e(run.class_names[c])}</span>" for c in classes_in_samples(run)]
    spans.append("<span><span class='swatch ignored'></span> no label (not scored)</span>")
    spans.append(f"<span><span class='swatch' style='background:{_css_colour(ERROR_COLOUR)}'></span> "
                 f"error (prediction != label)</span>")
    return "<p class='legend'>" + "".join(spans) + "</p>"


def _data_uri(picture: np.ndarray, smooth: bool, photo: bool, width: int = HTML_IMAGE_WIDTH) -> str:
    """A picture as an embedded image no wider than `width` (masks keep hard edges)."""
    image = Image.fromarray(np.ascontiguousarray(picture))
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.BILINEAR if smooth else Image.NEAREST)
    buffer = io.BytesIO()
    kind = "jpeg" if photo else "png"
    image.save(buffer, format=kind.upper(), **({"quality": 88} if photo else {}))
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


# --------------------------------------------------------------------------------------------------
# Both files


def run_folder(path) -> Path:
    """`path` when it is the folder of a training run, else an error that says which folder to give."""
    path = Path(path)
    example = "the --work-dir of `segnext train` or `segnext demo`"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give the folder of a training run ({example}).")
    if (path / "log.jsonl").is_file() or (path / "results.json").is_file():
        return path
    holder = next((p for p in path.parents if (p / "log.jsonl").is_file()), None)
    if holder is not None:
        what = "the run's final model" if (path / "config.json").is_file() else \
            "a file" if path.is_file() else "a folder"
        raise ValueError(f"{path} is {what} inside the training run {holder}; give the run folder: "
                         f"segnext report {holder}")
    raise ValueError(f"{path} is not the folder of a training run: it holds no log.jsonl or results.json "
                     f"(what `segnext train` writes); give {example}.")


@dataclass
class ReportFiles:
    png: Optional[Path]  # None without matplotlib
    html: Path


def write_report(work_dir: Path, out_dir: Optional[Path] = None) -> ReportFiles:
    """report.png and report.html of the run in `work_dir`, written to `out_dir` (default the work dir)."""
    run = read_run(work_dir)
    out_dir = Path(out_dir) if out_dir is not None else Path(work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = draw_png(run, out_dir / "report.png")
    if png is None:
        print("report: matplotlib is not installed, so no report.png and no charts in report.html "
              "(pip install 'segnext[plot]'); the numbers are in log.jsonl and results.json.")
    return ReportFiles(png, write_html(run, out_dir / "report.html"))


# --------------------------------------------------------------------------------------------------
# Small helpers


def _last_iteration(run: RunFiles) -> int:
    iterations = [r.get("iter", 0) for r in run.train + run.evals]
    return max(iterations, default=0)


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _number(value, missing: str = "n/a") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{value:.2f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _minutes(minutes) -> str:
    return f"{minutes:g} min" if minutes else "no budget set"


def _short(name: str, length: int = 16) -> str:
    name = str(name).strip()
    return name if len(name) <= length else name[:length - 1] + "…"


def _css_colour(colour: Sequence[int]) -> str:
    r, g, b = (int(c) for c in colour)
    return f"rgb({r},{g},{b})"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
