"""Evaluation: sliding-window and multi-scale + flip inference against a direct computation, and
`segnext.evaluation.evaluate` against scoring the predictions by hand."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segnext
from segnext.constants import IMAGENET_MEAN, IMAGENET_STD
from segnext.evaluation import (
    STOPPED_ELSEWHERE,
    EvaluationStopped,
    evaluate,
    majority_class_miou,
    results_for_json,
    write_results,
)
from segnext.inference import TestConfig, segment, segment_logits


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", num_classes=5, nmf_seed=0)  # fixed bases: deterministic
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def normalise(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x[None]


@torch.no_grad()
def test_slide_inference_averages_overlapping_windows(model, image):
    config = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(16, 24))
    x = normalise(image)
    # Windows written out by hand: rows start at 0 and 8 (the last one flush with the bottom edge),
    # columns at 0 and 24 (flush with the right edge), so the middle rows/columns are covered twice.
    windows = [(0, 0), (0, 24), (8, 0), (8, 24)]
    total, count = torch.zeros(1, 5, 40, 56), torch.zeros(1, 1, 40, 56)
    for top, left in windows:
        total[:, :, top:top + 32, left:left + 32] += model(x[:, :, top:top + 32, left:left + 32])
        count[:, :, top:top + 32, left:left + 32] += 1
    assert count.min() == 1 and count.max() == 4
    expected = (total / count)[0]
    torch.testing.assert_close(segment_logits(model, image, config), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(segment(model, image, config), expected.argmax(0))


@torch.no_grad()
def test_multi_scale_and_flip_average_softmax_probabilities(model, image):
    ratios = (0.5, 1.0, 1.5)
    config = TestConfig(img_scale=(56, 40), scales=ratios, flip=True)
    probabilities = []
    for ratio in ratios:
        # keep-ratio resize into (56 r, 40 r): here exactly (40 r, 56 r), as mmcv rounds it
        height, width = int(40 * ratio + 0.5), int(56 * ratio + 0.5)
        resized = image if ratio == 1.0 else cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        x = normalise(resized)
        for flip in (False, True):
            logits = model(x.flip(3) if flip else x)
            logits = F.interpolate(logits, size=(40, 56), mode="bilinear", align_corners=False)
            p = logits.softmax(1)
            probabilities.append(p.flip(3) if flip else p)
    expected = torch.stack(probabilities).mean(0)[0]
    torch.testing.assert_close(segment_logits(model, image, config), expected, atol=1e-5, rtol=1e-5)


class _Images:
    """A tiny dataset: dict(image, label) items, as build_dataset without a transform gives."""

    num_classes, ignore_index, class_names = 5, 255, ["a", "b", "c", "d", "e"]

    def __init__(self, count=5, sizes=((24, 32),)):
        rng = np.random.default_rng(1)
        self.items = []
        for number in range(count):
            size = sizes[number % len(sizes)]
            label = rng.integers(0, 5, size).astype(np.uint8)
            label[:3] = 255
            self.items.append({"image": rng.integers(0, 256, (*size, 3), dtype=np.uint8), "label": label})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_evaluate_scores_every_prediction_and_shards_add_up(model):
    dataset = _Images()
    config = TestConfig(img_scale=(32, 24))
    results = evaluate(model, dataset, config, keep_predictions=2)
    metric = segnext.SegmentationMetric(5)
    for item in dataset.items:
        metric.update(segment(model, item["image"], config), torch.from_numpy(item["label"].astype(np.int64)))
    expected = metric.compute()
    assert results["mIoU"] == pytest.approx(expected["mIoU"]) and results["aAcc"] == pytest.approx(expected["aAcc"])
    assert results["num_images"] == 5 and len(results["predictions"]) == 2
    # The overlays are spread over the split (first and last image), not its first frames.
    kept_images = [kept[0] for kept in results["predictions"]]
    assert np.array_equal(kept_images[0], dataset.items[0]["image"])
    assert np.array_equal(kept_images[1], dataset.items[4]["image"])
    assert results["class_names"] == dataset.class_names
    # What each DDP process scores (without the all-reduce): their confusions sum to the whole,
    # and `reduce` is what makes every process see the whole.
    shards = [evaluate(model, dataset, config, shard=(r, 2)) for r in range(2)]
    assert torch.equal(shards[0]["confusion"] + shards[1]["confusion"], metric.confusion)
    other = shards[1]["confusion"]
    reduced = evaluate(model, dataset, config, shard=(0, 2), reduce=lambda confusion: confusion + other)
    assert torch.equal(reduced["confusion"], metric.confusion)
    assert reduced["mIoU"] == pytest.approx(expected["mIoU"])
    assert model.training is False
    first_two = evaluate(model, dataset, config, max_images=2)
    assert first_two["num_images"] == 2
    # The final evaluation during training also scores the periodic evaluations' subset, in the same pass.
    both = evaluate(model, dataset, config, also_first=2)
    assert both["mIoU"] == pytest.approx(results["mIoU"])
    assert both["first_images"]["mIoU"] == pytest.approx(first_two["mIoU"]) and both["first_images"]["num_images"] == 2


class _ThreadedSum:
    """`reduce` for processes played by threads: every call waits for the others' and returns the sum,
    as an all-reduce does; a call that the others never make times out (a hang under torchrun)."""

    def __init__(self, world: int):
        self.barrier, self.parts = threading.Barrier(world, timeout=60), [None] * world

    def reducer(self, rank: int):
        def reduce(tensor: torch.Tensor) -> torch.Tensor:
            self.parts[rank] = tensor.clone()
            self.barrier.wait()
            total = sum(self.parts)
            self.barrier.wait()  # everyone has read the parts before the next call overwrites them
            return total
        return reduce


def _in_two_processes(model, dataset, config, asked_at):
    """Each rank's evaluation (or its EvaluationStopped) and how many forward passes it made, the rank
    `r` asked to stop after its `asked_at[r]`-th forward pass (None: never)."""
    summed, outcomes, passes = _ThreadedSum(2), [None, None], [0, 0]

    def run(rank):
        def should_stop():
            passes[rank] += 1
            return "SIGTERM" if passes[rank] == asked_at[rank] else None
        try:
            outcomes[rank] = evaluate(model, dataset, config, shard=(rank, 2), reduce=summed.reducer(rank),
                                      should_stop=should_stop)
        except (EvaluationStopped, threading.BrokenBarrierError) as error:
            outcomes[rank] = error

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes, passes


def test_a_stop_request_to_one_process_stops_every_process_s_evaluation_without_a_hang(model):
    dataset, config = _Images(count=9), TestConfig(img_scale=(32, 24))
    (first, second), passes = _in_two_processes(model, dataset, config, asked_at=(1, None))
    # Rank 0 leaves at once; rank 1, not asked, scores its share, and both stop (no sum left waiting).
    assert passes == [1, 4]
    assert isinstance(first, EvaluationStopped) and first.reason == "SIGTERM"
    assert isinstance(second, EvaluationStopped) and second.reason == STOPPED_ELSEWHERE
    # Both asked (a scheduler's SIGTERM reaches every process): each leaves at its next image.
    (first, second), passes = _in_two_processes(model, dataset, config, asked_at=(2, 1))
    assert passes == [2, 1] and first.reason == second.reason == "SIGTERM"
    # Asked by nobody: one more sum, and the whole split scored as by one process.
    outcomes, passes = _in_two_processes(model, dataset, config, asked_at=(None, None))
    whole = evaluate(model, dataset, config)
    assert passes == [5, 4]
    for outcome in outcomes:
        assert torch.equal(outcome["confusion"], whole["confusion"]) and outcome["mIoU"] == whole["mIoU"]


def test_evaluate_in_batches_with_reading_workers_scores_the_same(model):
    """Images of two sizes (so that groups of one size finish out of order), three to a forward pass,
    read by two worker processes: the same confusion matrix and overlays as one image at a time."""
    dataset = _Images(count=7, sizes=((24, 32), (40, 28)))
    config = TestConfig(img_scale=(32, 24))
    one_by_one = evaluate(model, dataset, config, keep_predictions=3)
    batched = evaluate(model, dataset, config, keep_predictions=3, batch_size=3, workers=2)
    assert torch.equal(batched["confusion"], one_by_one["confusion"]) and batched["num_images"] == 7
    for kept, expected in zip(batched["predictions"], one_by_one["predictions"]):
        assert all(np.array_equal(a, b) for a, b in zip(kept, expected))
    assert [kept[0].shape for kept in batched["predictions"]] == [(24, 32, 3), (40, 28, 3), (24, 32, 3)]


def test_results_json_and_the_trivial_baseline(tmp_path):
    confusion = torch.tensor([[6, 0, 0], [2, 0, 0], [0, 0, 0]])  # class 2 absent
    assert majority_class_miou(confusion) == pytest.approx(100 * 0.75 / 2)
    results = {"aAcc": 75.0, "mIoU": 37.5, "mAcc": 50.0, "IoU": [75.0, 0.0, math.nan], "Acc": [100.0, 0.0, math.nan],
               "class_names": ["x", "y", "z"], "num_images": 1, "confusion": confusion}
    path = write_results(tmp_path / "r.json", results, split="val")
    data = json.loads(path.read_text())
    assert data["per_class"][2] == {"class": "z", "IoU": None, "Acc": None}
    assert data["split"] == "val" and "confusion" not in results_for_json(results)


def test_each_image_scored_on_its_own_in_one_or_several_processes(model, tmp_path):
    from segnext.evaluation import hardest_first, write_per_image

    dataset = _Images(count=5, sizes=((24, 32), (40, 28)))
    dataset.items[3]["label"][:] = 255  # an image without a labelled pixel
    dataset.image_paths = [f"img/{number}.jpg" for number in range(5)]
    dataset.label_paths = [f"lab/{number}.png" for number in range(5)]
    config = TestConfig(img_scale=(32, 24))
    results = evaluate(model, dataset, config, per_image=True, batch_size=2)
    assert [scores["index"] for scores in results["per_image"]] == list(range(5))
    for item, scores in zip(dataset.items, results["per_image"]):  # each as if it were the whole split
        alone = segnext.SegmentationMetric(5)
        alone.update(segment(model, item["image"], config), torch.from_numpy(item["label"].astype(np.int64)))
        expected = alone.compute()
        assert scores["pixels"] == int((item["label"] != 255).sum())
        if scores["pixels"]:
            assert scores["mIoU"] == pytest.approx(expected["mIoU"])
            assert scores["aAcc"] == pytest.approx(expected["aAcc"])
            assert scores["IoU"] == pytest.approx(expected["IoU"], nan_ok=True)
    assert results["per_image"][2]["image"] == "img/2.jpg" and results["per_image"][2]["label"] == "lab/2.png"
    # Processes each score their share; `reduce` brings every process the rows of all images.
    shards = [evaluate(model, dataset, config, shard=(rank, 2), per_image=True) for rank in range(2)]
    assert shards[0]["per_image"][1]["pixels"] == 0 < results["per_image"][1]["pixels"]  # not this process's image
    other_process = []  # what process 1 hands to the all-reduce, in order: its confusion, then its rows
    evaluate(model, dataset, config, shard=(1, 2), per_image=True, reduce=lambda t: other_process.append(t) or t)
    added = iter(other_process)
    reduced = evaluate(model, dataset, config, shard=(0, 2), per_image=True, reduce=lambda t: t + next(added))
    assert [s["mIoU"] for s in reduced["per_image"]] == pytest.approx([s["mIoU"] for s in results["per_image"]],
                                                                     nan_ok=True)
    # The table: hardest first, the image without a label last, empty cells where a class is absent.
    order = [scores["index"] for scores in hardest_first(results["per_image"])]
    assert order[-1] == 3 and [results["per_image"][i]["mIoU"] for i in order[:4]] == \
        sorted(results["per_image"][i]["mIoU"] for i in order[:4])
    path = write_per_image(tmp_path / "per_image.csv", results)
    lines = path.read_text().splitlines()
    assert lines[0] == "image,label,pixels,aAcc,mIoU,IoU a,IoU b,IoU c,IoU d,IoU e"
    assert [line.split(",")[0] for line in lines[1:]] == [f"img/{index}.jpg" for index in order]
    assert lines[-1] == "img/3.jpg,lab/3.png,0,,,,,,,"
    hardest = results["per_image"][order[0]]
    assert lines[1].split(",")[4] == f"{hardest['mIoU']:.2f}"



def test_calibration_counts_each_labelled_pixel_by_the_probability_of_its_label(model):
    from segnext.evaluation import ConfidenceCalibration

    dataset = _Images(count=4, sizes=((24, 32), (40, 28)))
    config = TestConfig(img_scale=(32, 24), scales=(0.75, 1.0), flip=True)
    plain = evaluate(model, dataset, config, batch_size=2)
    results = evaluate(model, dataset, config, batch_size=2, calibration=True)
    assert torch.equal(results["confusion"], plain["confusion"])  # the same labels
    expected = ConfidenceCalibration(255)
    for item in dataset.items:  # the reference: the full-size averaged probabilities, their largest
        probabilities = segment_logits(model, item["image"], config)
        label = torch.from_numpy(item["label"].astype(np.int64))
        expected.update(probabilities.argmax(0), probabilities.amax(0), label)
    calibration = results["calibration"]
    assert calibration["pixels"] == int(sum((item["label"] != 255).sum() for item in dataset.items))
    assert calibration["accuracy"] == pytest.approx(plain["aAcc"])
    assert calibration["ECE"] == pytest.approx(expected.compute()["ECE"], abs=1e-4)
    reference = expected.compute()["bins"]
    moved = sum(abs(got["pixels"] - want["pixels"]) for got, want in zip(calibration["bins"], reference))
    assert moved <= 2  # the probabilities in bands equal the full-size ones to float rounding: a pixel on a bin edge
    assert json.loads(json.dumps(results_for_json(results)))["calibration"]["ECE"] == pytest.approx(calibration["ECE"])
    # over processes: the counts are summed by `reduce`
    other_process = []
    evaluate(model, dataset, config, shard=(1, 2), calibration=True, reduce=lambda t: other_process.append(t) or t)
    added = iter(other_process)
    reduced = evaluate(model, dataset, config, shard=(0, 2), calibration=True, reduce=lambda t: t + next(added))
    assert reduced["calibration"]["pixels"] == calibration["pixels"]
    assert reduced["calibration"]["ECE"] == pytest.approx(calibration["ECE"])


class _FileDataset:
    """Three labelled images named as files in city folders, as a dataset of `segnext.data` lists them."""

    num_classes, ignore_index, class_names = 3, 255, ["a", "b", "c"]

    def __init__(self, root):
        self.image_paths = [str(root / "images" / city / f"{city}_{i}.jpg") for city, i in
                            (("aachen", 0), ("bonn", 0), ("bonn", 1))]
        self.label_paths = [path.replace(".jpg", "_label.png") for path in self.image_paths]
        self.labels = [np.full((4, 6), index % 3, np.uint8) for index in range(3)]
        self.labels[2][0, :] = 255  # ignored pixels

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return {"image": np.zeros((4, 6, 3), np.uint8), "label": self.labels[index]}


def test_evaluate_predictions_scores_files_found_by_the_images_names(tmp_path):
    from segnext.data import write_label
    from segnext.evaluation import SegmentationMetric, evaluate_predictions

    dataset = _FileDataset(tmp_path)
    predicted = [np.full((4, 6), value, np.uint8) for value in (0, 2, 2)]
    predicted[0][:, :2] = 1
    folder = tmp_path / "predictions"
    write_label(folder / "aachen" / "aachen_0.png", predicted[0], palette=[[0, 0, 0], [9, 9, 9], [7, 7, 7]])
    write_label(folder / "bonn_0.jpg.png", predicted[1])  # `segnext predict`'s name beside a bonn_0.png
    write_label(folder / "bonn" / "bonn_1.png", predicted[2])
    write_label(folder / "elsewhere" / "bonn_1.png", np.zeros((4, 6), np.uint8))  # its folders fit less
    results = evaluate_predictions(dataset, folder, per_image=True)
    expected = SegmentationMetric(3, 255)
    for prediction, label in zip(predicted, dataset.labels):
        expected.update(torch.from_numpy(prediction.astype(np.int64)), torch.from_numpy(label.astype(np.int64)))
    assert torch.equal(results["confusion"], expected.confusion) and results["num_images"] == 3
    assert results["mIoU"] == pytest.approx(expected.compute()["mIoU"])
    assert [row["image"] for row in results["per_image"]] == dataset.image_paths
    assert results["image_areas"].shape == (3, 3, 3)


def test_evaluate_predictions_reads_geotiff_label_maps(tmp_path):
    """`segnext predict --geotiff`'s files (NAME.tif) are found and scored as its PNGs are."""
    pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): GeoTIFFs untested")
    from segnext.data.geotiff import write_label_geotiff
    from segnext.evaluation import evaluate_predictions

    dataset = _FileDataset(tmp_path)
    folder = tmp_path / "predictions"
    for path, label in zip(dataset.image_paths, dataset.labels):
        write_label_geotiff(folder / f"{Path(path).stem}.tif", np.where(label == 255, 0, label),
                            palette=[[0, 0, 0], [9, 9, 9], [7, 7, 7]])
    results = evaluate_predictions(dataset, folder)
    assert results["num_images"] == 3 and results["aAcc"] == 100.0


