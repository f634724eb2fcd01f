"""Each dataset read back from a tiny tree in its real layout: counts, ids, ignore, label transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic_data import blob_label, random_image, save_image, save_label, save_pair, write_lines

from segnext.cli.main import main
from segnext.data import DATASETS, DataError, TrainTransform, build_dataset, default_palette
from segnext.data import classes as C
from segnext.data.io import read_label


def _values(ds, index):
    return sorted(np.unique(ds[index]["label"]).tolist())


def test_registry_names_and_class_tables():
    assert set(DATASETS) == {"ade20k", "cityscapes", "voc", "voc_aug", "coco_stuff", "pascal_context",
                             "pascal_context_59", "isaid", "camvid", "folder"}
    sizes = {"ade20k": 150, "cityscapes": 19, "voc": 21, "voc_aug": 21, "coco_stuff": 171, "pascal_context": 60,
             "pascal_context_59": 59, "isaid": 16, "camvid": 11}
    for name, n in sizes.items():
        spec = DATASETS[name]
        assert len(spec.class_names) == n and len(spec.palette) == n, name
        assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in spec.palette), name
    # Spot checks against MMSegmentation's tables.
    assert DATASETS["ade20k"].class_names[:3] == ("wall", "building", "sky")
    assert DATASETS["ade20k"].palette[0] == (120, 120, 120)
    assert DATASETS["cityscapes"].class_names[-1] == "bicycle"
    assert DATASETS["coco_stuff"].class_names[80] == "banner" and DATASETS["coco_stuff"].class_names[-1] == "wood"
    assert DATASETS["pascal_context"].class_names[:3] == ("background", "aeroplane", "bag")
    assert DATASETS["pascal_context_59"].class_names[0] == "aeroplane"
    assert DATASETS["isaid"].palette[15] == (0, 100, 155)


def test_coco_stuff_id_table_matches_mmsegmentation():
    table = C.COCO_STUFF_RAW_TO_TRAIN_ID
    # pairs from MMSegmentation's clsID_to_trID around every gap, and the ends
    for raw, train_id in {0: 0, 10: 10, 12: 11, 24: 23, 26: 24, 27: 25, 30: 26, 43: 39, 45: 40, 64: 59, 66: 60,
                          69: 61, 71: 62, 81: 72, 83: 73, 89: 79, 91: 80, 92: 81, 181: 170}.items():
        assert table[raw] == train_id
    assert len(table) == 171 and not set(C.COCO_STUFF_UNUSED_RAW_IDS) & set(table)


def test_ade20k_reduce_zero_label(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for i, values in enumerate([(0, 1, 150), (5, 6)]):
        save_pair(root / f"images/training/ADE_train_{i:08d}.jpg", root / f"annotations/training/ADE_train_{i:08d}.png",
                  blob_label(40, 50, values, seed=i), seed=i)
    save_pair(root / "images/validation/ADE_val_00000001.jpg", root / "annotations/validation/ADE_val_00000001.png",
              blob_label(30, 20, (3,)))
    train = build_dataset("ade20k", tmp_path, "train")  # parent folder and the "train" alias both work
    assert len(train) == 2 and train.split == "training" and train.num_classes == 150
    assert _values(train, 0) == [0, 149, 255]  # 1 -> 0, 150 -> 149, 0 -> ignore
    assert _values(train, 1) == [4, 5]
    sample = train[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (40, 50, 3)
    assert sample["label"].dtype == np.uint8 and sample["label"].shape == (40, 50)
    assert sample["path"].endswith("ADE_train_00000000.jpg") and sample["label_path"].endswith(".png")
    assert len(build_dataset("ade20k", root, "validation")) == 1


def test_cityscapes_label_ids_through_the_official_table(tmp_path):
    label = np.array([[7, 8, 26, 33], [0, 1, 4, 255]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    for city, frame in [("aachen", "aachen_000000_000019"), ("bremen", "bremen_000001_000019")]:
        save_pair(tmp_path / f"leftImg8bit/train/{city}/{frame}_leftImg8bit.png",
                  tmp_path / f"gtFine/train/{city}/{frame}_gtFine_labelIds.png", label)
        save_label(tmp_path / f"gtFine/train/{city}/{frame}_gtFine_instanceIds.png", label)  # must be ignored
    ds = build_dataset("cityscapes", tmp_path, "train")
    assert len(ds) == 2 and ds.num_classes == 19
    assert ds[0]["label"][0, ::4].tolist() == [0, 1, 13, 18]
    assert ds[0]["label"][4, ::4].tolist() == [255, 255, 255, 255]
    # once trainIds exist they are read as they are (and win over labelIds)
    for city, frame in [("aachen", "aachen_000000_000019"), ("bremen", "bremen_000001_000019")]:
        save_label(tmp_path / f"gtFine/train/{city}/{frame}_gtFine_labelTrainIds.png", np.full((8, 16), 5, np.uint8))
    assert _values(build_dataset("cityscapes", tmp_path, "train"), 1) == [5]


def test_voc_reads_palette_indices(tmp_path):
    root = tmp_path / "VOCdevkit/VOC2012"
    label = blob_label(30, 40, (0, 15, 255, 7))
    for name in ["2007_000032", "2007_000039", "2008_000001"]:
        save_pair(root / f"JPEGImages/{name}.jpg", root / f"SegmentationClass/{name}.png", label,
                  palette=C.VOC_PALETTE)
    write_lines(root / "ImageSets/Segmentation/train.txt", ["2007_000032", "2007_000039"])
    write_lines(root / "ImageSets/Segmentation/val.txt", ["2008_000001"])
    train = build_dataset("voc", tmp_path, "train")
    assert len(train) == 2 and train.num_classes == 21 and train.class_names[15] == "person"
    assert _values(train, 0) == [0, 7, 15, 255]
    assert len(build_dataset("voc", root, "val")) == 1


def test_coco_stuff_raw_and_converted(tmp_path):
    raw = np.array([[0, 11, 12, 91], [181, 255, 90, 92]], dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    save_pair(tmp_path / "images/val2017/000000000139.jpg", tmp_path / "annotations/val2017/000000000139.png", raw)
    ds = build_dataset("coco_stuff", tmp_path, "val")  # raw maps, mapped on the fly
    assert ds.num_classes == 171
    assert ds[0]["label"][0, ::2].tolist() == [0, 255, 11, 80]  # unused thing id 11 -> ignore
    assert ds[0]["label"][2, ::2].tolist() == [170, 255, 255, 81]
    save_label(tmp_path / "annotations/val2017/000000000139_labelTrainIds.png", np.full((4, 8), 170, np.uint8))
    assert _values(build_dataset("coco_stuff", tmp_path, "val2017"), 0) == [170]


def test_pascal_context_60_and_59(tmp_path):
    root = tmp_path / "VOC2010"
    label = np.array([[0, 1, 59, 30]], dtype=np.uint8).repeat(3, 0)
    save_pair(root / "JPEGImages/2008_000002.jpg", root / "SegmentationClassContext/2008_000002.png", label)
    write_lines(root / "ImageSets/SegmentationContext/train.txt", ["2008_000002"])
    ds60 = build_dataset("pascal_context", tmp_path, "train")
    ds59 = build_dataset("pascal_context_59", tmp_path, "train")
    assert ds60.num_classes == 60 and ds59.num_classes == 59
    assert ds60[0]["label"][0].tolist() == [0, 1, 59, 30]
    assert ds59[0]["label"][0].tolist() == [255, 0, 58, 29]
    assert ds60.class_names[30] == ds59.class_names[29]


def test_isaid_patches(tmp_path):
    save_pair(tmp_path / "iSAID/img_dir/val/P0003_0_896_0_896.png",
              tmp_path / "iSAID/ann_dir/val/P0003_0_896_0_896_instance_color_RGB.png", blob_label(16, 16, (0, 15, 255)))
    ds = build_dataset("isaid", tmp_path, "val")
    assert len(ds) == 1 and ds.num_classes == 16 and _values(ds, 0) == [0, 15, 255]


def test_camvid_segnet_layout_void_becomes_ignore(tmp_path):
    root = tmp_path / "CamVid"
    label = blob_label(12, 16, (0, 10, 11))
    save_pair(root / "train/0001TP_006690.png", root / "trainannot/0001TP_006690.png", label)
    save_pair(root / "val/0016E5_07959.png", root / "valannot/0016E5_07959.png", label)
    ds = build_dataset("camvid", tmp_path, "train")
    assert len(ds) == 1 and ds.class_names[0] == "Sky" and _values(ds, 0) == [0, 10, 255]


def test_splits_joined_with_plus_read_as_one(tmp_path):
    """train+val: a final model trained on all the labelled data (aliases apply to each part)."""
    root = tmp_path / "ADEChallengeData2016"
    for split, names in (("training", "ab"), ("validation", "c")):
        for index, name in enumerate(names):
            save_pair(root / f"images/{split}/{name}.jpg", root / f"annotations/{split}/{name}.png",
                      blob_label(8, 8, (index + 1,)))
    joined = build_dataset("ade20k", root, "train+val")
    assert joined.split == "training+validation" and len(joined) == 3
    assert [p.rsplit("/", 1)[1] for p in joined.image_paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert _values(joined, 2) == [0]  # c's raw 1, reduced as every ADE20K label
    (root / "images/empty").mkdir()
    (root / "annotations/empty").mkdir()
    for split, message in (("train+train", "join different split names"), ("train+", "join different"),
                           ("train+test", "split 'test' found"), ("train+empty", "'empty' .* is empty")):
        with pytest.raises(DataError, match=message):
            build_dataset("ade20k", root, split)


def test_splits_in_different_layouts_are_not_joined(tmp_path):
    """CamVid's train in segnext's folders, its val as SegNet's tutorial stores it: the same labels read two
    ways, which one dataset cannot mix."""
    label = blob_label(12, 16, (0, 10))
    save_pair(tmp_path / "images/train/0001TP_006690.png", tmp_path / "labels/train/0001TP_006690.png", label)
    save_pair(tmp_path / "val/0016E5_07959.png", tmp_path / "valannot/0016E5_07959.png", label)
    with pytest.raises(DataError, match="'train' and 'val' are stored in different layouts"):
        build_dataset("camvid", tmp_path, "train+val")


def test_folder_dataset_with_classes_json(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps(
        {"classes": ["bg", "cat", "dog"], "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "ignore_index": 9}))
    save_pair(tmp_path / "images/train/a.jpg", tmp_path / "labels/train/a.png", blob_label(10, 12, (0, 2, 9)))
    save_pair(tmp_path / "images/train/b.PNG", tmp_path / "labels/train/b.png", blob_label(10, 12, (1,)))
    save_pair(tmp_path / "images/train/c.JPG", tmp_path / "labels/train/c.PNG", blob_label(10, 12, (2,)))  # Windows
    ds = build_dataset("folder", tmp_path, "train")
    assert len(ds) == 3 and ds.class_names == ["bg", "cat", "dog"] and ds.palette[1] == [255, 0, 0]
    assert ds.ignore_index == 255
    assert _values(ds, 0) == [0, 2, 255]  # the file's ignore value 9 becomes 255


def test_folder_labels_stored_from_one_with_reduce_zero_label(tmp_path, capsys):
    """MMSegmentation's custom datasets with reduce_zero_label=True: stored 0 is "no label", k is class k-1."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["wall", "floor"], "reduce_zero_label": True}))
    save_pair(tmp_path / "images/train/a.jpg", tmp_path / "labels/train/a.png", blob_label(10, 12, (0, 1, 2)))
    save_pair(tmp_path / "images/val/b.jpg", tmp_path / "labels/val/b.png", blob_label(10, 12, (1, 2, 255)))
    ds = build_dataset("folder", tmp_path, "train")
    assert _values(ds, 0) == [0, 1, 255] and ds.num_classes == 2
    raw = read_label(tmp_path / "labels/train/a.png")
    assert np.array_equal(ds[0]["label"], np.where(raw == 0, 255, raw - 1))
    assert _values(build_dataset("folder", tmp_path, "val"), 0) == [0, 1, 255]
    assert main(["data", "check", "folder", str(tmp_path), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "reduce-zero-label: raw 0 -> 255 (ignore), raw k -> k-1 for k = 1..2" in out and "no problems found" in out
    save_pair(tmp_path / "images/val/b.jpg", tmp_path / "labels/val/b.png", blob_label(10, 12, (1, 3)))
    assert main(["data", "check", "folder", str(tmp_path), "--split", "val", "--workers", "1", "--no-progress"]) == 1
    assert "label values outside the classes: 3" in capsys.readouterr().out  # class ids would stop at 2


def test_folder_dataset_split_first_and_masks_folders(tmp_path, capsys):
    """train/images + train/masks (how many exported and downloaded datasets come) is read as it is,
    as is masks/<split> beside images/<split>; `data split` writes its splits in the same layout."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "crack"]}))
    for i, group in enumerate(["wall1_0", "wall1_1", "wall2_0", "wall3_0"]):
        save_pair(tmp_path / f"train/images/{group}.jpg", tmp_path / f"train/masks/{group}.png",
                  blob_label(10, 12, (0, 1), seed=i), seed=i)
    save_pair(tmp_path / "val/images/v.png", tmp_path / "val/labels/v.png", blob_label(10, 12, (1, 255)))
    train, val = build_dataset("folder", tmp_path, "train"), build_dataset("folder", tmp_path, "val")
    assert len(train) == 4 and train[0]["label_path"] == str(tmp_path / "train/masks/wall1_0.png")
    assert len(val) == 1 and _values(val, 0) == [1, 255]
    assert main(["data", "split", "folder", str(tmp_path), "--hold-out", "wall2"]) == 0
    assert (tmp_path / "train_heldout/images/wall2_0.jpg").is_symlink()
    assert [s["path"] for s in build_dataset("folder", tmp_path, "train_heldout")] == \
        [str(tmp_path / "train_heldout/images/wall2_0.jpg")]
    assert len(build_dataset("folder", tmp_path, "train_fit")) == 3
    other = tmp_path / "other"
    (other / "classes.json").parent.mkdir()
    (other / "classes.json").write_text(json.dumps({"classes": ["bg", "crack"]}))
    save_pair(other / "images/train/a.jpg", other / "masks/train/a.png", blob_label(10, 12, (0, 1)))
    assert len(build_dataset("folder", other, "train")) == 1
    with pytest.raises(DataError, match=r"ROOT/<split>/images"):  # the error names both layouts
        build_dataset("folder", other, "val")


def test_folder_masks_may_be_tiffs_as_aerial_datasets_keep_them(tmp_path, capsys):
    """images/<split>/*.tif with masks/<split>/*.tif (or .tiff, beside PNGs): read, checked and split as
    the PNG masks are; `data split`'s links keep each mask's own ending."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["ground", "building"]}))
    for i, name in enumerate(["austin_1", "austin_2", "vienna_1"]):
        save_pair(tmp_path / f"images/train/{name}.tif", tmp_path / f"masks/train/{name}.tif",
                  blob_label(10, 12, (0, 1), seed=i), seed=i)
    save_pair(tmp_path / "images/train/vienna_2.tif", tmp_path / "masks/train/vienna_2.png", blob_label(10, 12, (0, 1)))
    train = build_dataset("folder", tmp_path, "train")
    assert len(train) == 4 and train[0]["label_path"] == str(tmp_path / "masks/train/austin_1.tif")
    assert np.array_equal(train[0]["label"], blob_label(10, 12, (0, 1), seed=0))
    assert main(["data", "check", "folder", str(tmp_path), "--split", "train", "--no-frequencies"]) == 0
    assert main(["data", "split", "folder", str(tmp_path), "--split", "train", "--hold-out", "vienna"]) == 0
    assert (tmp_path / "labels/train_heldout/vienna_1.tif").is_symlink()
    assert (tmp_path / "labels/train_heldout/vienna_2.png").is_symlink()
    assert len(build_dataset("folder", tmp_path, "train_heldout")) == 2
    assert len(build_dataset("folder", tmp_path, "train_fit")) == 2


def test_folder_images_in_sequence_sub_folders(tmp_path, capsys):
    """images/<split>/<sequence>/ (video frames kept by sequence) as MMSegmentation lists them,
    recursively, labels at the same relative path; the sub-folder is the group that `data split`
    holds out. Hidden folders (a notebook's .ipynb_checkpoints) are not read."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "lane"]}))
    for i, frame in enumerate(["road1/0001", "road1/0002", "road2/0001", "road3/night/0001"]):
        save_pair(tmp_path / f"images/train/{frame}.jpg", tmp_path / f"labels/train/{frame}.png",
                  blob_label(10, 12, (0, 1), seed=i), seed=i)
    save_pair(tmp_path / "images/train/.ipynb_checkpoints/0001-checkpoint.jpg",
              tmp_path / "labels/train/.ipynb_checkpoints/0001-checkpoint.png", blob_label(10, 12, (0,)))
    train = build_dataset("folder", tmp_path, "train")
    assert [s["path"] for s in train] == [str(tmp_path / f"images/train/{frame}.jpg") for frame in
                                          ["road1/0001", "road1/0002", "road2/0001", "road3/night/0001"]]
    assert train[3]["label_path"] == str(tmp_path / "labels/train/road3/night/0001.png")
    assert main(["data", "split", "folder", str(tmp_path), "--hold-out", "road2"]) == 0
    capsys.readouterr()
    assert [s["path"] for s in build_dataset("folder", tmp_path, "train_heldout")] == \
        [str(tmp_path / "images/train_heldout/road2/0001.jpg")]
    assert len(build_dataset("folder", tmp_path, "train_fit")) == 3
    assert main(["data", "check", "folder", str(tmp_path), "--split", "train", "--workers", "1",
                 "--no-progress"]) == 0
    assert "images " + str(tmp_path / "images/train") + "/**/*.jpg" in capsys.readouterr().out


def test_sequence_folders_without_split_folders_are_named_with_how_to_split_them(tmp_path, capsys):
    """images/drive1/, images/drive2/ and no train folder: they may be splits or groups of one set;
    the error says how to make train and val of them if they are groups, and that works."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "lane"]}))
    for i, drive in enumerate(["drive1", "drive2", "drive3"]):
        save_pair(tmp_path / f"images/{drive}/0001.jpg", tmp_path / f"labels/{drive}/0001.png",
                  blob_label(10, 12, (0, 1), seed=i), seed=i)
    with pytest.raises(DataError, match=r"holds the folders drive1, drive2, drive3 and no train folder\. If they "
                                        r"are groups .* `segnext data split folder .* --split \. --hold-out-fraction"):
        build_dataset("folder", tmp_path, "train")
    assert main(["data", "split", "folder", str(tmp_path), "--split", ".", "--hold-out", "drive2"]) == 0
    val = build_dataset("folder", tmp_path, "val")
    assert [s["path"] for s in val] == [str(tmp_path / "images/val/drive2/0001.jpg")]
    assert len(build_dataset("folder", tmp_path, "train")) == 2
    # `data check` checks train and val, not again the drive folders their links lead to
    capsys.readouterr()
    assert main(["data", "check", "folder", str(tmp_path), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "folder train: 2 pairs" in out and "folder val: 1 pair" in out and "folder drive1" not in out
    assert "drive1, drive2, drive3 hold the frames that train and val link to" in out


def test_folder_splits_of_other_names_are_named_and_checked(tmp_path, capsys):
    """`valid` (as many exports name it) instead of `val`: the error names the splits there, instead of
    suggesting to hold part of train out, and `data check` checks every split on disk."""
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "crack"]}))
    for split in ("train", "valid", "test"):
        save_pair(tmp_path / f"{split}/images/{split}_a.jpg", tmp_path / f"{split}/labels/{split}_a.png",
                  blob_label(10, 12, (0, 1)))
    with pytest.raises(DataError, match=r"Splits there: test, train, valid; name the one meant") as error:
        build_dataset("folder", tmp_path, "val")
    assert "Only train is there" not in str(error.value)
    assert main(["data", "check", "folder", str(tmp_path), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "folder valid: 1 pair in" in out and "folder test: 1 pair in" in out and "folder val: absent" in out


@pytest.mark.parametrize("content", [
    ["bg", "cat", "dog"],                                              # a bare list of the names
    {"1": "cat", "0": "bg", "2": "dog"},                               # transformers' id2label
    {"id2label": {"0": "bg", "1": "cat", "2": "dog"}, "num_labels": 3},  # ... inside a model's config.json
])
def test_folder_classes_json_as_a_list_or_id2label(tmp_path, content):
    (tmp_path / "classes.json").write_text(json.dumps(content))
    save_pair(tmp_path / "images/train/a.jpg", tmp_path / "labels/train/a.png", blob_label(10, 12, (0, 2)))
    ds = build_dataset("folder", tmp_path, "train")
    assert ds.class_names == ["bg", "cat", "dog"] and ds.palette == default_palette(3) and ds.ignore_index == 255


@pytest.mark.parametrize("content, message", [
    ({"palette": [[0, 0, 0]]}, r'expected the class names: \{"classes": \["sky", "road"\], \.\.\.\}, a list'),
    ([], '"classes" must be a non-empty list of strings'),
    (["a", 1], '"classes" must be a non-empty list of strings'),
    ({"0": "a", "2": "b"}, "the ids of id2label must be 0..N-1, got 0, 2"),
    ({"classes": ["a", "b"], "palette": [[0, 0, 0]]}, "palette"),
    ({"classes": ["a", "b"], "ignore_index": 1}, "ignore_index"),
    ({"classes": ["a", "b"], "num_classes": 3}, "num_classes"),
    ({"classes": ["a", "b"], "reduce_zero_label": "yes"}, '"reduce_zero_label" must be true or false'),
    ({"classes": ["a", "b"], "reduce_zero_label": True, "ignore_index": 2},
     r"ignore_index 2 must be an integer from 3 \(stores class k as k\+1 \(reduce_zero_label\) and 2 classes\)"),
    ({"classes": [str(i) for i in range(255)], "reduce_zero_label": True}, "at most 254 fit"),
    ({"classes": ["a", "b"], "groups": "(["}, r'"groups" must be a regular expression .* or "\.\+" for images '
                                            r"independent of one another; '\(\[' is not one \("),
    ({"classes": ["a", "b"], "groups": None}, '"groups" must be a regular expression .*; got null'),
])
def test_folder_classes_json_errors(tmp_path, content, message):
    (tmp_path / "classes.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        build_dataset("folder", tmp_path, "train")


def test_missing_layout_says_what_was_expected(tmp_path):
    with pytest.raises(DataError, match=r"(?s)leftImg8bit/val.*labelTrainIds.*segnext data prepare cityscapes"):
        build_dataset("cityscapes", tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="classes.json"):
        build_dataset("folder", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("kitti", tmp_path, "train")


def test_image_without_label_is_an_error_naming_it(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    save_pair(root / "images/training/a.jpg", root / "annotations/training/a.png", blob_label(8, 8, (1,)))
    save_image(root / "images/training/b.jpg", random_image(8, 8))
    with pytest.raises(DataError, match=r"b\.jpg: no label"):
        build_dataset("ade20k", root, "training")


def test_unreadable_file_error_names_file_and_index(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for name in "abc":
        save_pair(root / f"images/training/{name}.jpg", root / f"annotations/training/{name}.png",
                  blob_label(8, 8, (1,)))
    data = (root / "images/training/b.jpg").read_bytes()
    (root / "images/training/b.jpg").write_bytes(data[: len(data) // 2])
    ds = build_dataset("ade20k", root, "training")
    with pytest.raises(DataError, match=r"index 1: .*b\.jpg"):
        ds[1]
    # the same inside a DataLoader worker: an error, not a skip or a hang
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, timeout=60)
    with pytest.raises(DataError, match=r"index 1: .*b\.jpg"):
        list(loader)


def test_size_mismatch_is_an_error(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    save_image(root / "images/training/a.jpg", random_image(8, 10))
    save_label(root / "annotations/training/a.png", np.ones((8, 9), np.uint8))
    with pytest.raises(DataError, match=r"10x8 but its label .*a\.png is 9x8"):
        build_dataset("ade20k", root, "training")[0]


def test_transforms_through_the_dataset_are_reproducible(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for i in range(4):
        save_pair(root / f"images/training/{i}.jpg", root / f"annotations/training/{i}.png",
                  blob_label(60, 80, (1, 2, 3), seed=i), seed=i)
    transform = TrainTransform(crop_size=(32, 32), img_scale=(160, 60))
    ds = build_dataset("ade20k", root, "training", transform=transform, seed=7)
    first = ds[2]
    assert first["image"].shape == (3, 32, 32) and first["image"].dtype == torch.float32
    assert first["label"].shape == (32, 32) and first["label"].dtype == torch.int64
    assert torch.equal(ds[2]["image"], first["image"])  # same (seed, epoch, index) -> same sample
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], first["image"])  # another epoch -> another augmentation
    other_seed = build_dataset("ade20k", root, "training", transform=transform, seed=8)
    assert not torch.equal(other_seed[2]["image"], first["image"])
    # independent of the number of workers
    ds.set_epoch(3)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, timeout=60 if workers else 0)
        batches.append(torch.cat([batch["image"] for batch in loader]))
    assert torch.equal(batches[0], batches[1])
    with pytest.raises(IndexError):
        ds[4]


def _four_augmented_scenes(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for i in range(4):
        save_pair(root / f"images/training/{i}.jpg", root / f"annotations/training/{i}.png",
                  blob_label(60, 80, (1, 2, 3), seed=i), seed=i)
    return build_dataset("ade20k", root, "training", transform=TrainTransform(crop_size=(32, 32), img_scale=(160, 60)))


def test_set_epoch_reaches_persistent_workers(tmp_path):
    ds = _four_augmented_scenes(tmp_path)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True, timeout=60)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        epochs.append(next(iter(loader))["image"])
    expected = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        expected.append(torch.stack([ds[i]["image"] for i in range(4)]))
    assert torch.equal(epochs[0], expected[0]) and torch.equal(epochs[1], expected[1])
    assert not torch.equal(epochs[0], epochs[1])


class _IndexWithEpoch(torch.utils.data.Dataset):
    """A wrapper that sets the epoch inside the worker for each item, as a sampler-driven trainer may."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return 8

    def __getitem__(self, item):
        index, epoch = item % 4, item // 4 * 5  # epochs 0 and 5 interleaved between the workers
        self.dataset.set_epoch(epoch)
        return self.dataset[index]["image"]


def test_set_epoch_inside_workers_is_local_to_the_worker(tmp_path):
    ds = _four_augmented_scenes(tmp_path)
    loader = torch.utils.data.DataLoader(_IndexWithEpoch(ds), batch_size=1, num_workers=2, timeout=60,
                                         sampler=[0, 4, 1, 5, 2, 6, 3, 7])
    ds.set_epoch(9)
    got = [batch[0] for batch in loader]
    assert ds.epoch == 9  # the workers' settings did not leak into the main process (shared memory)
    for position, item in enumerate([0, 4, 1, 5, 2, 6, 3, 7]):
        ds.set_epoch(item // 4 * 5)
        assert torch.equal(got[position], ds[item % 4]["image"]), item


def test_a_missing_val_split_next_to_train_says_how_to_hold_part_of_train_out(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    save_pair(tmp_path / "images/train/walk1_0.png", tmp_path / "labels/train/walk1_0.png", blob_label(6, 6, (0, 1)))
    with pytest.raises(DataError, match=r"Only train is there: `segnext data split folder .* --hold-out-fraction "
                                        r"0.2` .* data.train_split=train_fit data.val_split=train_heldout"):
        build_dataset("folder", tmp_path, "val")
    with pytest.raises(DataError) as error:  # the hint is for a missing val split only
        build_dataset("folder", tmp_path, "test")
    assert "Only train is there" not in str(error.value)


def _mask_folder(root, mask: np.ndarray, palette=None):
    save_image(root / "images/train/a.jpg", np.zeros((*mask.shape[:2], 3), dtype=np.uint8))
    (root / "labels/train").mkdir(parents=True)
    image = Image.fromarray(mask, "P" if palette else None)
    if palette:
        image.putpalette(palette + [0] * (768 - len(palette)))
    image.save(root / "labels/train/a.png")


def test_a_folder_without_classes_json_is_told_the_classes_json_its_masks_need(tmp_path):
    """The error names what the first masks hold and a classes.json that reads them."""
    binary = np.zeros((8, 8), dtype=np.uint8)
    binary[2:5, 2:5] = 255
    _mask_folder(tmp_path / "binary", binary)
    with pytest.raises(FileNotFoundError, match=r"hold 0 and 255 \(binary masks; 255 would be read as \"no label\"\): "
                                                r"write .*classes.json as \{\"classes\": \[\"background\", "
                                                r"\"object\"\], \"palette\": \[\[0, 0, 0\], \[255, 255, 255\]\]\}.* "
                                                r"`segnext data prepare folder"):
        build_dataset("folder", tmp_path / "binary", "train")
    ids = np.array([[0, 2, 255, 0]] * 4, dtype=np.uint8)
    _mask_folder(tmp_path / "ids", ids, palette=[0, 0, 0, 10, 20, 30, 40, 50, 60])
    with pytest.raises(FileNotFoundError, match=r"hold the values 0, 2 and 255 \(no label\): class ids, read as they "
                                                r"are with .* as \{\"classes\": \[\"class_0\", \"class_1\", "
                                                r"\"class_2\"\], \"palette\": \[\[0, 0, 0\], \[10, 20, 30\], "
                                                r"\[40, 50, 60\]\]\}"):
        build_dataset("folder", tmp_path / "ids", "train")
    colours = np.zeros((4, 4, 3), dtype=np.uint8)
    colours[:2] = [128, 64, 128]
    _mask_folder(tmp_path / "colours", colours)
    with pytest.raises(FileNotFoundError, match=r"hold 2 colours: name the class of each in .*\"palette\": "
                                                r"\[\[0, 0, 0\], \[128, 64, 128\]\]\}"):
        build_dataset("folder", tmp_path / "colours", "train")
    _mask_folder(tmp_path / "photo", random_image(16, 16))
    with pytest.raises(FileNotFoundError, match="hold more than 32 colours, as photos or smoothed"):
        build_dataset("folder", tmp_path / "photo", "train")


def test_mmsegmentations_img_dir_and_ann_dir_are_read_as_they_are(tmp_path, capsys):
    """A custom dataset laid out for MMSegmentation (img_dir/<split>/, ann_dir/<split>/) needs only its
    classes.json; `data split` writes its new splits in the same folders."""
    for split, stems in (("train", ("seqA_0001", "seqB_0001")), ("val", ("seqC_0001",))):
        for i, stem in enumerate(stems):
            save_pair(tmp_path / f"img_dir/{split}/{stem}.jpg", tmp_path / f"ann_dir/{split}/{stem}.png",
                      blob_label(10, 12, (0, 1), seed=i), seed=i)
    with pytest.raises(FileNotFoundError, match=r"The masks of .*ann_dir/train hold the values 0, 1: class ids"):
        build_dataset("folder", tmp_path, "train")
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "lane"]}))
    train = build_dataset("folder", tmp_path, "train")
    assert [s["path"] for s in train] == [str(tmp_path / f"img_dir/train/{s}.jpg") for s in ("seqA_0001", "seqB_0001")]
    assert np.array_equal(train[1]["label"], blob_label(10, 12, (0, 1), seed=1))
    assert main(["data", "split", "folder", str(tmp_path), "--hold-out", "seqB"]) == 0
    assert [s["path"] for s in build_dataset("folder", tmp_path, "train_heldout")] == \
        [str(tmp_path / "img_dir/train_heldout/seqB_0001.jpg")]


