"""`segnext data check`: one line per problem naming the file, non-zero exit status, frequencies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_data import blob_label, random_image, save_image, save_label, save_pair, write_lines

from segnext.cli.main import main
from segnext.data import DataError, build_dataset
from segnext.data.check import check_dataset, median_frequency_weights


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
    # median-frequency: a and c occur in x (100 px), b in y (20 px); frequencies .54, 1.0, .36, median .54
    assert median_frequency_weights(report, power=1) == [1.0, 0.54, 1.5]
    assert median_frequency_weights(report) == [1.0, 0.73, 1.22]  # the square root
    assert main(["data", "check", "folder", str(root), "--split", "train", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "2 pairs" in out
    assert any(line.split()[:3] == ["2", "c", "36"] for line in out.splitlines())  # the frequency row of class c
    assert "loss.class_weight=[1,0.73,1.22]" in out
    save_pair(root / "images/val/z.png", root / "labels/val/z.png", np.ones((4, 5), np.uint8))
    reports = check_dataset("folder", root, split="train+val", workers=1, progress=False)  # as training joins them
    assert [(report.split, report.pairs) for report in reports] == [("train", 2), ("val", 1)]
    assert main(["data", "check", "folder", str(root), "--split", "val", "--workers", "1", "--no-progress"]) == 0
    assert "loss.class_weight" not in capsys.readouterr().out  # weights to train with come from a training split


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
    # The seventh: the folder layout's val split is absent, and training reads it.
    assert len(problems) == len(expectations) + 1 and "folder val: absent, and training reads it" in problems[-1]


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


# Each layout as (dataset, image path, label path) templates of one pair of split {split};
# `extra` writes what the layout needs besides (classes.json, split lists).
LAYOUTS = {
    "camvid_folder": ("camvid", "images/{split}/{stem}.png", "labels/{split}/{stem}.png"),
    "camvid_segnet": ("camvid", "{split}/{stem}.png", "{split}annot/{stem}.png"),
    "folder": ("folder", "images/{split}/{stem}.png", "labels/{split}/{stem}.png"),
    "ade20k": ("ade20k", "images/{split}/{stem}.jpg", "annotations/{split}/{stem}.png"),
    "cityscapes": ("cityscapes", "leftImg8bit/{split}/aachen/{stem}_leftImg8bit.png",
                   "gtFine/{split}/aachen/{stem}_gtFine_labelTrainIds.png"),
    "voc": ("voc", "JPEGImages/{stem}.jpg", "SegmentationClass/{stem}.png"),
}
TRAIN_SPLIT = {"ade20k": "training"}
VAL_SPLIT = {"ade20k": "validation"}


def _write_split(root, layout, split, stems, labelled=True):
    dataset, image, label = LAYOUTS[layout]
    if dataset == "folder":
        _folder(root)
    if dataset == "voc":
        write_lines(root / f"ImageSets/Segmentation/{split}.txt", stems)
    for stem in stems:
        values = (1, 2) if dataset == "ade20k" else (0, 1)  # ADE20K: raw 0 is "other", ignored
        save_image(root / image.format(split=split, stem=stem), random_image(8, 8))
        if labelled:
            save_label(root / label.format(split=split, stem=stem), blob_label(8, 8, values))
    if not stems and dataset != "voc":  # the split's folders exist, empty
        for template in (image, label):
            (root / template.format(split=split, stem="x")).parent.mkdir(parents=True, exist_ok=True)
    elif not labelled and dataset != "voc":  # the label folder exists, empty
        (root / label.format(split=split, stem=stems[0])).parent.mkdir(parents=True, exist_ok=True)
    return dataset


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("defect", ["val labels missing", "val folders empty", "val absent"])
def test_an_empty_unlabelled_or_absent_val_split_is_a_problem(tmp_path, capsys, layout, defect):
    """Planted in every layout: the check names the val split and fails; the dataset constructor
    training and evaluation use refuses the split too."""
    dataset = LAYOUTS[layout][0]
    train, val = TRAIN_SPLIT.get(dataset, "train"), VAL_SPLIT.get(dataset, "val")
    _write_split(tmp_path, layout, train, ["a", "b"])
    if defect == "val labels missing":
        _write_split(tmp_path, layout, val, ["c"], labelled=False)
    elif defect == "val folders empty":
        _write_split(tmp_path, layout, val, [])
    status = main(["data", "check", dataset, str(tmp_path), "--workers", "1", "--no-progress", "--no-frequencies"])
    captured = capsys.readouterr()
    problems = [line for line in captured.out.splitlines() if line.startswith("PROBLEM")]
    assert status == 1 and "no problems found" not in captured.out, captured.out
    expected = {"val labels missing": "has no labels", "val folders empty": "is empty",
                "val absent": "absent, and training reads it"}[defect]
    if dataset == "voc" and defect == "val folders empty":
        expected = "is empty"  # an empty val.txt
    assert any(expected in line and val in line for line in problems), problems
    assert not any(f" {train}" in line.split(":")[0] for line in problems), problems  # train is fine
    with pytest.raises(DataError, match=val):
        build_dataset(dataset, tmp_path, val)
    assert len(build_dataset(dataset, tmp_path, train)) == 2


def test_an_absent_split_that_training_does_not_read_is_only_noted(tmp_path, capsys):
    _write_split(tmp_path, "camvid_folder", "train", ["a"])
    _write_split(tmp_path, "camvid_folder", "val", ["b"])
    assert main(["data", "check", "camvid", str(tmp_path), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "camvid test: absent" in out and "no problems found" in out
    # Asked for by name, an absent split is an error.
    assert main(["data", "check", "camvid", str(tmp_path), "--split", "test", "--no-progress"]) == 1
    assert "no CamVid" in capsys.readouterr().err


def test_two_images_with_one_stem_are_a_problem_of_their_split(tmp_path, capsys):
    _write_split(tmp_path, "camvid_folder", "train", ["a"])
    save_image(tmp_path / "images/train/a.jpg", random_image(8, 8))
    _write_split(tmp_path, "camvid_folder", "val", ["b"])
    assert main(["data", "check", "camvid", str(tmp_path), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert any("same stem" in line for line in out.splitlines() if line.startswith("PROBLEM")), out


def test_a_class_the_split_never_shows_gets_weight_one(tmp_path):
    root = _folder(tmp_path)
    label = np.zeros((4, 4), np.uint8)
    label[:, :1] = 2
    save_pair(root / "images/train/x.png", root / "labels/train/x.png", label)
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    assert median_frequency_weights(report, power=1) == [0.67, 1.0, 2.0]  # b absent; median of .75 and .25: .5
    save_pair(root / "images/val/y.png", root / "labels/val/y.png", np.full((4, 4), 255, np.uint8))
    [unlabelled] = check_dataset("folder", root, split="val", workers=1, progress=False)
    with pytest.raises(DataError, match="no labelled pixels"):
        median_frequency_weights(unlabelled)


def test_binary_masks_of_0_and_255_are_a_problem_that_says_how_to_convert_them(tmp_path, capsys):
    """Masks saved as 0 (background) and 255 (the object), as many tools write them: 255 is the
    ignore value, so training would never see the object; check says so, and prepare converts them."""
    exported = tmp_path / "exported"
    (exported / "classes.json").parent.mkdir()
    (exported / "classes.json").write_text(json.dumps({"classes": ["background", "crack"]}))
    for split, stem in (("train", "a"), ("train", "b"), ("val", "c")):
        mask = np.zeros((8, 10), np.uint8)
        mask[2:6, 3:8] = 255
        save_pair(exported / f"images/{split}/{stem}.jpg", exported / f"labels/{split}/{stem}.png", mask)
    assert main(["data", "check", "folder", str(exported), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    [problem] = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert "folder train: no labelled pixel of 'crack' (id 1): the model cannot learn it. 25.0% of the pixels " \
           "are stored as 255, the ignore value" in problem
    assert "[255, 255, 255]" in problem and "segnext data prepare folder SRC DST" in problem

    (exported / "classes.json").write_text(json.dumps({"classes": ["background", "crack"],
                                                       "palette": [[0, 0, 0], [255, 255, 255]]}))
    assert main(["data", "prepare", "folder", str(exported), str(tmp_path / "cracks"), "--workers", "1",
                 "--no-progress"]) == 0
    assert "3 converted" in capsys.readouterr().out
    [train] = check_dataset("folder", tmp_path / "cracks", split="train", workers=1, progress=False)
    assert train.problems == [] and train.notes == []
    assert train.class_pixels.tolist() == [2 * 60, 2 * 20] and train.ignored_pixels == 0


def test_a_class_missing_from_training_is_noted_and_only_one_class_is_a_problem(tmp_path):
    root = _folder(tmp_path)  # classes a, b, c
    save_pair(root / "images/train/x.png", root / "labels/train/x.png", blob_label(6, 6, (0, 2)))
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    assert report.problems == []
    assert report.notes == ["folder train: no labelled pixel of 'b' (id 1): the model cannot learn it"]
    save_pair(root / "images/train/x.png", root / "labels/train/x.png", np.zeros((6, 6), np.uint8))
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    assert report.problems == ["folder train: no labelled pixel of 'b' (id 1), 'c' (id 2): the model cannot "
                               "learn them"]
    save_pair(root / "images/val/y.png", root / "labels/val/y.png", np.zeros((6, 6), np.uint8))
    [val] = check_dataset("folder", root, split="val", workers=1, progress=False)
    assert val.problems == [] and val.notes == []  # a split that scores, not one that teaches


def test_labels_saved_as_jpeg_or_bmp_are_named_as_such(tmp_path, capsys):
    root = _folder(tmp_path)
    save_image(root / "images/train/a.jpg", random_image(8, 8))
    save_image(root / "labels/train/a.jpg", random_image(8, 8))  # masks exported as JPEG
    save_image(root / "images/train/b.jpg", random_image(8, 8))
    save_image(root / "labels/train/b.bmp", random_image(8, 8))
    assert main(["data", "check", "folder", str(root), "--split", "train", "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "a.png; a.jpg is there, but labels are read from .png files: JPEG blurs the class ids at every edge, " \
           "export the masks as PNG)" in out
    assert "b.png; b.bmp is there, but labels are read from .png files: convert it" in out
    with pytest.raises(DataError, match="a.jpg is there, but labels are read from .png files"):
        build_dataset("folder", root, "train")  # what segnext train says


def test_images_of_16_bit_samples_are_noted_with_the_levels_their_top_byte_reaches(tmp_path):
    """16-bit images are read as 8-bit RGB by their top byte (as OpenCV reads them): data of 12 bits or
    reflectances come out dark, so `data check` notes them, naming the brightest and its top level."""
    from PIL import Image

    root = _folder(tmp_path)
    label = np.zeros((6, 8), np.uint8)
    (root / "images" / "train").mkdir(parents=True)
    grey = np.full((6, 8), 4000, np.uint16)  # 12 bits: 4000 >> 8 = 15
    Image.fromarray(grey).save(root / "images" / "train" / "scan.png")  # a 16-bit greyscale PNG
    save_label(root / "labels/train/scan.png", label)
    save_pair(root / "images/train/photo.png", root / "labels/train/photo.png", label)  # 8-bit: not noted
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    sixteen = [note for note in report.notes if "16-bit" in note]
    assert len(sixteen) == 1 and "1 image of 16-bit samples" in sixteen[0]
    assert "scan.png: levels up to 15 of 255" in sixteen[0] and "gdal_translate -ot Byte -scale" in sixteen[0]
    assert not any("scan.png" in problem for problem in report.problems)  # a note: full-range 16 bits read well


def test_a_16_bit_rgb_tiff_is_noted_too(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): 16-bit RGB "
                                                      "TIFFs untested")
    root = _folder(tmp_path)
    (root / "images" / "train").mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 40000, (6, 8, 3), dtype=np.uint16)
    tifffile.imwrite(root / "images" / "train" / "ortho.tif", rgb, photometric="rgb")
    save_label(root / "labels/train/ortho.png", np.zeros((6, 8), np.uint8))
    [report] = check_dataset("folder", root, split="train", workers=1, progress=False)
    assert any(f"ortho.tif: levels up to {int(rgb.max()) >> 8} of 255" in note for note in report.notes)


def test_tiff_scenes_and_labels_are_checked_a_band_of_rows_at_a_time(tmp_path, monkeypatch):
    """TIFF scenes (four bands, RGB) and TIFF label maps are decoded a band of rows at a time (the
    whole-image readers patched to fail): the same report as read whole; a damaged tile and values
    outside the classes are problems naming the file."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data import check

    root = _folder(tmp_path)
    for folder in ("images/train", "labels/train", "images/val", "labels/val"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 4000, (90, 70, 4), dtype=np.uint16)
    label = rng.integers(0, 3, (90, 70), dtype=np.uint8)
    label[:5] = 255
    label[50, 7] = 9  # no class
    for name in ("a", "b"):
        tifffile.imwrite(root / f"images/train/{name}.tif", bands, photometric="minisblack", planarconfig="contig",
                         tile=(16, 16), compression="zlib")
        tifffile.imwrite(root / f"labels/train/{name}.tif", label, photometric="minisblack", rowsperstrip=4)
    tifffile.imwrite(root / "images/val/c.tif", bands[:, :, :3].astype(np.uint8), photometric="rgb", tile=(16, 16))
    tifffile.imwrite(root / "labels/val/c.tif", label[:, :60], photometric="palette",
                     colormap=np.zeros((3, 256), dtype=np.uint16))
    with tifffile.TiffFile(root / "images/train/b.tif") as tiff:
        offset = tiff.pages[0].dataoffsets[20]
    with open(root / "images/train/b.tif", "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * 32)

    def reports(channels):  # the four-band scenes for a model of four channels, the photo for an RGB one
        return [(report.split, sorted(report.problems), report.class_pixels.tolist(), report.ignored_pixels,
                 report.images_with_class.tolist())
                for report in check_dataset("folder", root, split="train" if channels == 4 else "val", workers=0,
                                            progress=False, channels=channels)]

    with monkeypatch.context() as whole:
        whole.setattr(check, "open_tiff_scene_as", lambda *args, **kwargs: None)
        expected = {channels: reports(channels) for channels in (4, None)}
    for reader in ("read_bands", "read_image_or_bands", "read_label"):
        monkeypatch.setattr(check, reader, lambda *args, **kwargs: pytest.fail("read whole"))
    for channels in (4, None):
        assert reports(channels) == expected[channels]
    (split, problems, class_pixels, ignored, _), = expected[4]
    assert any("b.tif: cannot read this TIFF file" in problem for problem in problems)
    assert sum("label values outside the classes: 9 (1 px)" in problem for problem in problems) == 2
    assert ignored == 2 * (5 * 70 + 1) and sum(class_pixels) == 2 * (85 * 70 - 1)  # the value 9 is ignored
    (_, val_problems, *_), = expected[None]
    assert any("c.tif: label is 60x90 but its image" in problem for problem in val_problems)


def test_labels_given_where_an_orthophoto_holds_no_data_are_noted(tmp_path, capsys):
    """An RGBA orthophoto whose label map gives its outside (alpha 0) a class, as polygons rasterized
    with a background do: a note naming the pixels and what is done with them; the class counts
    leave them out as training does (--label-no-data: counted); labelled 255 there, no note."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    root = _folder(tmp_path)
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    rgb = np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    outside = np.zeros((40, 50), dtype=bool)
    outside[:, 30:] = True
    label = np.random.default_rng(6).integers(0, 3, (40, 50), dtype=np.uint8)
    for name in ("ortho", "clean"):
        tifffile.imwrite(root / f"images/train/{name}.tif", np.dstack([rgb, np.where(outside, 0, 255)
                                                                       .astype(np.uint8)]),
                         photometric="rgb", extrasamples=[2], tile=(16, 16))
        save_label(root / f"labels/train/{name}.png", label if name == "ortho" else np.where(outside, 255, label))
    assert main(["data", "check", "folder", str(root), "--split", "train", "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    expected = int(np.count_nonzero(outside))
    assert (f"1 image with no data in places (a mask, 'no data' value or alpha band, as GDAL finds them) labelled "
            f"as classes there: {expected:,} pixels (the most, {root / 'images/train/ortho.tif'}: "
            f"{expected:,} of its {expected:,})") in printed
    assert "training and evaluation leave them unlabelled, as `segnext data tile` does, and the class counts" in printed
    # the class counts are those training learns: both pairs' outside ignored; --label-no-data counts it
    [report] = check_dataset("folder", root, split="train", workers=0, progress=False)
    inside = np.bincount(label[~outside], minlength=3)
    assert list(report.class_pixels) == list(2 * inside) and report.ignored_pixels == 2 * expected
    [kept] = check_dataset("folder", root, split="train", workers=0, progress=False, label_no_data=True)
    assert list(kept.class_pixels) == list(2 * inside + np.bincount(label[outside], minlength=3))
    assert kept.ignored_pixels == expected and "counted here as their classes" in kept.notes[-1]
    assert main(["data", "check", "folder", str(root), "--split", "train", "--workers", "0", "--no-progress",
                 "--label-no-data"]) == 0
    assert "counted here as their classes, as training with data.label_no_data true" in capsys.readouterr().out
    (root / "labels/train/ortho.png").unlink()
    (root / "images/train/ortho.tif").unlink()
    [report] = check_dataset("folder", root, split="train", workers=0, progress=False)
    assert not any("no data" in note for note in report.notes)
