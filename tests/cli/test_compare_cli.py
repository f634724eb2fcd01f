"""`segnext compare`: finished evaluations compared without a model, one against one or the runs of
two recipes (training seeds) against each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segnext.cli.main import main
from segnext.evaluation import areas_for_json, image_scores

CLASSES = ["road", "car", "tree"]
TEST = {"img_scale": None, "size_divisor": None, "mode": "whole", "crop_size": None, "stride": None, "scales": [1.0],
        "flip": False, "nmf_seed": 0, "precision": "float32"}


def write_evaluation(path, areas: np.ndarray, images=None, **changes) -> str:
    """A results JSON as `segnext eval --interval` writes it, from each image's class areas."""
    scores = image_scores(torch.as_tensor(areas.sum(0)))
    results = {"checkpoint": f"models/{path.stem}", "dataset": "folder", "split": "val", "mIoU": scores["mIoU"],
               "per_class": [{"class": name, "IoU": iou} for name, iou in zip(CLASSES, scores["IoU"])],
               "test": dict(TEST),
               "image_areas": {"images": images or [f"images/val/{i:04d}.png" for i in range(len(areas))],
                               "groups": None, "areas": areas_for_json(torch.as_tensor(areas))}}
    for key, value in changes.items():
        results[key] = {**results[key], **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(results))
    return str(path)


def model_areas(rng: np.random.Generator, images: int, skill: float) -> np.ndarray:
    """(images, 3, K) areas of a model right on about `skill` of each class's pixels."""
    labelled = rng.integers(50, 200, size=(images, len(CLASSES)))
    right = np.round(labelled * np.clip(skill + rng.normal(0, 0.1, size=labelled.shape), 0, 1)).astype(np.int64)
    predicted = right + rng.integers(0, 40, size=labelled.shape)
    return np.stack([right, labelled, predicted], axis=1)


def test_the_runs_of_two_recipes_compare_by_their_means_with_the_seeds_in_the_interval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    new = [write_evaluation(tmp_path / f"new{seed}.json", model_areas(rng, 12, skill)) for seed, skill in
           enumerate((0.70, 0.78, 0.74))]
    base = [write_evaluation(tmp_path / f"base{seed}.json", model_areas(rng, 12, skill)) for seed, skill in
            enumerate((0.60, 0.66))]
    out = tmp_path / "runs.json"
    assert main(["compare", *new, "--baseline", *base, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    comparison = json.loads(out.read_text())
    compared = comparison["compared_with"]
    new_miou, base_miou = ([json.loads(Path(path).read_text())["mIoU"] for path in paths] for paths in (new, base))
    assert compared["run_mIoU"] == pytest.approx(new_miou) and compared["baseline_run_mIoU"] == pytest.approx(base_miou)
    assert compared["mIoU"] == pytest.approx(np.mean(new_miou) - np.mean(base_miou))
    assert (compared["runs"], compared["baseline_runs"], compared["results"]) == (3, 2, base)
    assert comparison["results"] == new and compared["mIoU_interval"][0] <= compared["mIoU"]
    assert printed.startswith(f"3 runs ({', '.join(new)}) on folder val: mIoU "
                              + ", ".join(f"{value:.2f}" for value in new_miou))
    assert f"against 2 runs ({', '.join(base)}), 95% intervals over 1,000 resamples of the 12 images shared by " \
           f"both, with the spread between the runs (3 against 2): mIoU {compared['mIoU']:+.2f} (" in printed
    assert f"these runs' mIoU {new_miou[0]:.2f}, " in printed
    spread = compared["seed_spread"]
    assert 1 <= spread["degrees_of_freedom"] <= 3  # Welch's, between min(3, 2) - 1 and 3 + 2 - 2
    assert (f"the interval holds the spread between runs (seeds) too, a standard error of "
            f"{spread['standard_error']:.2f} points estimated from the runs (Student's t, "
            f"{spread['degrees_of_freedom']:.1f} degrees of freedom") in printed

    # one run a side, given either way: the comparison of two evaluations
    assert main(["compare", new[0], base[0]]) == 0
    pair = capsys.readouterr().out
    assert main(["compare", new[0], "--baseline", base[0]]) == 0
    assert capsys.readouterr().out == pair and "spread between the runs" not in pair
    # two trained models apart beyond the images' spread: a note says that this does not rank their recipes
    assert "higher beyond the spread of these images" in pair
    assert "\n  note: this ranks these two trained models; two trainings of one recipe (another train.seed) often " \
           "differ beyond the spread of the images too: to compare recipes, train each a few times and give the " \
           "runs as RESULTS... --baseline BASELINE...\n" in pair
    # the same weights (here: tested otherwise, the baseline's checkpoint recorded alike): no such note
    same = write_evaluation(tmp_path / "same.json", model_areas(rng, 12, 0.9), checkpoint="models/base0",
                            test={"flip": True})
    assert main(["compare", same, base[0]]) == 0
    alike = capsys.readouterr().out
    assert "beyond the spread of these images" in alike and "this ranks these two trained models" not in alike


def test_runs_that_cannot_be_compared_are_named(tmp_path, capsys):
    rng = np.random.default_rng(1)
    first, second, base = (write_evaluation(tmp_path / f"{name}.json", model_areas(rng, 6, 0.7))
                           for name in ("first", "second", "base"))
    assert main(["compare", first, second, base]) == 1
    assert "RESULTS: 3 evaluation(s) given without --baseline: give two (RESULTS BASELINE), or the runs of each " \
           "recipe: RESULTS... --baseline BASELINE..." in capsys.readouterr().err
    flipped = write_evaluation(tmp_path / "flipped.json", model_areas(rng, 6, 0.7), test={"flip": True})
    assert main(["compare", first, flipped, "--baseline", base]) == 1
    assert f"RESULTS {flipped}: tested otherwise than {first} (flip True against False); evaluate the runs of one " \
           f"recipe alike" in capsys.readouterr().err
    elsewhere = write_evaluation(tmp_path / "elsewhere.json", model_areas(rng, 6, 0.7),
                                 images=[f"images/val/other_{i}.png" for i in range(6)])
    assert main(["compare", first, "--baseline", base, elsewhere]) == 1
    assert f"BASELINE {elsewhere}: scored on other images (as many, 6, but not the same; first differing: " \
           f"images/val/0000.png against images/val/other_0.png)" in capsys.readouterr().err
    # the same run twice (overlapping globs), on one side or on both: it would pass for seeds that do not spread
    assert main(["compare", first, second, first, "--baseline", base]) == 1
    assert f"RESULTS {first}: scores every image exactly as RESULTS {first} (the same run given twice, or trained " \
           f"with the same seed); give each run once, each side its own runs" in capsys.readouterr().err
    assert main(["compare", first, second, "--baseline", base, second]) == 1
    assert f"BASELINE {second}: scores every image exactly as RESULTS {second}" in capsys.readouterr().err
