"""`segnext pool RUN...`: the runs of a cross-validation by group, each scored on the groups it did not
train on, pooled into one score of every image (with its 95% interval), without running a model."""

from __future__ import annotations

import statistics
import sys

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pool", help="one score from the folds of a cross-validation: every image, each scored by a model that "
                     "did not train on it",
        description="Pool the evaluations of a cross-validation by group (the folds of `segnext data split "
                    "--folds K`, one model trained a fold and scored on the groups its fold held out): RUN are "
                    "their training runs (a run folder stands for its results.json) or results JSONs of "
                    "`segnext eval --interval`, each of other images. Prints each fold's mIoU, then the scores "
                    "of all their images taken as one split (the pixels summed over the images, as for any "
                    "split) with 95% intervals over 1,000 resamples of the images (of whole video sequences "
                    "where the file names carry ten or more), and each group's scores. Runs no model. --out "
                    "writes them as a results JSON, which `segnext compare` takes: two recipes cross-validated "
                    "on the same folds compare image by image.",
        **with_examples("segnext pool work_dirs/fold1 work_dirs/fold2 work_dirs/fold3",
                        "segnext pool work_dirs/new_fold* --out new.json && segnext pool work_dirs/base_fold* "
                        "--out base.json && segnext compare new.json base.json"))
    parser.add_argument("runs", metavar="RUN", nargs="+",
                        help="each fold's training run (or results JSON), scored on the images its fold held out")
    parser.add_argument("--out", help="also write the pooled scores as a results JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..constants import DEFAULT_METRIC_COLUMNS
    from ..evaluation import (
        format_calibration,
        format_groups,
        format_interval,
        format_results,
        pool_results,
        read_results,
        results_for_json,
    )
    from ..utils import atomic_write, check_can_write_file, json_text

    if len(args.runs) < 2:
        raise ValueError(f"RUN: {len(args.runs)} run given; pool the runs of two folds or more (one per fold of "
                         f"`segnext data split --folds K`)")
    if args.out:
        check_can_write_file(args.out, replaces=".json")
    folds = [read_results(path, "RUN") for path in args.runs]
    pooled = pool_results(folds)
    first = folds[0]
    scores = [fold.get("mIoU") for fold in folds]
    print(f"{len(folds)} folds on {first.get('dataset')}, each scored on the images it did not train on:")
    for fold, score in zip(folds, scores):
        miou = f"{score:.2f}" if isinstance(score, (int, float)) else "n/a"
        print(f"  {fold['path']} ({fold.get('split')}): {len(fold['areas'])} images, mIoU {miou}")
    known = [score for score in scores if isinstance(score, (int, float))]
    if len(known) > 1:
        print(f"  the folds' mIoU: mean {statistics.mean(known):.2f}, standard deviation "
              f"{statistics.stdev(known):.2f}, from {min(known):.2f} to {max(known):.2f}")
    print(f"\nall {pooled['num_images']} images as one split:")
    print(format_results(pooled, DEFAULT_METRIC_COLUMNS, pooled["interval"]["IoU"]))
    print(format_interval(pooled["interval"]))
    if pooled.get("per_group"):
        print(format_groups(pooled["per_group"]))
    if "calibration" in pooled:
        print(format_calibration(pooled["calibration"]))
    elif any(fold.get("calibration") for fold in folds):
        lacking = sum(not fold.get("calibration") for fold in folds)
        print("calibration: not pooled, " + (f"{lacking} of the {len(folds)} folds' results lack it" if lacking else
                                             "the folds count it in other confidence bins"))
    if args.out:
        section = {key: pooled[key] for key in ("image_areas", "interval", "per_group") if key in pooled}
        models = ", ".join(str(fold.get("checkpoint") or fold["path"]) for fold in folds)  # as compare names them
        text = json_text(results_for_json(pooled, dataset=first.get("dataset"),
                                          split="+".join(str(fold.get("split")) for fold in folds),
                                          test=first.get("test"), checkpoint=models,
                                          folds=[{"results": fold["path"], "split": fold.get("split"),
                                                  "images": len(fold["areas"]), "mIoU": fold.get("mIoU")}
                                                 for fold in folds], **section))
        atomic_write(args.out, lambda temporary: temporary.write_text(text + "\n"))
        print(f"Pooled results written to {args.out}", file=sys.stderr)
    return 0