def test_evaluate_predictions_scores_the_labels_given_and_their_coverage_when_asked(tmp_path):
    """Pixels left unlabelled (255, predict --unsure-below's) are an error unless skipped; skipped,
    the scores are those of the pixels given a label, and the coverage counts the labelled ones left."""
    from segnext.data import write_label
    from segnext.evaluation import SegmentationMetric, evaluate_predictions, results_for_json

    dataset = _FileDataset(tmp_path)
    folder = tmp_path / "predictions"
    predicted = [label.copy() for label in dataset.labels]
    predicted[2][predicted[2] == 255] = 0
    predicted[0][0, :3] = 1  # wrong
    predicted[0][1, :] = 255  # 6 labelled pixels left unlabelled
    predicted[2][0, :2] = 255  # 2 ignored pixels left unlabelled: not counted
    for path, prediction in zip(dataset.image_paths, predicted):
        write_label(folder / f"{Path(path).stem}.png", prediction)
    with pytest.raises(ValueError, match="score the labels given with --skip-unlabelled"):
        evaluate_predictions(dataset, folder)
    results = evaluate_predictions(dataset, folder, skip_unlabelled=True)
    expected = SegmentationMetric(3, 255)
    for prediction, label in zip(predicted, dataset.labels):
        kept = np.where(prediction == 255, 255, label)
        expected.update(torch.from_numpy(np.where(prediction == 255, 0, prediction).astype(np.int64)),
                        torch.from_numpy(kept.astype(np.int64)))
    assert torch.equal(results["confusion"], expected.confusion)
    labelled = sum(int((label != 255).sum()) for label in dataset.labels)
    assert results["coverage"] == {"labelled_pixels": labelled, "unlabelled_pixels": 6,
                                   "percent": pytest.approx(100 * (labelled - 6) / labelled)}
    assert results_for_json(results)["coverage"]["unlabelled_pixels"] == 6


