"""`data.classes`: some of a dataset's classes, or classes merged from several, read through its
label map; the classes left out are ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_data import save_pair

from segnext.data import DataError, build_dataset
from segnext.data.selection import select_classes, selection_table

CLASSES = ["sky", "road", "car", "bus", "person"]
PALETTE = [[70, 130, 180], [128, 64, 128], [0, 0, 142], [0, 60, 100], [220, 20, 60]]


@pytest.fixture
def street(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": CLASSES, "palette": PALETTE}))
    label = np.array([[0, 1, 2, 3, 4, 255]], dtype=np.uint8).repeat(4, 0)
    save_pair(tmp_path / "images/train/a.jpg", tmp_path / "labels/train/a.png", label)
    return tmp_path


def test_a_list_keeps_those_classes_in_its_order_and_ignores_the_others(street):
    dataset = select_classes(build_dataset("folder", street, "train"), ["Person", "road"])  # letter case aside
    assert dataset.class_names == ["person", "road"] and dataset.num_classes == 2
    assert dataset.palette == [PALETTE[4], PALETTE[1]]
    assert dataset[0]["label"][0].tolist() == [255, 1, 255, 255, 0, 255]


def test_a_mapping_merges_classes_and_star_takes_the_rest(street):
    dataset = select_classes(build_dataset("folder", street, "train"),
                             {"vehicle": ["car", "bus"], "road": "road", "other": "*"})
    assert dataset.class_names == ["vehicle", "road", "other"] and dataset.palette[0] == PALETTE[2]
    assert dataset[0]["label"][0].tolist() == [2, 1, 0, 0, 2, 255]  # 255 stays ignored
    names, new_id, members = selection_table(CLASSES, {"vehicle": ["car", "bus"], "road": "road"})
    assert members == [[2, 3], [1]] and new_id[:5].tolist() == [255, 1, 0, 0, 255]


@pytest.mark.parametrize("selection, message", [
    (["road", "cars"], r"'cars' is not a class of the dataset \(sky, road, car, bus, person\). Did you mean 'car'"),
    ({"vehicle": ["car", "bus"], "big": "bus"}, r"'bus' is in both 'vehicle' and 'big'"),
    ({"a": "*", "b": "*"}, r"\"\*\" \(every other class\) may stand for one new class only"),
    ({"all": ["sky", "road", "car", "bus", "person"], "rest": "*"}, r"data.classes.rest: \"\*\" takes no class"),
    ({"vehicle": 3}, r"data.classes.vehicle: a class name of the dataset, a list of them, or \"\*\"; got 3"),
    ("road", r"a list of class names \(\[road, car\]\) or a mapping"),
    ([], "empty; name at least one class"),
    (["road", "Road"], "a class is listed twice"),
])
def test_a_wrong_selection_is_named(selection, message):
    with pytest.raises(DataError, match=message):
        selection_table(CLASSES, selection)


def test_letter_case_must_match_where_it_tells_classes_apart():
    with pytest.raises(DataError, match="'CAR' is not a class"):
        selection_table(["car", "Car"], ["CAR"])
    assert selection_table(["car", "Car"], ["Car"])[0] == ["Car"]


def test_data_check_counts_the_classes_a_selection_makes(street, capsys):
    from segnext.cli.main import main

    assert main(["data", "check", "folder", str(street), "--split", "train", "--classes",
                 "{vehicle: [car, bus], other: '*'}", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "classes as training with 'data.classes={\"vehicle\": [\"car\", \"bus\"], \"other\": \"*\"}' reads them: " \
        "vehicle, other (the others ignored)" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0  vehicle", "1  other"))]
    assert [row[2] for row in rows] == ["8", "12"]  # pixels: car + bus; sky, road and person
    assert "loss.class_weight=[" in out and "ignored 4 = 16.67%" in out
    assert main(["data", "check", "folder", str(street), "--classes", "[road, cars]"]) == 1
    assert "--classes: 'cars' is not a class of the dataset" in capsys.readouterr().err
