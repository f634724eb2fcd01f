"""Do `segnext eval --interval`'s 95% intervals hold the score 95 times in 100? And what they cost.

    python benchmarks/bootstrap_coverage.py --out benchmarks/results/bootstrap_coverage.json

A population of synthetic per-image class areas (3,000 images, 4 classes; each image's accuracy per
class drawn around a common level) stands for "all the images of this kind"; its mIoU is the score a
split tries to measure. Each trial draws a split from it, computes the interval from that split
alone (`segnext.evaluation.bootstrap_interval`, 1,000 resamples as the command draws) and checks
whether it holds the population's mIoU. Three cases:
- `independent`: 40 images drawn one by one (as ADE20K's or COCO's photos): the interval over images;
- `frames, resampled as images`: 12 video sequences of 8 frames, the frames of a sequence alike
  (they share most of their accuracy), resampled frame by frame, as if each frame were new;
- `frames, resampled as sequences`: the same splits, whole sequences resampled (what the command does
  when the file names carry 10 groups or more).
Then comparisons of two recipes whose training runs differ by their seed (each run's accuracy per
class drawn around its recipe's): how often the interval of the difference holds the difference of
the recipes' expected mIoU (over all such images and all seeds), from one run a side (the images
resampled, as a single comparison) and from 2, 3 and 5 runs a side (the seeds' spread estimated from
the runs: `segnext compare RESULTS... --baseline BASELINE...`).
Then the time of one interval for ADE20K's val split (2,000 images, 150 classes).
Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from segnext.evaluation import bootstrap_interval, paired_difference


def population(rng, groups: int, per_group: int, group_spread: float, image_spread: float, classes: int = 4):
    """(images, 3, K) class areas; a group's frames share a draw of the model's accuracy per class."""
    images = []
    for _ in range(groups):
        shared = rng.normal(0, group_spread, classes)
        for _ in range(per_group):
            labelled = rng.poisson(rng.uniform(50, 2000, classes))
            accuracy = 1 / (1 + np.exp(-(1.0 + shared + rng.normal(0, image_spread, classes))))
            intersect = rng.binomial(labelled, accuracy)
            predicted = intersect + rng.poisson((labelled - intersect) * rng.uniform(0.5, 1.5, classes))
            images.append(np.stack([intersect, labelled, predicted]))
    return np.array(images)


def miou(areas) -> float:
    intersect, labelled, predicted = np.asarray(areas, dtype=np.float64).sum(0)
    return float(np.nanmean(100 * intersect / (labelled + predicted - intersect)))


def coverage(trials: int, per_group: int, group_spread: float, image_spread: float, drawn: int, by_group: bool,
             samples: int = 1000) -> dict:
    """How often the interval from a split of `drawn` groups (`per_group` images each) holds the mIoU of
    the population they are drawn from, and the intervals' median width."""
    rng = np.random.default_rng(0)
    groups_in_population = 3000 // per_group
    areas = population(rng, groups_in_population, per_group, group_spread, image_spread)
    truth = miou(areas)
    held, widths = 0, []
    for trial in range(trials):
        chosen = rng.choice(groups_in_population, drawn, replace=False)
        images = np.concatenate([np.arange(group * per_group, (group + 1) * per_group) for group in chosen])
        groups = [str(image // per_group) for image in images] if by_group else None
        low, high = bootstrap_interval(areas[images], groups, samples=samples, seed=trial)["mIoU"]
        held += low <= truth <= high
        widths.append(high - low)
    return {"trials": trials, "images": drawn * per_group, "coverage": held / trials,
            "median_width": float(np.median(widths)), "population_mIoU": truth}


class Recipes:
    """Two recipes on one population of images: a run's accuracy on an image's class is the logistic
    of its recipe's level + the run's own offset for the class (the seed: `seed_spread`) + the image's
    difficulty for the class (shared by every run: hard images are hard for both recipes)."""

    def __init__(self, rng, images: int = 3000, classes: int = 4, levels=(1.15, 1.0), seed_spread: float = 0.15,
                 image_spread: float = 0.8):
        self.rng, self.levels, self.seed_spread = rng, levels, seed_spread
        self.labelled = rng.poisson(rng.uniform(50, 2000, (images, classes)))
        self.difficulty = rng.normal(0, image_spread, (images, classes))
        self.overshoot = rng.uniform(0.5, 1.5, (images, classes))

    def run(self, recipe: int, images) -> np.ndarray:
        """(images, 3, K) areas of one new training run of `recipe` on `images`."""
        offset = self.rng.normal(0, self.seed_spread, self.labelled.shape[1])
        labelled = self.labelled[images]
        accuracy = 1 / (1 + np.exp(-(self.levels[recipe] + offset + self.difficulty[images])))
        intersect = self.rng.binomial(labelled, accuracy)
        predicted = intersect + self.rng.poisson((labelled - intersect) * self.overshoot[images])
        return np.stack([intersect, labelled, predicted], axis=1)


def comparison_coverage(trials: int, runs: int, baseline_runs: int = 0, drawn: int = 40, truth_runs: int = 200,
                        samples: int = 1000) -> dict:
    """How often the interval of `paired_difference` from `runs` runs of the first recipe and
    `baseline_runs` (default: as many) of the second, on `drawn` images, holds the difference of the
    two recipes' mean mIoU over all the images and `truth_runs` runs each."""
    rng = np.random.default_rng(0)
    recipes = Recipes(rng)
    everything = np.arange(len(recipes.labelled))
    means = [np.mean([miou(recipes.run(recipe, everything)) for _ in range(truth_runs)]) for recipe in (0, 1)]
    truth = means[0] - means[1]
    held, widths = 0, []
    for trial in range(trials):
        images = rng.choice(len(everything), drawn, replace=False)
        sides = [np.stack([recipes.run(recipe, images) for _ in range(count)])
                 for recipe, count in ((0, runs), (1, baseline_runs or runs))]
        low, high = paired_difference(sides[0], sides[1], samples=samples, seed=trial)["mIoU_interval"]
        held += low <= truth <= high
        widths.append(high - low)
    return {"trials": trials, "images": drawn, "runs": runs, "baseline_runs": baseline_runs or runs,
            "coverage": held / trials, "median_width": float(np.median(widths)), "recipes_difference": truth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cases = {
        "independent": coverage(args.trials, 1, 0.0, 0.8, drawn=40, by_group=False),
        "frames, resampled as images": coverage(args.trials, 8, 0.8, 0.1, drawn=12, by_group=False),
        "frames, resampled as sequences": coverage(args.trials, 8, 0.8, 0.1, drawn=12, by_group=True),
    }
    print(f"{'case':32s} {'images':>6s} {'holds the truth':>15s} {'median width':>12s}")
    for name, row in cases.items():
        print(f"{name:32s} {row['images']:6d} {100 * row['coverage']:14.1f}% {row['median_width']:12.2f}")
    compared = {f"{runs} run{'s' if runs > 1 else ''} a side": comparison_coverage(args.trials, runs)
                for runs in (1, 2, 3, 5)}
    compared["3 runs against 1"] = comparison_coverage(args.trials, 3, baseline_runs=1)
    print(f"\ntwo recipes, seeds spread: {'case':16s} {'holds the truth':>15s} {'median width':>12s}")
    for name, row in compared.items():
        print(f"{'':27s}{name:16s} {100 * row['coverage']:14.1f}% {row['median_width']:12.2f}")
    ade = np.random.default_rng(1).integers(0, 5000, (2000, 3, 150))
    bootstrap_interval(ade, samples=10)  # warm-up
    times = []
    for repeat in range(5):
        start = time.perf_counter()
        bootstrap_interval(ade, seed=repeat)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    print(f"one interval, 2,000 images x 150 classes, 1,000 resamples: {seconds:.2f} s (median of 5)")
    if args.out:
        args.out.write_text(json.dumps({"cases": cases, "comparisons": compared, "ade20k_val_interval_seconds": seconds,
                                        "machine": platform.processor() or platform.machine()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
