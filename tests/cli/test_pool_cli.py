"""`segnext pool`: the folds of a cross-validation by group, each scored on the groups it held out,
pooled into one score of every image; what it writes, `segnext compare` takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segnext.cli.main import main
from segnext.evaluation import areas_for_json, image_scores

CLASSES = ["road", "car", "tree"]
TEST = {"img_scale": None, "size_divisor": None, "mode": "whole", "crop_size": None, "stride": None, "scales": [1.0],
        "flip": False, "nmf_seed": 0, "precision": "float32"}


def write_fold(path, split: str, stems, areas: np.ndarray, **changes) -> str:
    """A fold's results JSON as a training run writes it: scored on its held-out split `split`."""
    scores = image_scores(torch.as_tensor(areas.sum(0)))
    results = {"checkpoint": f"{path.parent}/final_model", "dataset": "folder", "split": split,
               "mIoU": scores["mIoU"], "per_class": [{"class": name, "IoU": iou} for name, iou in
                                                     zip(CLASSES, scores["IoU"])], "test": dict(TEST),
               "image_areas": {"images": [f"images/{split}/{stem}.png" for stem in stems],
                               "groups": [stem.split("_")[0] for stem in stems],
                               "areas": areas_for_json(torch.as_tensor(areas))}}
    results.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return str(path.parent)


def fold_areas(rng: np.random.Generator, images: int) -> np.ndarray:
    labelled = rng.integers(50, 200, size=(images, len(CLASSES)))
    right = np.round(labelled * rng.uniform(0.3, 0.9, size=labelled.shape)).astype(np.int64)
    return np.stack([right, labelled, right + rng.integers(0, 40, size=labelled.shape)], axis=1)


def two_folds(tmp_path, rng, name: str = "run"):
    # fold 1 held out sequences a and b, fold 2 sequence c (their names sort across the folds)
    first, second = ["a_0001", "b_0001", "b_0002"], ["c_0001", "c_0002"]
    areas = fold_areas(rng, 3), fold_areas(rng, 2)
    return ([write_fold(tmp_path / f"{name}1" / "results.json", "val_fold1", first, areas[0]),
             write_fold(tmp_path / f"{name}2" / "results.json", "val_fold2", second, areas[1])],
            np.concatenate(areas))


