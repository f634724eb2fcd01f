"""`segnext compare RESULTS BASELINE`: two evaluations of the same images, without running a model."""

from __future__ import annotations

import sys

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="how far one evaluation scores above another on the same images, with 95%% intervals",
        description="Compare two finished evaluations of the same images: RESULTS and BASELINE are results JSON "
                    "files of `segnext eval --interval` (or --compare) or training runs' results.json (a run "
                    "folder stands for its results.json). Prints the differences in mIoU, aAcc and mAcc, each "
                    "with its 95% interval over 1,000 resamples of the images shared by both (whole video "
                    "sequences or cities where the file names carry ten or more), the share of resamples in "
                    "which RESULTS scores higher, and the classes whose IoU interval leaves out 0. Runs no "
                    "model: the per-image class areas of both files are what the resamples draw.",
        **with_examples("segnext compare work_dirs/new work_dirs/base",
                        "segnext compare eval_new_heldout.json eval_base_heldout.json --out new_vs_base.json"))
    parser.add_argument("results", metavar="RESULTS", help="the evaluation to judge (a results JSON or a run folder)")
    parser.add_argument("baseline", metavar="BASELINE", help="the evaluation it is compared with")
    parser.add_argument("--out", help="also write the comparison as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import check_same_images, compare_results, format_comparison, read_results
    from ..utils import atomic_write, check_can_write_file, json_safe, json_text

    if args.out:
        check_can_write_file(args.out, replaces=".json")
    results, baseline = read_results(args.results, "RESULTS"), read_results(args.baseline, "BASELINE")
    stored = results["image_areas"]
    check_same_images(baseline, results.get("dataset"), stored.get("images"), len(results["areas"]), "BASELINE")
    compared = compare_results(results["areas"], baseline, stored.get("groups"))
    class_names = [row.get("class", str(index)) for index, row in enumerate(results.get("per_class", []))]
    scored = " ".join(str(part) for part in (results.get("dataset"), results.get("split")) if part)
    miou = results.get("mIoU")  # null in the JSON where no pixel was labelled
    print(f"{results.get('checkpoint') or results['path']} ({results['path']}) on {scored}: mIoU "
          + (f"{miou:.2f}" if isinstance(miou, (int, float)) else "n/a"))
    print(format_comparison(compared, class_names, results.get("test")))
    if args.out:
        comparison = {"results": results["path"], "checkpoint": results.get("checkpoint"), "test": results.get("test"),
                      "dataset": results.get("dataset"), "split": results.get("split"), "compared_with": compared}
        atomic_write(args.out, lambda temporary: temporary.write_text(json_text(json_safe(comparison)) + "\n"))
        print(f"Comparison written to {args.out}", file=sys.stderr)
    return 0