def test_evaluate_predictions_names_the_file_that_cannot_be_a_prediction(tmp_path):
    from segnext.data import write_label
    from segnext.evaluation import evaluate_predictions

    dataset = _FileDataset(tmp_path)
    folder = tmp_path / "predictions"
    for city, index in (("aachen", 0), ("bonn", 0), ("bonn", 1)):
        write_label(folder / city / f"{city}_{index}.png", np.zeros((4, 6), np.uint8))
    write_label(folder / "bonn" / "bonn_1.png", np.zeros((3, 6), np.uint8))
    with pytest.raises(ValueError, match=f"{folder / 'bonn' / 'bonn_1.png'}: the prediction is 6x3 but the label of "
                                         f".*bonn_1.jpg is 6x4; predictions are scored at the image's own size"):
        evaluate_predictions(dataset, folder)
    write_label(folder / "bonn" / "bonn_1.png", np.full((4, 6), 26, np.uint8))  # a Cityscapes label id
    with pytest.raises(ValueError, match="bonn_1.png: the prediction holds class id 26, but the dataset has 3 classes "
                                         "\\(0..2\\); was it written for another dataset"):
        evaluate_predictions(dataset, folder)
    write_label(folder / "bonn" / "bonn_1.png", np.full((4, 6), 255, np.uint8))  # predict --unsure-below's
    with pytest.raises(ValueError, match="bonn_1.png: the prediction leaves pixels unlabelled \\(255, as segnext "
                                         "predict --unsure-below writes them\\)"):
        evaluate_predictions(dataset, folder)
    write_label(folder / "more" / "bonn" / "bonn_1.png", np.zeros((4, 6), np.uint8))
    write_label(folder / "other" / "bonn" / "bonn_1.png", np.zeros((4, 6), np.uint8))
    (folder / "bonn" / "bonn_1.png").unlink()
    with pytest.raises(ValueError, match="could both be the prediction of .*bonn_1.jpg; keep the predictions of one "
                                         "run in the folder"):
        evaluate_predictions(dataset, folder)
    with pytest.raises(ValueError, match="absent: no such folder of predictions"):
        evaluate_predictions(dataset, tmp_path / "absent")