def test_a_value_of_no_data_in_the_bands_is_read_as_nan(tmp_path):
    """build_dataset(nodata=-9999): those samples of float32 bands are NaN (the mean once normalised);
    refused for 8-bit RGB pictures."""
    from PIL import Image

    from segnext.data import build_dataset

    root = tmp_path / "dem"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["low", "high"]}))
    bands = np.random.default_rng(3).normal(300, 30, (20, 30, 2)).astype(np.float32)
    bands[:4, :, 1] = -9999
    np.save(root / "images" / "train" / "t.npy", bands)
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "labels" / "train" / "t.png")
    image = build_dataset("folder", root, "train", channels=2, nodata=-9999).load(0)["image"]
    assert np.isnan(image[:4, :, 1]).all() and not np.isnan(image[:, :, 0]).any() and not np.isnan(image[4:]).any()
    with pytest.raises(ValueError, match="nodata marks no data in images read as bands"):
        build_dataset("folder", root, "train", nodata=0)


def test_pixels_where_the_image_holds_no_data_are_unlabelled(tmp_path):
    """Where every band is data.nodata or NaN, or a TIFF's alpha band is 0, the label is 255 whatever
    the label map says (the outside of an orthophoto is nothing to learn); where only some bands are,
    the label stays; label_no_data=True keeps the label map's classes everywhere."""
    from PIL import Image

    from segnext.data import build_dataset

    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    label = np.random.default_rng(4).integers(0, 2, (20, 30), dtype=np.uint8)

    def dataset_of(name, image_name, write, **options):
        root = tmp_path / name
        (root / "images" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "classes.json").write_text(json.dumps({"classes": ["field", "forest"]}))
        write(root / "images" / "train" / image_name)
        Image.fromarray(label).save(root / "labels" / "train" / (Path(image_name).stem + ".png"))
        return build_dataset("folder", root, "train", **options)

    bands = np.random.default_rng(3).normal(300, 30, (20, 30, 2)).astype(np.float32)
    bands[:4, :, :] = -9999  # the outside: no band holds data
    bands[4:8, :, 1] = -9999  # one band's hole: the other band still holds data
    bands[8, :5, :] = np.nan
    expected = label.copy()
    expected[:4] = 255
    expected[8, :5] = 255
    dem = dataset_of("dem", "a.npy", lambda path: np.save(path, bands), channels=2, nodata=-9999)
    np.testing.assert_array_equal(dem.load(0)["label"], expected)
    kept = dataset_of("dem", "a.npy", lambda path: None, channels=2, nodata=-9999, label_no_data=True)
    np.testing.assert_array_equal(kept.load(0)["label"], label)

    rgb = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    alpha = np.full((20, 30), 255, np.uint8)
    alpha[:, 25:] = 0
    ortho = dataset_of("ortho", "b.tif", lambda path: tifffile.imwrite(path, np.dstack([rgb, alpha]),
                                                                       photometric="rgb", extrasamples=[2]))
    sample = ortho.load(0)
    np.testing.assert_array_equal(sample["image"], rgb)
    np.testing.assert_array_equal(sample["label"], np.where(alpha == 0, 255, label))
    kept = dataset_of("ortho", "b.tif", lambda path: None, label_no_data=True)
    np.testing.assert_array_equal(kept.load(0)["label"], label)


