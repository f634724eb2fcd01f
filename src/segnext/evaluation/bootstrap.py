"""How much a score owes to the images it was measured on: bootstrap intervals.

An mIoU over 101 validation images is one draw of 101 images; another 101 of the same kind would
give another number. The percentile bootstrap (Efron) estimates that spread from the images at
hand: draw as many images as there are, with replacement, score the draw, repeat, and take the
2.5th and 97.5th percentiles of the scores as the 95% interval, here expanded for small samples
(`expanded_tail`: the 1.1th and 98.9th for 12 images or groups). Each draw is scored as the whole
split is (`SegmentationMetric`: the IoU of a class is the intersection over the union of the pixels
summed over the images, not a mean of per-image scores), from each image's `class_areas`.

Frames of one video sequence (or patches of one aerial image) look alike: resampling them as if
each were new would give too narrow an interval. Where the images come in groups, the whole groups
are resampled instead (a cluster bootstrap); with fewer than `MIN_GROUPS` groups that is too coarse
to estimate anything, and `sampling_units` falls back to the images with a note saying what the
interval then covers.

`paired_difference` compares two models scored on the same images: the same draws for both, so
that what the images have in common (hard images are hard for both) cancels, and the interval is
that of the difference itself. Given several runs of each model's recipe (training seeds), it
compares their means, and adds to each resample a draw of how far the seeds may move that
difference: Student's t scaled by the standard error the runs' own scores give (Welch's, with its
degrees of freedom), so that the interval also holds the spread between seeds, which no single
evaluation shows, and widens as it should when only two or three runs estimate it.
"""

from __future__ import annotations

import math
import os
from statistics import NormalDist
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

LEVEL = 0.95
SAMPLES = 1000
# A cluster bootstrap over fewer groups than this says little about the spread over new groups.
MIN_GROUPS = 10


def sampling_units(groups: Optional[Sequence[Optional[str]]], count: int,
                   min_groups: int = MIN_GROUPS) -> Tuple[Optional[List[Optional[str]]], Optional[str]]:
    """(the groups to resample, or None to resample the images; a note on what the interval covers,
    or None). `groups`: each image's group (a video sequence, a city), None for an image in no
    group; None when the file names carry no groups."""
    if groups is None:
        return None, None
    named = [group for group in groups if group is not None]
    distinct = sorted(set(named))
    if not distinct or len(distinct) == len(named):  # no group holds more than one image
        return None, None
    if len(distinct) >= min_groups:
        return list(groups), None
    shown = ", ".join(distinct[:5]) + (", ..." if len(distinct) > 5 else "")
    # The names say which images belong together, not whether they look alike: a shared prefix may be a
    # video sequence (CamVid's 0006R0_...) or only a naming habit (scene_0001, ...).
    return None, (f"the {count} images fall into {len(distinct)} group{'s' if len(distinct) > 1 else ''} by their "
                  f"file names ({shown}): if those are sequences of alike frames, the interval says how the score "
                  f"varies over other frames of them, and is narrower than its spread over new sequences")


def _unit_areas(areas, groups: Optional[Sequence[Optional[str]]]) -> np.ndarray:
    """(units, 3, K) float64: each image's areas, or each group's summed (an image in no group alone)."""
    areas = np.asarray(areas, dtype=np.float64)
    if groups is None:
        return areas
    if len(groups) != len(areas):
        raise ValueError(f"groups: {len(groups)} names for {len(areas)} images")
    index: Dict[Any, int] = {}
    keys = [group if group is not None else ("image", position) for position, group in enumerate(groups)]
    rows = np.array([index.setdefault(key, len(index)) for key in keys])
    units = np.zeros((len(index),) + areas.shape[1:])
    np.add.at(units, rows, areas)
    return units


def _draws(units: int, samples: int, seed: int) -> np.ndarray:
    """(samples, units): how many times each unit is drawn in each resample."""
    if units == 0:
        raise ValueError("no images to resample")
    generator = np.random.default_rng(seed)  # its own generator: the global RNG is the caller's
    return generator.multinomial(units, np.full(units, 1.0 / units), size=samples).astype(np.float64)


