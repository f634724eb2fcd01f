import json
import math

import numpy as np
import pytest
import torch

from segnext import SegmentationMetric
from segnext.utils import json_safe


def reference_metrics(pred, target, num_classes, ignore_index=255):
    """A direct per-class count, independent of the confusion-matrix implementation."""
    valid = target != ignore_index
    pred, target = pred[valid], target[valid]
    iou, acc = [], []
    for c in range(num_classes):
        inter = np.sum((pred == c) & (target == c))
        union = np.sum((pred == c) | (target == c))
        label = np.sum(target == c)
        iou.append(inter / union if union else math.nan)
        acc.append(inter / label if label else math.nan)
    return 100 * np.sum(pred == target) / target.size, 100 * np.nanmean(iou), 100 * np.nanmean(acc), iou


def test_matches_direct_count_over_batches():
    rng = np.random.default_rng(0)
    metric = SegmentationMetric(5)
    preds, targets = [], []
    for _ in range(3):
        pred = rng.integers(0, 5, (2, 17, 23))
        target = rng.integers(0, 5, (2, 17, 23))
        target[rng.random(target.shape) < 0.2] = 255
        metric.update(torch.from_numpy(pred), torch.from_numpy(target))
        preds.append(pred)
        targets.append(target)
    aacc, miou, macc, iou = reference_metrics(np.concatenate(preds), np.concatenate(targets), 5)
    result = metric.compute()
    assert result["aAcc"] == pytest.approx(aacc)
    assert result["mIoU"] == pytest.approx(miou)
    assert result["mAcc"] == pytest.approx(macc)
    assert result["IoU"] == pytest.approx([100 * v for v in iou])


def test_absent_class_is_nan_and_left_out_of_means():
    metric = SegmentationMetric(4)
    metric.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 255]]))
    result = metric.compute()
    assert math.isnan(result["IoU"][2]) and math.isnan(result["IoU"][3])
    assert result["mIoU"] == pytest.approx(100.0)  # classes 0 and 1 are perfect, 2 and 3 absent
    # A class predicted but absent from the target has IoU 0 (it counts), Acc NaN (MMSegmentation).
    metric.update(torch.tensor([3]), torch.tensor([0]))
    result = metric.compute()
    assert result["IoU"][3] == 0.0 and math.isnan(result["Acc"][3])
    assert result["mIoU"] == pytest.approx((50 + 100 + 0) / 3)


def test_rejects_bad_input():
    metric = SegmentationMetric(3)
    with pytest.raises(ValueError, match="outside 0..2"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="argmax"):
        metric.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))


def test_table_lists_every_class():
    metric = SegmentationMetric(2, class_names=["road", "sky"])
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    table = metric.table()
    assert "road" in table and "sky" in table and "mIoU" in table


def test_dice_precision_recall_match_a_direct_count():
    """Dice 2|P∩T|/(|P|+|T|), precision |P∩T|/|P|, recall |P∩T|/|T| per class, NaN where 0/0 and left
    out of the means (MMSegmentation's mDice and the precision/recall of its mFscore)."""
    rng = np.random.default_rng(1)
    pred, target = rng.integers(0, 4, (3, 19, 21)), rng.integers(0, 4, (3, 19, 21))
    pred[pred == 3] = 2  # class 3 never predicted: its precision is 0/0
    target[rng.random(target.shape) < 0.1] = 255
    metric = SegmentationMetric(5)  # class 4 in neither: every value 0/0
    metric.update(torch.from_numpy(pred), torch.from_numpy(target))
    result = metric.compute()
    valid = target != 255
    p, t = pred[valid], target[valid]
    for c in range(4):
        inter, in_pred, in_target = np.sum((p == c) & (t == c)), np.sum(p == c), np.sum(t == c)
        assert result["Dice"][c] == pytest.approx(100 * 2 * inter / (in_pred + in_target))
        assert result["Recall"][c] == pytest.approx(100 * inter / in_target) == result["Acc"][c]
        if c < 3:
            assert result["Precision"][c] == pytest.approx(100 * inter / in_pred)
    assert math.isnan(result["Precision"][3]) and all(math.isnan(result[m][4]) for m in ("Dice", "Precision", "Recall"))
    assert result["mDice"] == pytest.approx(np.mean(result["Dice"][:4]))
    assert result["mPrecision"] == pytest.approx(np.mean(result["Precision"][:3]))
    assert result["mRecall"] == pytest.approx(result["mAcc"])
    table = metric.table(columns=("IoU", "Dice"))
    assert table.splitlines()[0].split() == ["class", "IoU", "Dice"] and "mDice" in table and "mAcc" not in table
    with pytest.raises(ValueError, match="choose from IoU, Acc, Dice, Precision, Recall"):
        metric.table(columns=("F1",))


