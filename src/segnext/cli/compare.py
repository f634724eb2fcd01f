"""`segnext compare RESULTS BASELINE`: two evaluations of the same images, without running a model;
`segnext compare RESULTS... --baseline BASELINE...`: several runs of each recipe (training seeds)."""

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
                    "model: the per-image class areas of both files are what the resamples draw. Two recipes "
                    "trained several times each (other seeds): give the runs of one as RESULTS and those of "
                    "the other after --baseline; each side scores the mean of its runs, and each resample adds "
                    "a draw of Student's t scaled by the standard error that the runs' scores give (Welch's), so "
                    "that the interval holds the spread between seeds as well as that between images.",
        **with_examples("segnext compare work_dirs/new work_dirs/base",
                        "segnext compare eval_new_heldout.json eval_base_heldout.json --out new_vs_base.json",
                        "segnext compare work_dirs/new_seed0 work_dirs/new_seed1 work_dirs/new_seed2 "
                        "--baseline work_dirs/base_seed0 work_dirs/base_seed1 work_dirs/base_seed2"))
    parser.add_argument("results", metavar="RESULTS", nargs="+",
                        help="the evaluation to judge (a results JSON or a run folder), then BASELINE, the one it is "
                             "compared with; with --baseline, every run of the recipe judged")
    parser.add_argument("--baseline", metavar="BASELINE", nargs="+",
                        help="the runs of the recipe it is compared with (other training seeds)")
    parser.add_argument("--out", help="also write the comparison as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import check_same_images, check_tested_alike, compare_results, format_comparison, read_results
    from ..utils import atomic_write, check_can_write_file, json_safe, json_text

    if args.baseline:
        judged, baselines = args.results, args.baseline
    elif len(args.results) == 2:
        judged, baselines = args.results[:1], args.results[1:]
    else:
        raise ValueError(f"RESULTS: {len(args.results)} evaluation(s) given without --baseline: give two (RESULTS "
                         f"BASELINE), or the runs of each recipe: RESULTS... --baseline BASELINE...")
    if args.out:
        check_can_write_file(args.out, replaces=".json")
    runs = [read_results(path, "RESULTS") for path in judged]
    baseline_runs = [read_results(path, "BASELINE") for path in baselines]
    first = runs[0]
    stored = first["image_areas"]
    for option, evaluations in (("RESULTS", runs[1:]), ("BASELINE", baseline_runs)):
        for evaluation in evaluations:
            check_same_images(evaluation, first.get("dataset"), stored.get("images"), len(first["areas"]), option)
    for option, evaluations in (("RESULTS", runs), ("BASELINE", baseline_runs)):
        check_tested_alike(evaluations, option)
    if len(runs) > 1 or len(baseline_runs) > 1:
        check_runs_distinct([("RESULTS", evaluation) for evaluation in runs]
                            + [("BASELINE", evaluation) for evaluation in baseline_runs])
    compared = compare_results([evaluation["areas"] for evaluation in runs], baseline_runs, stored.get("groups"))
    class_names = [row.get("class", str(index)) for index, row in enumerate(first.get("per_class", []))]
    scored = " ".join(str(part) for part in (first.get("dataset"), first.get("split")) if part)
    if len(runs) == 1:
        miou = first.get("mIoU")  # null in the JSON where no pixel was labelled
        print(f"{first.get('checkpoint') or first['path']} ({first['path']}) on {scored}: mIoU "
              + (f"{miou:.2f}" if isinstance(miou, (int, float)) else "n/a"))
    else:
        print(f"{len(runs)} runs ({', '.join(evaluation['path'] for evaluation in runs)}) on {scored}: mIoU "
              + ", ".join(f"{value:.2f}" for value in compared["run_mIoU"]))
    checkpoint = (first.get("checkpoint") or str(first["path"])) if len(runs) == 1 else None
    print(format_comparison(compared, class_names, first.get("test"), checkpoint))
    if args.out:
        paths = [evaluation["path"] for evaluation in runs]
        checkpoints = [evaluation.get("checkpoint") for evaluation in runs]
        comparison = {"results": paths if len(runs) > 1 else paths[0],
                      "checkpoint": checkpoints if len(runs) > 1 else checkpoints[0], "test": first.get("test"),
                      "dataset": first.get("dataset"), "split": first.get("split"), "compared_with": compared}
        atomic_write(args.out, lambda temporary: temporary.write_text(json_text(json_safe(comparison)) + "\n"))
        print(f"Comparison written to {args.out}", file=sys.stderr)
    return 0


def check_runs_distinct(evaluations) -> None:
    """Raise if two of the runs (`(option, evaluation)` pairs) score every image alike: the same file
    given twice (overlapping globs) or two runs with the same seed would pass for a recipe whose seeds
    do not spread, or put one run on both sides."""
    import torch

    for position, (option, evaluation) in enumerate(evaluations):
        for earlier_option, earlier in evaluations[:position]:
            if torch.equal(evaluation["areas"], earlier["areas"]):
                raise ValueError(f"{option} {evaluation['path']}: scores every image exactly as {earlier_option} "
                                 f"{earlier['path']} (the same run given twice, or trained with the same seed); "
                                 f"give each run once, each side its own runs")
