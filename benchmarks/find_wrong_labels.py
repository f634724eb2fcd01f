"""Which ranking of a split's images finds the ones whose labels are wrong? Some labels of a
labelled split are spoiled on purpose (the label map shifted a few pixels, or one object given
another class), and the images are ranked by a model's predictions: by their mIoU, lowest first
(as `segnext eval --hardest` ranks them), by their share of wrong pixels, and by their share of
pixels the model contradicts with confidence (its label has at least 90% or 70% probability). The
table gives how many of the spoiled images each ranking puts among its first ones (as many as
were spoiled), over a few random draws.

    python benchmarks/find_wrong_labels.py camvid data/camvid --split val -c camvid
    # writes benchmarks/results/find_wrong_labels.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

import segnext
from segnext.data import build_dataset
from segnext.evaluation import class_areas, image_scores

REPO_ROOT = Path(__file__).resolve().parents[1]
RANKINGS = ("lowest mIoU", "most wrong pixels", "most confident errors (90%)", "most confident errors (70%)")


def shifted(label: np.ndarray, pixels: int, *_) -> np.ndarray:
    """The label map moved `pixels` to the right (a misregistered mask)."""
    return np.roll(label, pixels, axis=1)


def object_relabelled(label: np.ndarray, _, small_classes, other_class) -> np.ndarray:
    """The largest object of 300-6000 pixels of a small class given `other_class` (a wrong click)."""
    best = None
    for class_id in small_classes:
        count, parts, stats, _ = cv2.connectedComponentsWithStats((label == class_id).astype(np.uint8))
        for part in range(1, count):
            area = stats[part, cv2.CC_STAT_AREA]
            if 300 <= area <= 6000 and (best is None or area > best[0]):
                best = (area, parts == part)
    label = label.copy()
    if best is not None:
        label[best[1]] = other_class
    return label


def ranks(label, prediction, confidence, num_classes, ignore_index) -> tuple:
    """(mIoU, wrong share, confidently wrong share at 90% and 70%) of one image."""
    labelled = label != ignore_index
    wrong = labelled & (prediction != label)
    metric = segnext.SegmentationMetric(num_classes, ignore_index)
    scores = image_scores(class_areas(metric.update(prediction.astype(np.int64), label.astype(np.int64))))
    count = max(int(labelled.sum()), 1)
    return (scores["mIoU"], wrong.sum() / count, (wrong & (confidence >= 0.9)).sum() / count,
            (wrong & (confidence >= 0.7)).sum() / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--checkpoint", "-c", required=True)
    parser.add_argument("--spoiled", type=int, default=10, help="images whose labels are spoiled (default 10)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shift", type=int, default=6, help="pixels a spoiled label map is moved (default 6)")
    parser.add_argument("--small-classes", nargs="+", default=["Car", "Pedestrian", "Bicyclist", "Pole",
                                                                "SignSymbol", "Fence"])
    parser.add_argument("--other-class", default="Building")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks/results/find_wrong_labels.json"))
    args = parser.parse_args()

    dataset = build_dataset(args.dataset, args.root, args.split)
    segmenter = segnext.Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    small = [dataset.class_names.index(name) for name in args.small_classes]
    other = dataset.class_names.index(args.other_class)
    samples = [dataset[index] for index in range(len(dataset))]
    predicted = [segmenter.predict_with_confidence(sample["image"]) for sample in samples]
    spoilers = {f"label map shifted {args.shift} px": shifted, f"one object labelled {args.other_class}":
                object_relabelled}
    results = {"checkpoint": args.checkpoint, "dataset": args.dataset, "split": args.split, "images": len(samples),
               "spoiled": args.spoiled, "found": {}}
    for spoiler_name, spoil in spoilers.items():
        found = {ranking: [] for ranking in RANKINGS}
        for seed in range(args.seeds):
            spoiled = set(np.random.default_rng(seed).choice(len(samples), args.spoiled, replace=False).tolist())
            rows = []
            for index, (sample, (prediction, confidence)) in enumerate(zip(samples, predicted)):
                label = np.asarray(sample["label"])
                if index in spoiled:
                    label = spoil(label, args.shift, small, other)
                rows.append((index, *ranks(label, prediction, confidence, dataset.num_classes,
                                           dataset.ignore_index)))
            for column, ranking in enumerate(RANKINGS, start=1):
                first = sorted(rows, key=lambda row: row[column] if column == 1 else -row[column])[:args.spoiled]
                found[ranking].append(sum(row[0] in spoiled for row in first))
        results["found"][spoiler_name] = found
    print(f"{args.checkpoint} on {args.dataset} {args.split} ({len(samples)} images), {args.spoiled} spoiled per draw: "
          f"how many of them each ranking puts first (one number per draw; by chance: "
          f"{args.spoiled * args.spoiled / len(samples):.1f})")
    print("| spoiled how | " + " | ".join(RANKINGS) + " |")
    print("|---|" + "---|" * len(RANKINGS))
    for spoiler_name, found in results["found"].items():
        print(f"| {spoiler_name} | " + " | ".join(", ".join(map(str, found[r])) for r in RANKINGS) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