def test_a_tiff_of_bands_that_declares_its_no_data_is_read_once(tmp_path, monkeypatch):
    """Bands whose TIFF declares a "no data" value (as `data tile` writes them): the pixels where every
    band holds it are unlabelled, found in the bands the dataset read, without reading the file again."""
    from PIL import Image

    from segnext.data import build_dataset, geotiff

    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    root = tmp_path / "tiles"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "forest"]}))
    bands = np.random.default_rng(1).uniform(0.2, 0.9, (16, 24, 4)).astype(np.float32)
    bands[:, 20:] = 0.1  # outside: GDAL's tag says 0.1, a float32 0.1 in the file
    tifffile.imwrite(root / "images" / "train" / "t.tif", bands, photometric="minisblack", planarconfig="contig",
                     extratags=[(geotiff.GDAL_NODATA, "s", 0, "0.1", True)])
    Image.fromarray(np.ones((16, 24), np.uint8)).save(root / "labels" / "train" / "t.png")

    def read_again(*args, **kwargs):
        raise AssertionError("the file was read again for its no data")

    monkeypatch.setattr(geotiff, "open_tiff_scene", read_again)
    monkeypatch.setattr(geotiff, "read_bands", read_again)
    label = build_dataset("folder", root, "train", channels=4).load(0)["label"]
    assert (label[:, 20:] == 255).all() and (label[:, :20] == 1).all()