def test_the_folds_scored_as_one_split_and_compared_when_pooled(tmp_path, capsys):
    rng = np.random.default_rng(0)
    runs, areas = two_folds(tmp_path, rng)
    out = tmp_path / "pooled.json"
    assert main(["pool", *runs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    pooled = json.loads(out.read_text())
    # the pixels of all five images summed, as for one split of them
    summed = areas.sum(0)
    iou = 100.0 * summed[0] / (summed[1] + summed[2] - summed[0])
    assert pooled["mIoU"] == pytest.approx(iou.mean()) and pooled["num_images"] == 5
    assert [row["IoU"] for row in pooled["per_class"]] == pytest.approx(iou.tolist())
    assert pooled["image_areas"]["images"] == [f"images/{stem}.png" for stem in ("a_0001", "b_0001", "b_0002",
                                                                                 "c_0001", "c_0002")]
    assert pooled["image_areas"]["groups"] == ["a", "b", "b", "c", "c"]
    assert [row["group"] for row in pooled["per_group"]] == ["a", "b", "c"]
    assert pooled["split"] == "val_fold1+val_fold2" and [fold["images"] for fold in pooled["folds"]] == [3, 2]
    low, high = pooled["interval"]["mIoU"]
    assert low <= pooled["mIoU"] <= high
    assert "2 folds on folder, each scored on the images it did not train on:" in printed
    assert f"  {tmp_path / 'run1' / 'results.json'} (val_fold1): 3 images, mIoU " in printed
    assert f"mIoU {pooled['mIoU']:6.2f}" in printed and "by group (read from the file names)" in printed

    # a second recipe on the same folds: the pooled files compare image by image
    other, _ = two_folds(tmp_path, rng, "other")
    assert main(["pool", *other, "--out", str(tmp_path / "other.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "other.json"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"against {tmp_path / 'run1' / 'final_model'}, {tmp_path / 'run2' / 'final_model'} ({out}), " in printed
    assert "resamples of the 5 images shared by both" in printed


def test_runs_that_cannot_be_pooled_are_named(tmp_path, capsys):
    rng = np.random.default_rng(1)
    runs, _ = two_folds(tmp_path, rng)
    assert main(["pool", runs[0]]) == 1
    assert "RUN: 1 run given; pool the runs of two folds or more" in capsys.readouterr().err
    # the same image held out by two folds' splits (under other split folders) is scored twice
    again = write_fold(tmp_path / "again" / "results.json", "val_other", ["b_0002"], fold_areas(rng, 1))
    assert main(["pool", runs[0], again]) == 1
    assert (f"RUN {tmp_path / 'again' / 'results.json'}: scores images/b_0002.png, which "
            f"{tmp_path / 'run1' / 'results.json'} scores too") in capsys.readouterr().err
    flipped = write_fold(tmp_path / "flipped" / "results.json", "val_fold3", ["d_0001"], fold_areas(rng, 1),
                         test={**TEST, "flip": True})
    assert main(["pool", runs[0], flipped]) == 1
    assert f"RUN {tmp_path / 'flipped' / 'results.json'}: tested otherwise than " in capsys.readouterr().err
    other_classes = write_fold(tmp_path / "classes" / "results.json", "val_fold3", ["d_0001"], fold_areas(rng, 1),
                               per_class=[{"class": name, "IoU": 0.0} for name in ("sky", "car", "tree")])
    assert main(["pool", runs[0], other_classes]) == 1
    assert "its classes (sky, car, tree) are not those of" in capsys.readouterr().err
    unnamed = write_fold(tmp_path / "unnamed" / "results.json", "val_fold3", ["d_0001"], fold_areas(rng, 1))
    stored = json.loads((tmp_path / "unnamed" / "results.json").read_text())
    stored["image_areas"]["images"] = None
    (tmp_path / "unnamed" / "results.json").write_text(json.dumps(stored))
    assert main(["pool", runs[0], unnamed]) == 1
    assert "its images are not named" in capsys.readouterr().err


def test_the_folds_confidence_calibration_pooled(tmp_path, capsys):
    """Each fold's results count its pixels by their confidence (a training run's final evaluation,
    `eval --calibration`): pooled, they are the counts of all the images, as one evaluation of them
    all would count them."""
    from segnext.evaluation import ConfidenceCalibration
    from segnext.utils import json_safe

    generator = torch.Generator().manual_seed(0)
    whole, folds = ConfidenceCalibration(), []
    for _ in range(2):
        pred, target = (torch.randint(0, 3, (2, 16, 16), generator=generator) for _ in range(2))
        confidence = torch.rand(2, 16, 16, generator=generator) * 0.7 + 0.3
        fold = ConfidenceCalibration()
        fold.update(pred, confidence, target)
        whole.update(pred, confidence, target)
        folds.append(json_safe(fold.compute()))
    rng = np.random.default_rng(2)
    runs = [write_fold(tmp_path / "run1" / "results.json", "val_fold1", ["a_0001"], fold_areas(rng, 1),
                       calibration=folds[0]),
            write_fold(tmp_path / "run2" / "results.json", "val_fold2", ["b_0001"], fold_areas(rng, 1),
                       calibration=folds[1])]
    out = tmp_path / "pooled.json"
    assert main(["pool", *runs, "--out", str(out)]) == 0
    expected = whole.compute()
    pooled = json.loads(out.read_text())["calibration"]
    assert pooled["pixels"] == expected["pixels"] == 1024
    assert pooled["ECE"] == pytest.approx(expected["ECE"]) and pooled["accuracy"] == pytest.approx(expected["accuracy"])
    assert [row["pixels"] for row in pooled["bins"]] == [row["pixels"] for row in expected["bins"]]
    assert f"calibration: over 1,024 labelled pixels the mean confidence is {expected['mean_confidence']:.1f}%" \
        in capsys.readouterr().out

    # a fold whose results did not count them: said, not pooled from the others
    without = write_fold(tmp_path / "run3" / "results.json", "val_fold3", ["c_0001"], fold_areas(rng, 1))
    assert main(["pool", *runs, without]) == 0
    assert "calibration: not pooled, 1 of the 3 folds' results lack it" in capsys.readouterr().out