def test_most_confused_ranks_the_shares_of_each_class_predicted_as_another():
    from segnext.evaluation import most_confused

    confusion = torch.tensor([[90, 10, 0],    # sky: 10% as road
                              [0, 50, 50],    # road: 50% as car
                              [0, 0, 0]])     # car: never labelled
    assert most_confused(confusion, ["sky", "road", "car"]) == [("road", "car", 50.0), ("sky", "road", 10.0)]
    assert most_confused(torch.eye(3, dtype=torch.int64), ["a", "b", "c"]) == []
    assert most_confused(confusion, ["sky", "road", "car"], top=1) == [("road", "car", 50.0)]


def test_one_image_scored_on_its_own():
    from segnext.evaluation import class_areas, image_scores

    metric = SegmentationMetric(4)
    metric.update(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2), dtype=np.int64))  # an earlier image
    target = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 3, 1], [1, 2, 1]])  # 3 where there is none; 2 only where nothing is labelled (not scored)
    confusion = metric.update(pred, target)
    assert confusion.sum() == 5 and torch.equal(metric.confusion.sum(), torch.tensor(9))  # its pixels alone
    areas = class_areas(confusion)
    assert areas.tolist() == [[1, 2, 0, 0], [2, 2, 1, 0], [1, 3, 0, 1]]  # intersection, labelled, predicted
    scores = image_scores(areas)
    _, expected_miou, _, expected_iou = reference_metrics(pred, target, 4)
    assert scores["pixels"] == 5 and scores["aAcc"] == pytest.approx(60.0)
    assert scores["IoU"] == pytest.approx([50.0, 200 / 3, 0.0, 0.0])  # the class predicted where there is none: 0
    assert scores["mIoU"] == pytest.approx(expected_miou) == pytest.approx((50 + 200 / 3) / 4)
    assert [100 * v for v in expected_iou] == pytest.approx(scores["IoU"])
    nothing = image_scores(torch.zeros(3, 4, dtype=torch.int64))  # an image without a labelled pixel
    assert nothing["pixels"] == 0 and math.isnan(nothing["aAcc"]) and math.isnan(nothing["mIoU"])
    assert all(math.isnan(v) for v in nothing["IoU"])


def test_calibration_counts_pixels_by_their_confidence():
    from segnext.evaluation import ConfidenceCalibration

    calibration = ConfidenceCalibration(ignore_index=255, bins=10, thresholds=(0.5, 0.7))
    pred = torch.tensor([[1, 1, 2, 0], [3, 0, 0, 1]])
    target = torch.tensor([[1, 2, 2, 1], [3, 0, 255, 1]])
    confidence = torch.tensor([[0.95, 0.92, 0.62, 0.31], [1.0, 0.45, 0.99, 0.68]])
    calibration.update(pred, confidence, target)
    result = calibration.compute()
    # labelled: 0.95 right, 0.92 wrong, 0.62 right, 0.31 wrong, 1.0 right, 0.45 right, 0.68 right
    assert result["pixels"] == 7 and result["accuracy"] == pytest.approx(100 * 5 / 7)
    filled = {round(10 * row["from"]): (row["pixels"], row["accuracy"]) for row in result["bins"] if row["pixels"]}
    assert filled == {3: (1, 0.0), 4: (1, 100.0), 6: (2, 100.0), 9: (3, pytest.approx(200 / 3))}
    mean_confidence = {3: 0.31, 4: 0.45, 6: 0.65, 9: (0.95 + 0.92 + 1.0) / 3}
    accuracy = {3: 0.0, 4: 1.0, 6: 1.0, 9: 2 / 3}
    weights = {3: 1, 4: 1, 6: 2, 9: 3}
    ece = sum(weights[b] * abs(accuracy[b] - mean_confidence[b]) for b in weights) / 7
    assert result["ECE"] == pytest.approx(100 * ece)
    under_half, under_seventy = result["under"]
    assert under_half == pytest.approx({"below": 0.5, "pixels": 100 * 2 / 7, "error_rate": 50.0,
                                        "others_error_rate": 100 * 1 / 5, "share_of_errors": 50.0})
    assert under_seventy == pytest.approx({"below": 0.7, "pixels": 100 * 4 / 7, "error_rate": 25.0,
                                           "others_error_rate": 100 * 1 / 3, "share_of_errors": 50.0})
    # processes sum `counts`: two halves give the whole
    first, second = ConfidenceCalibration(255, 10, (0.5, 0.7)), ConfidenceCalibration(255, 10, (0.5, 0.7))
    first.update(pred[:1], confidence[:1], target[:1])
    second.update(pred[1:], confidence[1:], target[1:])
    first.counts += second.counts
    merged = first.compute()
    assert merged["ECE"] == pytest.approx(result["ECE"])
    assert all(got == pytest.approx(want) for got, want in zip(merged["under"], result["under"]))
    assert [row["pixels"] for row in merged["bins"]] == [row["pixels"] for row in result["bins"]]
    # the counts read back from the computed results as a results JSON keeps them (empty bins null):
    # what pooling the folds of a cross-validation sums
    read_back = ConfidenceCalibration.from_computed(json.loads(json.dumps(json_safe(result))))
    assert read_back.bins == 10 and read_back.thresholds == (0.5, 0.7)
    assert torch.allclose(read_back.counts, calibration.counts)
    with pytest.raises(ValueError, match="multiples of 1 / bins"):
        ConfidenceCalibration(thresholds=(0.33,))
    with pytest.raises(ValueError, match="one shape"):
        calibration.update(pred, confidence[:1], target)


