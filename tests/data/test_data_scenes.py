import json

import cv2
import numpy as np

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
