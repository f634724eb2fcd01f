"""`segnext data check`: one line per problem naming the file, non-zero exit status, frequencies."""

from __future__ import annotations

import json

import numpy as np
from synthetic_data import blob_label, random_image, save_image, save_label, save_pair

from segnext.cli.main import main
from segnext.data.check import check_dataset


def _folder(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "ignore_index": 255}))
    return tmp_path


def test_clean_dataset_passes_with_frequencies(tmp_path, capsys):
    root = _folder(tmp_path)
    label = np.zeros((10, 10), np.uint8)
    label[:, 6:] = 2
    label[0, :] = 255
    save_pair(root / "images/train/x.jpg", root / "labels/train/x.png", label)
    save_pair(root / "images/train/y.png", root / "labels/train/y.png", np.ones((4, 5), np.uint8))
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    assert report.pairs == 2 and report.problems == []
    assert report.class_pixels.tolist() == [54, 20, 36] and report.ignored_pixels == 10
    assert report.images_with_class.tolist() == [1, 1, 1]
    assert main(["data", "check", "folder", str(root), "--split", "train", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "2 pairs" in out
    assert any(line.split()[:3] == ["2", "c", "36"] for line in out.splitlines())  # the frequency row of class c


def test_every_kind_of_problem_is_reported_by_file(tmp_path, capsys):
    root = _folder(tmp_path)
    save_pair(root / "images/train/good.jpg", root / "labels/train/good.png", blob_label(8, 8, (0, 1)))
    save_image(root / "images/train/lonely_image.jpg", random_image(8, 8))
    save_label(root / "labels/train/lonely_label.png", np.zeros((8, 8), np.uint8))
    save_pair(root / "images/train/cut.jpg", root / "labels/train/cut.png", blob_label(64, 64, (0,)))
    data = (root / "images/train/cut.jpg").read_bytes()
    (root / "images/train/cut.jpg").write_bytes(data[: len(data) // 3])
    save_image(root / "images/train/wrong_size.jpg", random_image(8, 9))
    save_label(root / "labels/train/wrong_size.png", np.zeros((8, 8), np.uint8))
    save_pair(root / "images/train/bad_values.jpg", root / "labels/train/bad_values.png", blob_label(8, 8, (0, 3, 7)))
    save_pair(root / "images/train/colour_label.jpg", root / "labels/train/colour_label.png", blob_label(8, 8, (0,)))
    save_image(root / "labels/train/colour_label.png", random_image(8, 8))

    status = main(["data", "check", "folder", str(root), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert status == 1
    expectations = {
        "lonely_image.jpg": "without label",
        "lonely_label.png": "label without image",
        "cut.jpg": "truncated",
        "wrong_size.png": "9x8",
        "bad_values.png": "outside the classes: 3 ",
        "colour_label.png": "colour",
    }
    for name, words in expectations.items():
        matching = [line for line in problems if name in line]
        assert len(matching) == 1 and words in matching[0], (name, problems)
    assert len(problems) == len(expectations)
    assert "val: not found" in out  # a missing standard split is a note, not a problem


def test_check_of_a_missing_dataset_fails_cleanly(tmp_path, capsys):
    assert main(["data", "check", "ade20k", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "none of the ADE20K" in err and "Traceback" not in err


def test_check_notes_counts_against_the_standard_release(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    save_pair(root / "images/validation/a.jpg", root / "annotations/validation/a.png", blob_label(8, 8, (0, 150)))
    [report] = check_dataset("ade20k", tmp_path, split="val", workers=1, progress=False)
    assert report.problems == [] and any("2,000" in note for note in report.notes)
    assert report.ignored_pixels > 0 and report.class_pixels[149] > 0  # reduce-zero-label applied
    save_label(root / "annotations/validation/a.png", blob_label(8, 8, (0, 151)))
    [report] = check_dataset("ade20k", tmp_path, split="val", workers=1, progress=False)
    assert len(report.problems) == 1 and "151" in report.problems[0]