def test_category_scores_take_the_classes_of_a_category_as_one():
    """Cityscapes' "IoU category": road taken for sidewalk is no error at the category level."""
    from segnext.evaluation import category_scores, format_categories

    names = ["road", "sidewalk", "car", "sky"]
    confusion = torch.tensor([[50, 10, 0, 0],     # road: 10 pixels predicted sidewalk
                              [5, 20, 5, 0],      # sidewalk: 5 as road, 5 as car
                              [0, 0, 30, 0],
                              [0, 0, 0, 0]])       # no sky anywhere
    scores = category_scores(confusion, names, {"flat": ("road", "sidewalk"), "vehicle": ("car",), "sky": ("sky",)})
    flat = 85 / (90 + 85 - 85)  # intersection 50+10+5+20, labelled 90, predicted 85
    vehicle = 30 / (30 + 35 - 30)
    assert scores["category_IoU"]["flat"] == pytest.approx(100 * flat)
    assert scores["category_IoU"]["vehicle"] == pytest.approx(100 * vehicle)
    assert math.isnan(scores["category_IoU"]["sky"])
    assert scores["category_mIoU"] == pytest.approx(100 * (flat + vehicle) / 2)
    assert format_categories(scores) == f"category mIoU {100 * (flat + vehicle) / 2:.2f} (flat {100 * flat:.1f}, " \
                                        f"vehicle {100 * vehicle:.1f}, sky nan)"


def test_cityscapes_evaluations_score_its_seven_categories(tmp_path):
    from segnext.data import build_dataset, write_image, write_label
    from segnext.data.classes import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASSES
    from segnext.evaluation import evaluate_predictions, results_for_json

    root = tmp_path / "cityscapes"
    label = np.zeros((8, 16), np.uint8)  # road, with a car (13) and a bicycle (18)
    label[2:4, 2:6], label[5:7, 8:12] = 13, 18
    write_image(root / "leftImg8bit" / "val" / "ulm" / "ulm_000000_000019_leftImg8bit.png",
                np.zeros((8, 16, 3), np.uint8))
    write_label(root / "gtFine" / "val" / "ulm" / "ulm_000000_000019_gtFine_labelTrainIds.png", label)
    predicted = label.copy()
    predicted[5:7, 8:12] = 17  # the bicycle taken for a motorcycle: wrong class, right category
    write_label(tmp_path / "predictions" / "ulm" / "ulm_000000_000019_leftImg8bit.png", predicted)
    dataset = build_dataset("cityscapes", root, "val")
    assert dataset.categories == CITYSCAPES_CATEGORIES and sum(map(len, CITYSCAPES_CATEGORIES.values())) == 19
    assert {name for members in CITYSCAPES_CATEGORIES.values() for name in members} == set(CITYSCAPES_CLASSES)
    results = evaluate_predictions(dataset, tmp_path / "predictions")
    assert results["category_IoU"]["vehicle"] == 100.0 and results["category_IoU"]["flat"] == 100.0
    assert results["category_mIoU"] == 100.0 and results["mIoU"] < 100.0  # bicycle 0, motorcycle 0
    assert math.isnan(results["category_IoU"]["sky"])
    saved = results_for_json(results)
    assert saved["category_mIoU"] == 100.0 and saved["category_IoU"]["sky"] is None
    assert "category_IoU" not in evaluate_predictions(_FolderLike(dataset), tmp_path / "predictions")


class _FolderLike:
    """The same images as a dataset without categories (a folder dataset)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.image_paths, self.num_classes, self.class_names = dataset.image_paths, 19, dataset.class_names

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]
