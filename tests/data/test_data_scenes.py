import json

import cv2
import numpy as np
import pytest

from segnext.data.scenes import CLASSES, make_scene_dataset


def test_scene_dataset_layout_and_labels(tmp_path):
    root = make_scene_dataset(tmp_path / "scenes", num_train=6, num_val=2, size=(64, 80), seed=3)
    meta = json.loads((root / "classes.json").read_text())
    assert meta["classes"] == CLASSES and len(meta["palette"]) == len(CLASSES)
    images = sorted((root / "images" / "train").glob("*.png"))
    labels = sorted((root / "labels" / "train").glob("*.png"))
    assert len(images) == len(labels) == 6 and len(list((root / "images" / "val").glob("*.png"))) == 2
    seen = set()
    for image_path, label_path in zip(images, labels):
        image, label = cv2.imread(str(image_path)), cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 80, 3) and label.shape == (64, 80) and label.dtype == np.uint8
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(len(CLASSES))) and {0, 2, 3} <= seen  # sky, road, grass in every scene


def test_scene_dataset_is_reproducible(tmp_path):
    a = make_scene_dataset(tmp_path / "a", 2, 1, size=(48, 48), seed=7)
    b = make_scene_dataset(tmp_path / "b", 2, 1, size=(48, 48), seed=7)
    for path in (a / "images" / "train").glob("*.png"):
        assert (path.read_bytes() == (b / "images" / "train" / path.name).read_bytes())


def test_scenes_are_never_written_over_or_among_a_users_dataset(tmp_path):
    """`segnext demo --work-dir my_project` writes its scenes to my_project/data: where a dataset of the
    user's is, its classes.json was replaced and the scenes mixed into its images."""
    theirs = tmp_path / "data"
    (theirs / "images/train").mkdir(parents=True)
    (theirs / "classes.json").write_text(json.dumps({"classes": ["bg", "crack"]}))
    with pytest.raises(FileExistsError, match=r"holds another dataset \(.*classes.json\).*--work-dir"):
        make_scene_dataset(theirs, num_train=2, num_val=1, size=(32, 40))
    assert json.loads((theirs / "classes.json").read_text()) == {"classes": ["bg", "crack"]}
    assert not any((theirs / "images/train").iterdir())
    (theirs / "classes.json").unlink()
    cv2.imwrite(str(theirs / "images/train/IMG_0001.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileExistsError, match="IMG_0001.png"):
        make_scene_dataset(theirs, num_train=2, num_val=1, size=(32, 40))
    ours = make_scene_dataset(tmp_path / "demo", num_train=2, num_val=1, size=(32, 40))
    assert make_scene_dataset(ours, num_train=2, num_val=1, size=(32, 40)) == ours  # its own scenes: resumed
    # scenes written before classes.json said that they are independent ("groups") are resumed too
    meta = json.loads((ours / "classes.json").read_text())
    assert meta.pop("groups") == ".+"
    (ours / "classes.json").write_text(json.dumps(meta))
    assert make_scene_dataset(ours, num_train=2, num_val=1, size=(32, 40)) == ours
    assert json.loads((ours / "classes.json").read_text())["groups"] == ".+"
