"""What `segnext predict --unsure-below P` leaves and keeps: label maps written with it, scored against
the labels of a split. Per folder of predictions: the share of labelled pixels left unlabelled, the
accuracy of the labels kept, and the accuracy of all labels (a folder written without the option).

    segnext predict -c MODEL data/camvid/images/val --out pred_all
    segnext predict -c MODEL data/camvid/images/val --out pred_07 --unsure-below 0.7
    python benchmarks/unsure_below.py camvid data/camvid --split val pred_all pred_07
    # writes benchmarks/results/unsure_below.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from segnext.data import build_dataset, read_label
from segnext.evaluation import PredictionFolder

REPO_ROOT = Path(__file__).resolve().parents[1]
UNLABELLED = 255


def score(dataset, folder: Path) -> dict:
    """Pixels labelled in the dataset: how many the predictions leave unlabelled, how many they get right."""
    predictions = PredictionFolder(folder)
    labelled = left = right = 0
    for index, image in enumerate(dataset.image_paths):
        path = predictions.path_for(image)
        if path is None:
            raise SystemExit(f"{folder}: no prediction for {image}")
        target, predicted = np.asarray(dataset[index]["label"]), read_label(path)
        valid = target != dataset.ignore_index
        kept = valid & (predicted != UNLABELLED)
        labelled += int(valid.sum())
        left += int((valid & ~kept).sum())
        right += int((predicted[kept] == target[kept]).sum())
    kept = labelled - left
    return {"folder": folder.name, "images": len(dataset), "labelled_pixels": labelled,
            "unlabelled": 100.0 * left / labelled, "kept_accuracy": 100.0 * right / kept if kept else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("root")
    parser.add_argument("folders", nargs="+", help="folders of label maps written by segnext predict")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "unsure_below.json"))
    args = parser.parse_args()
    dataset = build_dataset(args.dataset, args.root, args.split)
    rows = [score(dataset, Path(folder)) for folder in args.folders]
    print(f"{args.dataset} {args.split} ({len(dataset)} images)")
    print(f"{'predictions':<40} {'unlabelled':>10} {'accuracy of the labels kept':>28}")
    for row in rows:
        print(f"{row['folder']:<40} {row['unlabelled']:>9.1f}% {row['kept_accuracy']:>27.2f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"dataset": args.dataset, "split": args.split, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