def _resampled(draws: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(samples, ...): the units' areas (units, ...) summed as each resample draws them (one matrix product)."""
    return (draws @ units.reshape(len(units), -1)).reshape((len(draws),) + units.shape[1:])


def _scores(summed: np.ndarray) -> Dict[str, np.ndarray]:
    """aAcc, mIoU, mAcc (samples,) and IoU, Acc (samples, K) in percent from summed areas
    (samples, 3, K), as `SegmentationMetric.compute` does: NaN for 0/0, left out of the means."""
    intersect, labelled, predicted = summed[:, 0], summed[:, 1], summed[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = 100.0 * intersect / (labelled + predicted - intersect)
        acc = 100.0 * intersect / labelled
        all_acc = 100.0 * intersect.sum(1) / labelled.sum(1)
    return {"aAcc": all_acc, "mIoU": _nanmean(iou, 1), "mAcc": _nanmean(acc, 1), "IoU": iou, "Acc": acc}


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """The mean over `axis` of the values that are not NaN; NaN where there are none (no warning)."""
    present = ~np.isnan(values)
    counts = present.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(present, values, 0.0).sum(axis) / counts, np.nan)


def _bounds(values: np.ndarray, tail) -> np.ndarray:
    """The percentile interval of each column of `values` (samples, ...) -> (..., 2), leaving out the
    share `tail` of the values on each side (one for all columns, or one per column); NaN where a
    column has no value (a class in none of the draws)."""
    values = values.reshape(len(values), -1)
    tails = np.broadcast_to(100.0 * np.asarray(tail, dtype=np.float64).reshape(-1), (values.shape[1],))
    bounds = np.full((values.shape[1], 2), np.nan)
    for column in range(values.shape[1]):
        kept = values[:, column][~np.isnan(values[:, column])]
        if kept.size:
            bounds[column] = np.percentile(kept, [tails[column], 100.0 - tails[column]])
    return bounds


def expanded_tail(level: float, units: int) -> float:
    """The share of resamples to leave out on each side for a `level` interval from `units` units.

    The plain percentile interval (leave out (1 - level) / 2) is too narrow on small samples: a
    resample spreads as the units' standard deviation with the divisor n, and the tails call for
    Student's t with n - 1 degrees of freedom rather than the normal. The expanded percentile
    interval (Hesterberg, "What Teachers Should Know About the Bootstrap", 2015) leaves out
    Phi(-sqrt(n / (n - 1)) t_{n-1}) instead: about 1.1% a side for 12 groups, 2.3% for 101 images,
    2.5% for thousands."""
    plain = (1.0 - level) / 2
    if units < 2:
        return plain
    widened = math.sqrt(units / (units - 1)) * _t_quantile(1.0 - plain, units - 1)
    return NormalDist().cdf(-widened)


def _t_quantile(probability: float, degrees: int) -> float:
    """Student's t's `probability` quantile (above 0.5) for whole `degrees` of freedom: exact up to 200
    (bisection on the closed form of its distribution), then the Cornish-Fisher expansion (Abramowitz
    and Stegun 26.7.5; off by less than 1e-9 there)."""
    z = NormalDist().inv_cdf(probability)
    if degrees > 200:
        return (z + (z ** 3 + z) / 4 / degrees + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96 / degrees ** 2
                + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384 / degrees ** 3)
    central = 2.0 * probability - 1.0  # P(|T| <= t)
    low, high = 0.0, max(1.0, 2 * z)
    while _t_central_mass(high, degrees) < central:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central_mass(middle, degrees) < central else (low, middle)
    return (low + high) / 2


def _t_central_mass(t: float, degrees: int) -> float:
    """P(|T| <= t) for Student's t with whole `degrees` of freedom (Abramowitz and Stegun 26.7.3-4)."""
    angle = math.atan(t / math.sqrt(degrees))
    cosine_squared = math.cos(angle) ** 2
    if degrees % 2 == 0:  # sin(a) (1 + 1/2 cos^2 a + 1*3/(2*4) cos^4 a + ...), up to cos^(degrees-2) a
        term = total = 1.0
        for j in range(1, degrees // 2):
            term *= cosine_squared * (2 * j - 1) / (2 * j)
            total += term
        return math.sin(angle) * total
    # (2/pi) (a + sin(a) (cos a + 2/3 cos^3 a + ...)), up to cos^(degrees-2) a; for 1 degree 2a/pi
    term = total = math.cos(angle) if degrees > 1 else 0.0
    for j in range(1, (degrees - 1) // 2):
        term *= cosine_squared * (2 * j) / (2 * j + 1)
        total += term
    return 2.0 / math.pi * (angle + math.sin(angle) * total)


def bootstrap_interval(areas, groups: Optional[Sequence[Optional[str]]] = None, *, samples: int = SAMPLES,
                       level: float = LEVEL, seed: int = 0) -> Dict[str, Any]:
    """The `level` (expanded) percentile intervals of aAcc, mIoU, mAcc and each class's IoU over `samples`
    resamples of the images (`areas`: (images, 3, K), each image's `class_areas`), or of whole groups
    where `groups` names each image's (None: an image of its own).

    Returns {"level", "samples", "unit" ("image" or "group"), "units" (how many were resampled),
    "aAcc", "mIoU", "mAcc": [low, high], "IoU": [[low, high] per class]} in percent (NaN bounds for a
    class no image has)."""
    _check(samples, level)
    units = _unit_areas(areas, groups)
    scores = _scores(_resampled(_draws(len(units), samples, seed), units))
    tail = expanded_tail(level, len(units))
    means = {name: _bounds(scores[name], tail)[0].tolist() for name in ("aAcc", "mIoU", "mAcc")}
    return {"level": level, "samples": samples, "unit": "group" if groups is not None else "image",
            "units": len(units), **means, "IoU": _bounds(scores["IoU"], tail).tolist()}


def paired_difference(areas, baseline_areas, groups: Optional[Sequence[Optional[str]]] = None, *,
                      samples: int = SAMPLES, level: float = LEVEL, seed: int = 0) -> Dict[str, Any]:
    """How much a model scores above a baseline on the same images (`areas` and `baseline_areas`:
    (images, 3, K) each, the images in the same order), with the `level` interval of the difference
    over `samples` resamples shared by the two (images, or whole groups as in `bootstrap_interval`).

    Several runs of each (training seeds of one recipe): (runs, images, 3, K). Each side then scores
    the mean of its runs on each resample of the images, and each resample adds the seeds' part: the
    standard error of the difference of the means that the runs' scores on all the images give
    (`s_a^2/n_a + s_b^2/n_b`), times a draw of Student's t with Welch's degrees of freedom. So the
    interval holds the spread between seeds as well as that between images, and is as wide as the t
    interval of a few runs must be (resampling three runs, as a bootstrap would, is far too narrow).
    A side with a single run is taken to spread as much as the other side's runs do.

    Returns {"level", "samples", "unit", "units", "runs", "baseline_runs", "mIoU", "aAcc", "mAcc": the
    difference, "<name>_interval": [low, high], "higher_share": the share of resamples in which the
    model's mIoU is above the baseline's, "IoU": each class's difference, "IoU_interval", and with
    several runs "run_mIoU", "baseline_run_mIoU": each run's own mIoU, "seed_spread":
    {"standard_error", "degrees_of_freedom"} of the mIoU's seeds' part} (points of percent)."""
    _check(samples, level)
    runs, baseline_runs = _runs(areas), _runs(baseline_areas)
    if runs.shape[1:] != baseline_runs.shape[1:]:
        raise ValueError(f"the two evaluations differ in shape ({runs.shape[1:]} and {baseline_runs.shape[1:]}): "
                         f"compare models scored on the same images with the same classes")
    units = np.stack([_unit_areas(run, groups) for run in runs])  # (runs, units, 3, K)
    baseline_units = np.stack([_unit_areas(run, groups) for run in baseline_runs])
    draws = _draws(units.shape[1], samples, seed)
    drawn = {name: _nanmean(value, 1) for name, value in _run_scores(draws, units).items()}
    baseline_drawn = {name: _nanmean(value, 1) for name, value in _run_scores(draws, baseline_units).items()}
    whole, baseline_whole = _scores(units.sum(1)), _scores(baseline_units.sum(1))  # (runs, ...) each
    # The seeds' part drawn from a generator of its own, so that the images are drawn exactly as they
    # are for a single comparison.
    seed_generator = np.random.default_rng([seed, 1])
    result: Dict[str, Any] = {"level": level, "samples": samples, "unit": "group" if groups is not None else "image",
                              "units": units.shape[1], "runs": len(runs), "baseline_runs": len(baseline_runs)}
    differences, tails, expanded = {}, {}, expanded_tail(level, units.shape[1])
    for name in ("mIoU", "aAcc", "mAcc", "IoU"):
        spread, degrees = _seed_spread(whole[name], baseline_whole[name])
        seeds = np.where(spread > 0, spread * seed_generator.standard_t(degrees, size=(samples,) + spread.shape), 0.0)
        differences[name] = drawn[name] - baseline_drawn[name] + seeds
        # The images' small-sample expansion where they are all the interval holds; where the seeds
        # spread, their part (Student's t already) is what widens it, and would be widened twice.
        tails[name] = np.where(spread > 0, (1.0 - level) / 2, expanded)
        if name == "mIoU" and (len(runs) > 1 or len(baseline_runs) > 1):
            result["seed_spread"] = {"standard_error": float(spread), "degrees_of_freedom": float(degrees)}
    for name in ("mIoU", "aAcc", "mAcc"):
        result[name] = float(_nanmean(whole[name], 0) - _nanmean(baseline_whole[name], 0))
        result[f"{name}_interval"] = _bounds(differences[name], tails[name])[0].tolist()
    kept = differences["mIoU"][~np.isnan(differences["mIoU"])]
    result["higher_share"] = float(np.mean(kept > 0)) if kept.size else np.nan
    result["IoU"] = (_nanmean(whole["IoU"], 0) - _nanmean(baseline_whole["IoU"], 0)).tolist()
    result["IoU_interval"] = _bounds(differences["IoU"], tails["IoU"]).tolist()
    if len(runs) > 1 or len(baseline_runs) > 1:
        result["run_mIoU"], result["baseline_run_mIoU"] = whole["mIoU"].tolist(), baseline_whole["mIoU"].tolist()
    return result


def _seed_spread(values: np.ndarray, baseline_values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The standard error of the difference of the two sides' mean run scores that comes from the seeds,
    and its degrees of freedom (Welch-Satterthwaite), from each side's runs scored on all the images
    (`values`: (runs,) or (runs, K)). A side with a single run is taken to spread as much as the other
    (whose runs alone then estimate it); with one run a side nothing estimates it: 0, the comparison
    of two trained models."""
    count, variance = _count_and_variance(values)
    baseline_count, baseline_variance = _count_and_variance(baseline_values)
    both = (count >= 2) & (baseline_count >= 2)
    only = (count >= 2) & (baseline_count < 2)
    only_baseline = (count < 2) & (baseline_count >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share, baseline_share = variance / count, baseline_variance / baseline_count
        welch = share + baseline_share
        welch_degrees = welch ** 2 / (share ** 2 / (count - 1) + baseline_share ** 2 / (baseline_count - 1))
        squared = np.select([both, only, only_baseline],
                            [welch, variance * (1 / count + 1 / np.maximum(baseline_count, 1)),
                             baseline_variance * (1 / np.maximum(count, 1) + 1 / baseline_count)], 0.0)
        degrees = np.select([both, only, only_baseline], [welch_degrees, count - 1.0, baseline_count - 1.0], 1.0)
    # Runs that all score alike leave no spread to draw (and Welch's ratio undefined).
    degrees = np.where((squared > 0) & np.isfinite(degrees), degrees, 1.0)
    return np.sqrt(np.where(np.isfinite(squared), squared, 0.0)), degrees


def _count_and_variance(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """How many runs have a score (not NaN) and their sample variance (ddof 1; NaN below two), over axis 0."""
    present = ~np.isnan(values)
    count = present.sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, values, 0.0).sum(0) / count
        variance = np.where(present, (values - mean) ** 2, 0.0).sum(0) / (count - 1)
    # Runs that score exactly alike spread by 0, not by the rounding of their mean.
    alike = np.where(present, values, np.inf).min(0) == np.where(present, values, -np.inf).max(0)
    return count, np.where(count >= 2, np.where(alike, 0.0, variance), np.nan)


def _runs(areas) -> np.ndarray:
    """(runs, images, 3, K) float64 from one evaluation's (images, 3, K) or several runs' areas."""
    areas = np.asarray(areas, dtype=np.float64)
    if areas.ndim == 3:
        return areas[None]
    if areas.ndim != 4 or len(areas) == 0:
        raise ValueError(f"areas of shape {areas.shape}: expected (images, 3, classes), or (runs, images, 3, "
                         f"classes) for several runs")
    return areas


def _run_scores(draws: np.ndarray, units: np.ndarray) -> Dict[str, np.ndarray]:
    """Each run's scores on each resample of the units: (samples, runs) and (samples, runs, K)."""
    samples, runs = len(draws), len(units)
    summed = _resampled(draws, units.transpose(1, 0, 2, 3)).reshape((samples * runs,) + units.shape[2:])
    return {name: value.reshape((samples, runs) + value.shape[1:]) for name, value in _scores(summed).items()}


def few_units_note(interval: Dict[str, Any]) -> Optional[str]:
    """A note for an interval (`bootstrap_interval`'s, or `paired_difference`'s of one run a side) from
    so few images or groups that its expanded tails hold less than one resample each: it is then the
    whole range of the resamples (two images: from the score of the one alone to that of the other),
    honest but not an estimate of the spread. None otherwise."""
    if interval.get("runs", 1) > 1 or interval.get("baseline_runs", 1) > 1:  # the seeds' t part sets the tails
        return None
    units = interval["units"]
    if expanded_tail(interval["level"], units) * interval["samples"] >= 1:
        return None
    kind = "groups" if interval["unit"] == "group" else "images"
    return (f"with {units} {kind} the interval is the whole range of the resamples: too few {kind} to tell how far "
            f"the score would move on others")


def format_interval(interval: dict) -> str:
    """`bootstrap_interval`'s result as text: the means' intervals and what they cover (its `note`)."""
    units = (f"the {interval['units']:,} groups of images (sequences, cities: read from the file names)"
             if interval["unit"] == "group" else f"the {interval['units']:,} images")
    means = ", ".join(f"{name} {low:.2f}-{high:.2f}" for name in ("mIoU", "aAcc", "mAcc")
                      for low, high in [interval[name]])
    lines = [f"{100 * interval['level']:.0f}% interval over {interval['samples']:,} resamples of {units}: {means}"]
    if interval.get("note"):
        lines.append(f"  note: {interval['note']}")
    return "\n".join(lines)


def format_groups(per_group: Sequence[Dict[str, Any]]) -> str:
    """`group_scores`' rows as text: each group's images and scores, the lowest mIoU first."""
    lines = ["by group (read from the file names), the lowest mIoU first:"]
    for row in sorted(per_group, key=lambda row: (math.isnan(row["mIoU"]), row["mIoU"])):
        lines.append(f"  {row['group']:<12} {row['images']:5d} images  mIoU {row['mIoU']:6.2f}  "
                     f"aAcc {row['aAcc']:6.2f}")
    return "\n".join(lines)


def format_comparison(compared: dict, class_names, test: Optional[dict] = None,
                      checkpoint: Optional[str] = None) -> str:
    """`paired_difference`'s result as text (with `results` and `checkpoint`, naming the baseline): the
    means, then the classes whose interval leaves out 0, and where the two were tested otherwise (this
    one's `test` settings against the baseline's, as the results JSON records them) how. With this
    one's `checkpoint` other than the baseline's, one run a side and a difference beyond the images'
    spread, a note says that it ranks the two trained models, not their recipes."""
    level = f"{100 * compared['level']:.0f}%"
    means = ", ".join(f"{name} {compared[name]:+.2f} ({compared[name + '_interval'][0]:+.2f} to "
                      f"{compared[name + '_interval'][1]:+.2f})" for name in ("mIoU", "aAcc", "mAcc"))
    units = f"{compared['units']:,} {'groups' if compared['unit'] == 'group' else 'images'}"
    low, high = compared["mIoU_interval"]
    runs, baseline_runs = compared.get("runs", 1), compared.get("baseline_runs", 1)
    spread = "these images and runs" if runs > 1 or baseline_runs > 1 else "these images"
    verdict = (f"{spread} do not tell the two apart: the interval holds 0" if low <= 0 <= high else
               f"{'higher' if low > 0 else 'lower'} beyond the spread of {spread}")
    if isinstance(compared["results"], list):  # several runs of the baseline's recipe
        against = f"{len(compared['results'])} runs ({', '.join(compared['results'])})"
    else:
        against = f"{compared.get('checkpoint') or compared['results']} ({compared['results']})"
    shared = f"the {units} shared by both"
    if runs > 1 or baseline_runs > 1:
        shared += f", with the spread between the runs ({runs} against {baseline_runs})"
    lines = [f"against {against}, {level} intervals over {compared['samples']:,} resamples of {shared}: {means}; "
             f"the mIoU is higher in {100 * compared['higher_share']:.1f}% of them ({verdict})"]
    if runs > 1 or baseline_runs > 1:
        sides = (("these runs'" if runs > 1 else "this run's", compared["run_mIoU"]),
                 ("the baseline's", compared["baseline_run_mIoU"]))
        lines.append("  " + "; ".join(f"{side} mIoU {_runs_text(values)}" for side, values in sides)
                     + f": the interval holds the spread between runs (seeds) too, {_seeds_text(compared)}")
    apart = [(difference, name, bounds) for name, difference, bounds in
             zip(class_names, compared["IoU"], compared["IoU_interval"])
             if not math.isnan(difference) and not (bounds[0] <= 0 <= bounds[1])]
    for label, chosen in (("higher", [row for row in apart if row[0] > 0]),
                          ("lower", [row for row in apart if row[0] < 0])):
        if chosen:
            lines.append(f"  classes {label} (IoU, interval without 0): " + ", ".join(
                f"{name} {difference:+.2f} ({bounds[0]:+.2f} to {bounds[1]:+.2f})"
                for difference, name, bounds in sorted(chosen, key=lambda row: -abs(row[0]))))
    if not apart:
        lines.append("  no class's IoU interval leaves out 0")
    theirs = compared.get("test") or {}
    differing = [f"{key} {test[key]} against {theirs[key]}" for key in test or {}
                 if key in theirs and test[key] != theirs[key]]
    if differing:
        lines.append(f"  tested otherwise: {', '.join(differing)}")
    if compared.get("note"):
        lines.append(f"  note: {compared['note']}")
    other_weights = checkpoint is not None and compared.get("checkpoint") is not None and \
        os.path.realpath(str(compared["checkpoint"])) != os.path.realpath(str(checkpoint))
    if other_weights and runs == baseline_runs == 1 and not low <= 0 <= high:
        lines.append("  note: this ranks these two trained models; two trainings of one recipe (another train.seed) "
                     "often differ beyond the spread of the images too: to compare recipes, train each a few times "
                     "and give the runs as RESULTS... --baseline BASELINE...")
    return "\n".join(lines)


def _seeds_text(compared: dict) -> str:
    """How the seeds' part of a comparison of several runs was estimated."""
    spread = compared.get("seed_spread") or {}
    if not spread.get("standard_error"):
        return "but these runs all score alike: nothing estimates it"
    single = ("the baseline's single run" if compared.get("baseline_runs", 1) == 1 else
              "the single run" if compared.get("runs", 1) == 1 else None)
    text = (f"a standard error of {spread['standard_error']:.2f} points estimated from the runs (Student's t, "
            f"{spread['degrees_of_freedom']:.1f} degrees of freedom: few runs, a wide interval)")
    return text + (f"; {single} taken to spread as much as the other side's runs" if single else "")


def _runs_text(values: Sequence[float]) -> str:
    """Each run's mIoU, and with several their mean and range."""
    shown = ", ".join(f"{value:.2f}" for value in values)
    if len(values) < 2:
        return shown
    return f"{shown} (mean {np.nanmean(values):.2f}, range {np.nanmax(values) - np.nanmin(values):.2f})"


def _check(samples: int, level: float) -> None:
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95% interval), got {level!r}")


__all__ = ["LEVEL", "MIN_GROUPS", "SAMPLES", "bootstrap_interval", "format_comparison", "format_groups",
           "format_interval",
           "paired_difference", "sampling_units"]
