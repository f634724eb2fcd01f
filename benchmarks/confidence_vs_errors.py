"""Does a model's confidence point at its errors? On a labelled split: how well each pixel's
confidence (the probability of its label, `Segmenter.predict_with_confidence`) separates right from
wrong pixels (AUROC), what share of the errors lies under a few confidence levels, and how well an
image's mean confidence (what `segnext predict --confidence` ranks images by) ranks the images by
their share of wrong pixels and by their mIoU (Spearman correlation).

    python benchmarks/confidence_vs_errors.py camvid data/camvid --split val -c camvid
    # writes benchmarks/results/confidence_vs_errors.json

Pixels are sampled evenly (--pixels per image) for the AUROC and the levels; every labelled pixel
counts for the image means.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import segnext
from segnext.data import build_dataset
from segnext.evaluation import class_areas, image_scores

REPO_ROOT = Path(__file__).resolve().parents[1]
LEVELS = (0.5, 0.7, 0.9)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (as Spearman and Mann-Whitney want them)."""
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def spearman(a, b) -> float:
    return float(np.corrcoef(average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float)))[0, 1])


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """The chance that a random positive scores above a random negative (Mann-Whitney U)."""
    ranks = average_ranks(score)
    count, others = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--checkpoint", "-c", required=True)
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--pixels", type=int, default=5000, help="pixels sampled per image (default 5000)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks/results/confidence_vs_errors.json"))
    args = parser.parse_args()

    dataset = build_dataset(args.dataset, args.root, args.split)
    segmenter = segnext.Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    count = min(len(dataset), args.max_images or len(dataset))
    rng = np.random.default_rng(0)
    images, sampled_confidence, sampled_right = [], [], []
    start = time.perf_counter()
    for index in range(count):
        sample = dataset[index]
        label = np.asarray(sample["label"]).astype(np.int64)
        labels, confidence = segmenter.predict_with_confidence(sample["image"])
        labelled = label != dataset.ignore_index
        metric = segnext.SegmentationMetric(dataset.num_classes)
        scores = image_scores(class_areas(metric.update(labels.astype(np.int64), label)))
        images.append({"image": os.path.relpath(sample["path"], args.root),
                       "confidence": float(confidence[labelled].mean()), "error": 100.0 - scores["aAcc"],
                       "mIoU": scores["mIoU"]})
        pick = rng.choice(np.flatnonzero(labelled.ravel()), min(args.pixels, int(labelled.sum())), replace=False)
        sampled_confidence.append(confidence.ravel()[pick])
        sampled_right.append((labels == label).ravel()[pick])
    seconds = time.perf_counter() - start
    confidence, right = np.concatenate(sampled_confidence), np.concatenate(sampled_right)
    levels = [{"below": level, "pixels": 100 * float((confidence < level).mean()),
               "error_rate_below": 100 * float(1 - right[confidence < level].mean()),
               "error_rate_above": 100 * float(1 - right[confidence >= level].mean()),
               "share_of_errors": 100 * float((~right & (confidence < level)).sum() / (~right).sum())}
              for level in LEVELS]
    scored = [image for image in images if not np.isnan(image["mIoU"])]
    results = {"checkpoint": args.checkpoint, "dataset": args.dataset, "split": args.split, "images": count,
               "seconds": round(seconds, 1), "wrong_pixels": 100 * float(1 - right.mean()),
               "pixel_auroc": auroc(right, confidence), "levels": levels,
               "spearman_image_confidence_vs_error": spearman([i["confidence"] for i in images],
                                                              [i["error"] for i in images]),
               "spearman_image_confidence_vs_mIoU": spearman([i["confidence"] for i in scored],
                                                             [i["mIoU"] for i in scored]),
               "per_image": images}
    print(f"{args.checkpoint} on {args.dataset} {args.split}: {count} images in {seconds:.0f} s, "
          f"{results['wrong_pixels']:.1f}% of the sampled pixels wrong")
    print(f"pixel AUROC of the confidence for 'right': {results['pixel_auroc']:.3f}")
    print("| confidence under | pixels | error rate there | elsewhere | share of all errors |")
    print("|---|---|---|---|---|")
    for level in levels:
        print(f"| {level['below']:.0%} | {level['pixels']:.1f}% | {level['error_rate_below']:.1f}% | "
              f"{level['error_rate_above']:.1f}% | {level['share_of_errors']:.1f}% |")
    print(f"images: Spearman of the mean confidence with the share of wrong pixels "
          f"{results['spearman_image_confidence_vs_error']:+.2f}, with mIoU "
          f"{results['spearman_image_confidence_vs_mIoU']:+.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