class _FailingAt(_Images):
    """Reading image `failing` fails (a file gone, a Ctrl-C while it is read)."""

    def __init__(self, failing, error=KeyboardInterrupt, **options):
        super().__init__(**options)
        self.failing, self.error = failing, error

    def __getitem__(self, index):
        if index == self.failing:
            raise self.error()
        return self.items[index]


def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_results(model):
    """Interrupted at the fourth image, the partial scores are saved; a rerun from them scores only
    the other images and ends with the whole evaluation's numbers, through JSON and back."""
    from segnext.evaluation import PartialScores

    config = TestConfig(img_scale=(32, 24))
    whole = evaluate(model, _Images(count=6), config, per_image=True, calibration=True)
    saved = []
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, _FailingAt(3, count=6), config, per_image=True, calibration=True, save_partial=saved.append,
                 save_every=3600)
    assert len(saved) == 1 and saved[0].done == [0, 1, 2]  # saved on the way out, not by the clock
    partial = PartialScores.from_json(json.loads(json.dumps(saved[0].to_json())), 6)
    scored = []
    dataset = _Images(count=6)
    original = dataset.__class__.__getitem__
    dataset.__class__ = type("_Counted", (_Images,), {"__getitem__": lambda self, i: scored.append(i) or
                                                      original(self, i)})
    resumed = evaluate(model, dataset, config, per_image=True, calibration=True, resume_from=partial,
                       save_partial=saved.append, save_every=0)
    assert sorted(scored) == [3, 4, 5]
    assert torch.equal(resumed["confusion"], whole["confusion"]) and resumed["mIoU"] == whole["mIoU"]
    assert torch.equal(resumed["image_areas"], whole["image_areas"])
    assert resumed["calibration"] == whole["calibration"]
    assert saved[-1].done == list(range(6))  # saved after each group with save_every=0
    with pytest.raises(ValueError, match="an evaluation resumes in one process"):
        evaluate(model, dataset, config, shard=(0, 2), save_partial=saved.append)
    with pytest.raises(ValueError, match="other per_image / calibration settings"):
        evaluate(model, dataset, config, resume_from=partial)
