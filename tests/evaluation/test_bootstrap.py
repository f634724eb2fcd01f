"""Bootstrap intervals of the scores: what they cover, groups of alike frames, paired comparisons."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from segnext.evaluation import (
    SegmentationMetric,
    bootstrap_interval,
    class_areas,
    paired_difference,
    sampling_units,
)


def _simulation():
    """benchmarks/bootstrap_coverage.py: synthetic populations of per-image class areas, and how often
    an interval from a split drawn from one holds the population's mIoU."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bootstrap_coverage.py"
    spec = importlib.util.spec_from_file_location("bootstrap_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIMULATION = _simulation()


def test_the_95_percent_interval_holds_the_score_of_all_such_images_about_95_times_in_100():
    # 40 independent images drawn from 300: the interval from each draw against the population's mIoU
    held = SIMULATION.coverage(200, 1, 0.0, 0.8, drawn=40, by_group=False, samples=400)["coverage"]
    assert 0.88 <= held <= 0.99


def test_small_samples_widen_the_percentile_interval_by_students_t():
    from statistics import NormalDist

    from segnext.evaluation.bootstrap import expanded_tail

    # Student's t's 97.5th percentile from its table, for n - 1 degrees of freedom
    table = {2: 12.7062, 3: 4.3027, 5: 2.7764, 12: 2.2010, 101: 1.9840, 2001: 1.9612}
    for units, t in table.items():
        expected = NormalDist().cdf(-np.sqrt(units / (units - 1)) * t)
        assert expanded_tail(0.95, units) == pytest.approx(expected, rel=2e-3, abs=1e-12), units
    assert expanded_tail(0.95, 12) == pytest.approx(0.01076, abs=1e-5)  # 1.1% a side, not 2.5%
    assert expanded_tail(0.95, 1) == pytest.approx(0.025)  # nothing to widen by
    assert expanded_tail(0.9, 100000) == pytest.approx(0.05, abs=1e-5)  # thousands: the plain percentiles
    # the interval of 12 images: the 1.08th and 98.92nd percentiles of the resampled scores (each resample
    # drawn as the module draws them: a multinomial from its own generator, seeded by `seed`)
    areas = SIMULATION.population(np.random.default_rng(3), 12, 1, 0.0, 0.8).astype(np.float64)
    counts = np.random.default_rng(0).multinomial(12, np.full(12, 1 / 12), size=2000)
    scores = [SIMULATION.miou(np.tensordot(count, areas, axes=1)[None]) for count in counts]
    tail = 100 * expanded_tail(0.95, 12)
    assert bootstrap_interval(areas, samples=2000, seed=0)["mIoU"] == pytest.approx(
        np.percentile(scores, [tail, 100 - tail]).tolist())


def test_an_interval_from_too_few_images_says_that_it_is_the_range_of_the_resamples():
    from segnext.evaluation.bootstrap import few_units_note

    areas = SIMULATION.population(np.random.default_rng(3), 6, 1, 0.0, 0.8).astype(np.float64)
    two = bootstrap_interval(areas[:2])
    alone = [SIMULATION.miou(areas[index][None]) for index in (0, 1)]  # a resample of one image twice
    assert two["mIoU"] == pytest.approx(sorted(alone))
    assert few_units_note(two) == ("with 2 images the interval is the whole range of the resamples: too few images "
                                   "to tell how far the score would move on others")
    assert few_units_note(bootstrap_interval(areas[:5])).startswith("with 5 images")
    assert few_units_note(bootstrap_interval(areas[:5], samples=2000)) is None  # 1.9 resamples a tail
    assert few_units_note(bootstrap_interval(areas)) is None
    assert few_units_note(bootstrap_interval(areas[:4], ["a", "a", "b", "c"])).startswith("with 3 groups")
    assert few_units_note(paired_difference(areas[:3], areas[3:])).startswith("with 3 images")
    # with several runs a side the seeds' part widens the interval, its tails are the plain ones
    assert few_units_note(paired_difference(np.stack([areas[:3]] * 2), np.stack([areas[3:]] * 2))) is None


def test_alike_frames_need_their_groups_resampled_not_the_frames():
    # 12 sequences of 8 frames, the frames of a sequence alike: resampling frames gives an interval far
    # too narrow (it holds the truth about half the time); resampling whole sequences gives back ~95%
    frames = SIMULATION.coverage(200, 8, 0.8, 0.1, drawn=12, by_group=False, samples=400)["coverage"]
    sequences = SIMULATION.coverage(200, 8, 0.8, 0.1, drawn=12, by_group=True, samples=400)["coverage"]
    assert frames < 0.7 and sequences >= 0.85, (frames, sequences)


def test_each_resample_is_scored_as_the_whole_split_is():
    # identical images: every resample is the same split, so the interval is the split's score exactly,
    # as SegmentationMetric computes it from the summed pixels
    rng = np.random.default_rng(1)
    pred, target = torch.from_numpy(rng.integers(0, 3, (20, 30))), torch.from_numpy(rng.integers(0, 3, (20, 30)))
    target[0, :5] = 255
    metric = SegmentationMetric(3)
    areas = torch.stack([class_areas(metric.update(pred, target)) for _ in range(6)])
    scores = metric.compute()
    interval = bootstrap_interval(areas.numpy(), samples=50)
    for name in ("mIoU", "aAcc", "mAcc"):
        assert interval[name] == pytest.approx([scores[name], scores[name]])
    np.testing.assert_allclose(interval["IoU"], [[iou, iou] for iou in scores["IoU"]])
    assert (interval["unit"], interval["units"], interval["samples"], interval["level"]) == ("image", 6, 50, 0.95)


def test_groups_of_one_image_are_the_images_and_a_group_is_one_unit():
    areas = SIMULATION.population(np.random.default_rng(2), 30, 1, 0.0, 0.8)
    by_image = bootstrap_interval(areas, samples=200, seed=3)
    alone = bootstrap_interval(areas, [str(i) for i in range(30)], samples=200, seed=3)
    assert alone["mIoU"] == by_image["mIoU"] and alone["IoU"] == by_image["IoU"] and alone["unit"] == "group"
    assert bootstrap_interval(areas, ["a"] * 10 + ["b"] * 10 + [None] * 10, samples=20)["units"] == 12
    # a class in no image: NaN bounds, left out of the means
    areas[:, :, 3] = 0
    interval = bootstrap_interval(areas, samples=50)
    assert np.isnan(interval["IoU"][3]).all() and not np.isnan(interval["mIoU"]).any()
    with pytest.raises(ValueError, match="3 names for 30 images"):
        bootstrap_interval(areas, ["a", "b", "c"])
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        bootstrap_interval(areas, level=95)


def test_sampling_units_resample_groups_only_where_there_are_enough():
    assert sampling_units(None, 5) == (None, None)  # the names carry no groups
    assert sampling_units(["a", "b", "c"], 3) == (None, None)  # each image its own group: the images
    assert sampling_units([None, None], 2) == (None, None)  # camera names: no groups
    many = [f"seq{i // 3}" for i in range(36)]
    assert sampling_units(many, 36) == (many, None)
    groups, note = sampling_units(["0006R0"] * 101, 101)
    assert groups is None and "the 101 images fall into 1 group by their file names (0006R0): if those" in note
    assert "narrower than its spread over new sequences" in note


def test_a_paired_difference_uses_the_same_draws_for_both_models():
    rng = np.random.default_rng(4)
    baseline = SIMULATION.population(rng, 40, 1, 0.0, 0.8)
    same = paired_difference(baseline, baseline, samples=100)
    assert same["mIoU"] == 0 and same["mIoU_interval"] == [0, 0] and same["higher_share"] == 0
    better = baseline.copy()
    better[:, 0, 1] = better[:, 1, 1]  # class 1 now right on every pixel of every image
    better[:, 2, 1] = better[:, 1, 1]
    difference = paired_difference(better, baseline, samples=200)
    assert difference["mIoU"] == pytest.approx(SIMULATION.miou(better) - SIMULATION.miou(baseline))
    assert 0 < difference["mIoU_interval"][0] <= difference["mIoU"] <= difference["mIoU_interval"][1]
    assert difference["higher_share"] == 1.0 and difference["IoU_interval"][1][0] > 0
    assert difference["IoU"][0] == 0 and difference["IoU_interval"][0] == [0, 0]
    worse = paired_difference(baseline, better, samples=200)
    assert worse["mIoU"] == -difference["mIoU"] and worse["mIoU_interval"] == \
        pytest.approx([-difference["mIoU_interval"][1], -difference["mIoU_interval"][0]])
    with pytest.raises(ValueError, match="compare models scored on the same images"):
        paired_difference(baseline, baseline[:10])


def test_several_runs_a_side_put_the_spread_between_seeds_into_the_interval():
    rng = np.random.default_rng(4)
    baseline = SIMULATION.population(rng, 40, 1, 0.0, 0.8)
    better = baseline.copy()
    better[:, 0, 1] = better[:, 1, 1]
    single = paired_difference(better, baseline, samples=200)
    # one run a side as (runs, images, 3, K), or three identical runs: the comparison of the two evaluations
    for runs in (better[None], np.stack([better] * 3)):
        stacked = paired_difference(runs, baseline[None], samples=200)
        assert (stacked["runs"], stacked["baseline_runs"]) == (len(runs), 1)
        for key in ("mIoU", "mIoU_interval", "aAcc_interval", "higher_share", "IoU_interval"):
            np.testing.assert_allclose(stacked[key], single[key], rtol=1e-9, atol=1e-9, err_msg=key)
    # Every image alike, the runs not: the images alone say nothing of the spread, the runs do.
    def run(right_share: float) -> np.ndarray:  # 20 equal images; class 1 right on `right_share` of its pixels
        image = np.array([[100, 100 * right_share], [100, 100], [100, 100]])
        return np.repeat(image[None], 20, axis=0)

    seeds, base = np.stack([run(0.4), run(0.6), run(0.8)]), run(0.6)[None]
    compared = paired_difference(seeds, base, samples=1000)

    def miou(right_share):
        return (100 + 100 * right_share / (2 - right_share)) / 2

    assert compared["run_mIoU"] == pytest.approx([miou(0.4), miou(0.6), miou(0.8)])
    assert compared["mIoU"] == pytest.approx(np.mean([miou(0.4), miou(0.6), miou(0.8)]) - miou(0.6))
    low, high = compared["mIoU_interval"]
    assert low < -5 and high > 5 and 0.2 < compared["higher_share"] < 0.8  # no run's mIoU is that of the image draws
    one_seed = paired_difference(seeds[:1], base, samples=1000)
    assert one_seed["mIoU_interval"] == pytest.approx([miou(0.4) - miou(0.6)] * 2)
    with pytest.raises(ValueError, match=r"expected \(images, 3, classes\), or \(runs, images, 3, classes\)"):
        paired_difference(baseline[0], baseline[0])


def alike_images(right_share: float, images: int = 20) -> np.ndarray:
    """A run scored on `images` equal images (2 classes, 100 pixels each): class 1 right on
    `right_share` of its pixels; resampling such images never moves the score."""
    image = np.array([[100, 100 * right_share], [100, 100], [100, 100]])
    return np.repeat(image[None], images, axis=0)


def alike_miou(right_share: float) -> float:
    return (100 + 100 * right_share / (2 - right_share)) / 2


def test_the_seeds_part_is_students_t_with_welchs_degrees_of_freedom():
    # Images that cannot move the score: the whole interval is the seeds' part, the t interval of the runs.
    shares, baseline_shares = (0.5, 0.6, 0.7), (0.3, 0.4, 0.5)
    runs = np.stack([alike_images(share) for share in shares])
    baseline = np.stack([alike_images(share) for share in baseline_shares])
    compared = paired_difference(runs, baseline, samples=40000)
    scores = [alike_miou(share) for share in shares]
    baseline_scores = [alike_miou(share) for share in baseline_shares]
    difference = np.mean(scores) - np.mean(baseline_scores)
    error = np.sqrt(np.var(scores, ddof=1) / 3 + np.var(baseline_scores, ddof=1) / 3)
    welch = error ** 4 / ((np.var(scores, ddof=1) / 3) ** 2 / 2 + (np.var(baseline_scores, ddof=1) / 3) ** 2 / 2)
    assert compared["seed_spread"] == pytest.approx({"standard_error": error, "degrees_of_freedom": welch})
    assert 3 < welch < 4  # about n_a + n_b - 2 = 4 with alike spreads; fewer as they differ
    low, high = compared["mIoU_interval"]
    assert difference - low == pytest.approx(high - difference, rel=0.03)
    # Student's t's 97.5th percentile: 3.18 with 3 degrees of freedom, 2.78 with 4
    assert 2.78 * 0.98 < (high - difference) / error < 3.18 * 1.02
    # Far wider than the spread of the runs' means would say at 1.96 (the percentile bootstrap of 3 runs).
    assert high - low > 1.35 * (2 * 1.96 * error)
    assert 0.9 < compared["higher_share"] < 1.0


def test_three_runs_a_side_hold_the_recipes_difference_about_95_times_in_100():
    # Two synthetic recipes, runs spread by their seeds: the interval from three runs a side against the
    # difference of the recipes' expected mIoU (resampling three runs instead held it 81 times in 100)
    held = SIMULATION.comparison_coverage(100, 3)["coverage"]
    assert 0.88 <= held <= 0.995, held


def test_a_single_run_on_one_side_is_taken_to_spread_as_the_other_sides_runs():
    shares = (0.4, 0.6, 0.8)
    runs, baseline = np.stack([alike_images(share) for share in shares]), alike_images(0.6)[None]
    compared = paired_difference(runs, baseline, samples=40000)
    scores = [alike_miou(share) for share in shares]
    error = np.std(scores, ddof=1) * np.sqrt(1 / 3 + 1)
    assert compared["seed_spread"] == pytest.approx({"standard_error": error, "degrees_of_freedom": 2})
    low, high = compared["mIoU_interval"]
    assert high - low == pytest.approx(2 * 4.303 * error, rel=0.03)  # t, 2 degrees of freedom
    swapped = paired_difference(baseline, runs, samples=40000)
    assert swapped["seed_spread"] == compared["seed_spread"]
    assert swapped["mIoU_interval"] == pytest.approx([-high, -low], rel=0.03)


def test_per_class_intervals_take_each_classs_own_seed_spread():
    runs = np.stack([alike_images(share) for share in (0.5, 0.6, 0.7)])
    baseline = np.stack([alike_images(share) for share in (0.6, 0.6, 0.6)])
    compared = paired_difference(runs, baseline, samples=4000)
    # class 0 is always right in every run: no spread, no interval; class 1 spreads
    assert compared["IoU_interval"][0] == [0.0, 0.0]
    low, high = compared["IoU_interval"][1]
    assert low < -5 and high > 5
