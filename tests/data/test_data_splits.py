"""Splits by group: whole sequences (or cities) held out, as new splits every reader can use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import blob_label, random_image, save_image, save_pair, write_lines

from segnext.cli.main import main
from segnext.data import DataError, build_dataset, read_image
from segnext.data.datasets import get_spec, list_split
from segnext.data.splits import (
    group_folds,
    group_of,
    groups,
    hold_out,
    image_groups,
    random_groups,
    shared_group_note,
    split_groups,
    write_split,
)

SEQUENCES = {"0001TP": 3, "0006R0": 2, "0016E5": 4}


@pytest.fixture()
def camvid(tmp_path):
    """A CamVid-layout dataset whose file names start with their sequence, as the real one."""
    for split, sequences in (("train", SEQUENCES), ("val", {"0016E5": 2})):
        for sequence, frames in sequences.items():
            for frame in range(frames):
                stem = f"{sequence}_{frame + (100 if split == 'val' else 0):06d}"
                save_pair(tmp_path / "images" / split / f"{stem}.png", tmp_path / "labels" / split / f"{stem}.png",
                          blob_label(12, 16, (0, 3)), seed=frame)
    return tmp_path


def test_group_of_reads_the_sequence_or_city():
    assert group_of("0001TP_006690") == "0001TP"
    assert group_of("aachen/aachen_000000_000019") == "aachen"
    assert group_of("seq-12_frame7", r"seq-(\d+)") == "12"
    with pytest.raises(DataError, match="matches nothing"):
        group_of("frame7", r"seq-(\d+)")


def test_hold_out_writes_two_splits_that_the_dataset_reads(camvid):
    spec = get_spec("camvid")
    listing = list_split(spec, camvid, "train")
    assert {g: len(p) for g, p in groups(listing).items()} == SEQUENCES
    fit, held = hold_out(listing, ["0006R0"])
    write_split(listing, fit, "train_fit")
    write_split(listing, held, "train_heldout")
    fit_set = build_dataset("camvid", camvid, "train_fit")
    held_set = build_dataset("camvid", camvid, "train_heldout")
    assert len(fit_set) == 7 and len(held_set) == 2
    assert all("0006R0" in p for p in held_set.image_paths) and not any("0006R0" in p for p in fit_set.image_paths)
    assert (held_set[0]["image"] == build_dataset("camvid", camvid, "train")[3]["image"]).all()  # the same frames
    with pytest.raises(DataError, match="not empty"):
        write_split(listing, held, "train_heldout")
    with pytest.raises(DataError, match="no group '0009XX'; the groups are 0001TP, 0006R0, 0016E5"):
        hold_out(listing, ["0009XX"])


def test_image_groups_name_the_sequence_of_each_image_of_a_dataset(camvid, tmp_path):
    joined = build_dataset("camvid", camvid, "train+val")
    assert image_groups(get_spec("camvid"), camvid, "train+val", joined.image_paths) == \
        ["0001TP"] * 3 + ["0006R0"] * 2 + ["0016E5"] * 6
    # a path the split does not list, a camera's file name: in no group; a dataset without groups: None
    val = build_dataset("camvid", camvid, "val").image_paths
    assert image_groups(get_spec("camvid"), camvid, "val", [str(tmp_path / "x.png")] + val) == \
        [None] + ["0016E5"] * len(val)
    photo = camvid / "images" / "val" / "IMG_0001.png"
    save_pair(photo, camvid / "labels" / "val" / "IMG_0001.png", blob_label(12, 16, (0, 3)), seed=0)
    assert image_groups(get_spec("camvid"), camvid, "val", [str(photo)] + val) == [None] + ["0016E5"] * len(val)
    assert image_groups(get_spec("ade20k"), camvid, "train", joined.image_paths) is None
    # no two images in one group (independent images): no groups to resample or to score apart
    assert image_groups(get_spec("camvid"), camvid, "val", [str(photo), val[0]]) is None
    assert image_groups(get_spec("camvid"), camvid, "train", joined.image_paths[2:4]) is None
    assert image_groups(get_spec("camvid"), camvid, "no_such_split", joined.image_paths) is None


def test_layouts_read_from_a_list_get_a_new_list(tmp_path):
    root = tmp_path / "VOC2012"
    stems = ["2007_000032", "2007_000039", "2008_000002"]
    for stem in stems:
        save_pair(root / f"JPEGImages/{stem}.jpg", root / f"SegmentationClass/{stem}.png", blob_label(8, 8, (0, 1)))
    write_lines(root / "ImageSets/Segmentation/train.txt", stems)
    listing = list_split(get_spec("voc"), root, "train")
    fit, held = hold_out(listing, ["2008"])
    write_split(listing, fit, "train_fit")
    assert (root / "ImageSets/Segmentation/train_fit.txt").read_text().split() == stems[:2]
    assert len(build_dataset("voc", root, "train_fit")) == 2


def test_command_lists_groups_writes_splits_and_check_warns_about_shared_sequences(camvid, capsys):
    assert main(["data", "split", "camvid", str(camvid)]) == 0
    out = capsys.readouterr().out
    assert "9 pairs in 3 groups" in out and "0006R0" in out and not (camvid / "images/train_fit").exists()
    assert main(["data", "split", "camvid", str(camvid), "--hold-out", "0006R0", "0001TP"]) == 0
    assert "train_fit (4 pairs) and train_heldout (5 pairs" in capsys.readouterr().out
    main(["data", "check", "camvid", str(camvid), "--no-progress", "--no-frequencies"])
    assert "note: val shares groups with train: 0016E5 (2 frames; 4 in train)" in capsys.readouterr().out


def _pairs(root, split_folders, stems):
    for images, labels in split_folders:
        for stem in stems[images]:
            save_pair(root / images / f"{stem}.jpg", root / labels / f"{stem}.png", blob_label(8, 8, (1, 2)))


def test_names_without_groups_give_no_shared_group_note_and_no_default_split(tmp_path, capsys):
    """ADE20K's ADE_train_/ADE_val_ and cameras' IMG_0001 / DSC_0002 prefixes are not sequences: saying
    that val 'shares' them with train would be wrong."""
    ade = tmp_path / "ade"
    _pairs(ade, [("images/training", "annotations/training"), ("images/validation", "annotations/validation")],
           {"images/training": ["ADE_train_00000001", "ADE_train_00000002"],
            "images/validation": ["ADE_val_00000001"]})
    main(["data", "check", "ade20k", str(ade), "--no-progress", "--no-frequencies"])
    assert "shares groups" not in capsys.readouterr().out
    assert main(["data", "split", "ade20k", str(ade)]) == 1
    assert "file names carry no group" in capsys.readouterr().err
    assert main(["data", "split", "ade20k", str(ade), "--groups", r"_(\d{8})$"]) == 0  # a pattern of one's own
    assert "2 pairs in 2 groups" in capsys.readouterr().out

    photos = tmp_path / "photos"
    _pairs(photos, [("images/train", "labels/train"), ("images/val", "labels/val")],
           {"images/train": ["IMG_0001", "IMG_0002"], "images/val": ["IMG_0003"]})
    (photos / "classes.json").write_text('{"classes": ["a", "b", "c"]}')
    main(["data", "check", "folder", str(photos), "--no-progress", "--no-frequencies"])
    assert "shares groups" not in capsys.readouterr().out

    # Two cameras' prefixes are two groups, but still no sequences; a real sequence beside them is one.
    cameras = tmp_path / "cameras"
    _pairs(cameras, [("images/train", "labels/train"), ("images/val", "labels/val")],
           {"images/train": ["IMG_0001", "DSC_0002", "drive1_0001"], "images/val": ["IMG_0003", "DSC_0004"]})
    (cameras / "classes.json").write_text('{"classes": ["a", "b", "c"]}')
    main(["data", "check", "folder", str(cameras), "--no-progress", "--no-frequencies"])
    assert "shares groups" not in capsys.readouterr().out
    _pairs(cameras, [("images/val", "labels/val")], {"images/val": ["drive1_0002"]})
    main(["data", "check", "folder", str(cameras), "--no-progress", "--no-frequencies"])
    assert "val shares groups with train: drive1 (1 frames; 1 in train)." in capsys.readouterr().out


def test_the_note_on_what_val_scores_are_worth(camvid):
    spec = get_spec("camvid")
    assert "val shares groups with train: 0016E5 (2 frames; 4 in train)" in shared_group_note(spec, camvid, "train",
                                                                                               "val")
    assert "val is (part of) the training data (train+val)" in shared_group_note(spec, camvid, "train+val", "val")
    listing = list_split(spec, camvid, "train")
    fit, held = hold_out(listing, ["0006R0"])
    write_split(listing, fit, "train_fit")
    write_split(listing, held, "train_heldout")
    assert shared_group_note(spec, camvid, "train_fit", "train_heldout") is None  # a drive of its own
    assert shared_group_note(spec, camvid, "train_fit", "no_such_split") is None


def test_random_groups_hold_out_whole_groups_near_the_fraction_the_same_for_a_seed(camvid):
    listing = list_split(get_spec("camvid"), camvid, "train")  # groups of 3, 2 and 4 frames
    drawn = random_groups(listing, 0.3, seed=1)
    assert drawn == random_groups(listing, 0.3, seed=1) and set(drawn) <= set(SEQUENCES)
    held = {sum(SEQUENCES[group] for group in random_groups(listing, 0.3, seed=seed)) for seed in range(20)}
    assert held == {2, 3, 4}  # one group, nearest 2.7 of 9 pairs whatever the draw; two would hold out 5 to 7
    assert {tuple(random_groups(listing, 0.1, seed=seed)) for seed in range(20)} == {(g,) for g in SEQUENCES}
    with pytest.raises(DataError, match="takes every one of its 3 groups; hold out a smaller fraction"):
        random_groups(listing, 0.99)
    with pytest.raises(ValueError, match="between 0 and 1, got 1.5"):
        random_groups(listing, 1.5)
    with pytest.raises(DataError, match=r"all 9 pairs are in one group \('0'.*--groups '\.\+' if the files are "
                                        r"independent photos"):
        random_groups(listing, 0.2, pattern=r"^\d")


def test_a_folder_without_split_folders_becomes_train_and_val_by_whole_groups(tmp_path, capsys):
    """Images and colour masks exported flat (no train/val folders), as labelling tools write them:
    `data prepare` converts them, `data split --split .` holds out whole sequences as val, and the
    error for the unsplit folder says so."""
    palette = [[70, 130, 180], [128, 64, 128]]
    source, root = tmp_path / "exported", tmp_path / "my_dataset"
    stems = [f"{walk}_{frame:04d}" for walk, frames in (("walk1", 4), ("walk2", 3), ("walk3", 3))
             for frame in range(frames)]
    for index, stem in enumerate(stems):
        ids = blob_label(12, 16, (0, 1), seed=index)
        save_image(source / "images" / f"{stem}.jpg", random_image(12, 16, seed=index))
        save_image(source / "labels" / f"{stem}.png", np.array(palette, dtype=np.uint8)[ids])
    (source / "classes.json").write_text(json.dumps({"classes": ["sky", "road"], "palette": palette}))
    assert main(["data", "prepare", "folder", str(source), str(root), "--workers", "1", "--no-progress"]) == 0
    assert "10 converted" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"images holds images but no split folders: `segnext data split folder "
                                        r".* --split \. --hold-out-fraction 0\.2`"):
        build_dataset("folder", root, "train")

    assert main(["data", "split", "folder", str(root), "--split", ".", "--hold-out-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "10 pairs in 3 groups" in out and "wrote split train (" in out and "training reads them by default" in out
    train, val = build_dataset("folder", root, "train"), build_dataset("folder", root, "val")
    assert len(train) + len(val) == 10 and len(val) >= 3
    walks = lambda dataset: {Path(path).name.split("_")[0] for path in dataset.image_paths}  # noqa: E731
    assert not walks(train) & walks(val)  # no sequence on both sides
    assert np.array_equal(val[0]["label"], blob_label(12, 16, (0, 1), seed=stems.index(Path(val.image_paths[0]).stem)))
    # The export is left as it was: the split's links are in the prepared dataset, not in the folder
    # that `data prepare` linked its images/ to.
    assert sorted(p.name for p in (source / "images").iterdir()) == sorted(f"{stem}.jpg" for stem in stems)
    assert not (root / "images").is_symlink() and (root / "images" / "train").is_dir()
    assert np.array_equal(train[0]["image"], read_image(source / "images" / Path(train.image_paths[0]).name))

    # Split again under other names: the splits written inside the folder are links to its images, not
    # more images (they would be listed twice, and could land on both sides)
    assert main(["data", "split", "folder", str(root), "--split", ".", "--hold-out-fraction", "0.25", "--seed", "1",
                 "--names", "train2", "val2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("(the splits written in it before, train, val, are left out: their images are links to ")
    assert "10 pairs in 3 groups" in out
    train2, val2 = build_dataset("folder", root, "train2"), build_dataset("folder", root, "val2")
    files = lambda dataset: {Path(path).resolve() for path in dataset.image_paths}  # noqa: E731
    assert len(train2) + len(val2) == 10 and not files(train2) & files(val2) and not walks(train2) & walks(val2)
    # ... and for every other reader of the whole folder
    assert len(build_dataset("folder", root, ".")) == 10
    assert main(["data", "check", "folder", str(root), "--split", ".", "--no-progress", "--no-frequencies"]) == 0
    out = capsys.readouterr().out
    assert "10 pairs" in out
    assert "train, train2, val, val2: left out, their images are links to images listed here" in out


def test_a_classes_json_says_how_the_file_names_carry_groups(tmp_path, capsys):
    """Sites named before a "-" (north-cam0-0001): the folder's classes.json says so once ("groups"),
    and splitting, the notes on shared groups, the intervals' resampling and `data check` read it."""
    root = tmp_path / "sites"
    stems = [f"{site}-cam{frame % 2}-{frame:04d}" for site in ("north", "south", "east", "west") for frame in range(3)]
    _pairs(root, [("images", "labels")], {"images": stems})
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "groups": "^([^-]+)-"}))
    assert main(["data", "split", "folder", str(root), "--split", ".", "--hold-out", "south"]) == 0
    assert "12 pairs in 4 groups (pattern '^([^-]+)-')\n  east " in capsys.readouterr().out
    val = build_dataset("folder", root, "val")
    assert image_groups(get_spec("folder", root), root, "val", val.image_paths) == ["south"] * 3
    main(["data", "check", "folder", str(root), "--no-progress", "--no-frequencies"])
    out = capsys.readouterr().out
    assert "shares groups" not in out
    assert "  groups read from the file names (sequences, sites): 3 (east 3, north 3, west 3)\n" in out

    # a name the pattern misses is a problem of `data check`, named
    _pairs(root, [("images/val", "labels/val")], {"images/val": ["north_0009"]})
    assert main(["data", "check", "folder", str(root), "--split", "val", "--no-progress", "--no-frequencies"]) == 1
    assert (f"{root / 'images/val/north_0009.jpg'}: the group pattern '^([^-]+)-' (\"groups\" in classes.json) finds "
            f"nothing in this name (1 of the 4 names)") in capsys.readouterr().out

    # ".+": each image its own group (independent photos); no table of groups of one
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "groups": ".+"}))
    assert main(["data", "split", "folder", str(root), "--split", "val"]) == 0
    assert capsys.readouterr().out == "folder val: 4 pairs in 4 groups of one image each (pattern '.+')\n"
    val = build_dataset("folder", root, "val")
    assert image_groups(get_spec("folder", root), root, "val", val.image_paths) is None


def test_the_groups_listed_are_bounded(tmp_path, capsys):
    root = tmp_path / "many"
    _pairs(root, [("images/train", "labels/train")], {"images/train": [f"seq{i:02d}_{f}" for i in range(45)
                                                                         for f in range(2)]})
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    assert main(["data", "split", "folder", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "folder train: 90 pairs in 45 groups (pattern '^[^_/]+')" and lines[1].split() == ["seq00", "2"]
    assert len(lines) == 42 and lines[-1] == "  ... and 5 more groups"


@pytest.mark.parametrize("classes_json", [{"classes": ["a", "b", "c"]}, {"classes": ["a", "b", "c"], "groups": ".+"}])
def test_images_of_their_own_share_no_group_with_the_same_names_in_train(tmp_path, capsys, classes_json):
    """Splits numbered alike (train/0001.png, val/0001.png) or read as independent (".+"): a name
    that is its own group names one image, not a sequence that val shares with train."""
    names = ["0001", "0002", "0003"] if len(classes_json) == 1 else ["scene_0001", "scene_0002", "scene_0003"]
    _pairs(tmp_path, [("images/train", "labels/train"), ("images/val", "labels/val")],
           {"images/train": names, "images/val": names[:2]})
    (tmp_path / "classes.json").write_text(json.dumps(classes_json))
    main(["data", "check", "folder", str(tmp_path), "--no-progress", "--no-frequencies"])
    assert "shares groups" not in capsys.readouterr().out
    spec = get_spec("folder", tmp_path)
    assert shared_group_note(spec, tmp_path, "train", "val") is None and split_groups(spec, tmp_path, "train") == {}
    val = build_dataset("folder", tmp_path, "val")
    assert image_groups(spec, tmp_path, "val", val.image_paths) is None


def test_folds_hold_out_each_group_once_in_folds_of_near_equal_size(tmp_path, capsys):
    sizes = {"walkA": 5, "walkB": 3, "walkC": 3, "walkD": 2, "walkE": 1}
    _pairs(tmp_path, [("images/train", "labels/train")],
           {"images/train": [f"{walk}_{frame:04d}" for walk, frames in sizes.items() for frame in range(frames)]})
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    listing = list_split(get_spec("folder", tmp_path), tmp_path, "train")
    folds = group_folds(listing, 2)
    assert sorted(group for fold in folds for group in fold) == sorted(sizes)  # each group in one fold
    assert sorted(sum(sizes[group] for group in fold) for fold in folds) == [7, 7]  # largest first, to the smallest
    assert group_folds(listing, 2, seed=0) == folds and len(group_folds(listing, 5)) == 5
    with pytest.raises(DataError, match=r"train: 5 groups \(pattern '\^\[\^_/\]\+'\) cannot make 6 folds.*ask for 2 to "
                                        r"5 folds, or pass --groups"):
        group_folds(listing, 6)

    assert main(["data", "split", "folder", str(tmp_path), "--folds", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "fold 3: wrote train_fit_fold3 (" in out and "data.train_split=train_fit_fold1 " in out
    seen = []
    for number in (1, 2, 3):
        fit = build_dataset("folder", tmp_path, f"train_fit_fold{number}").image_paths
        held = build_dataset("folder", tmp_path, f"train_heldout_fold{number}").image_paths
        walks = [{Path(path).name.split("_")[0] for path in paths} for paths in (fit, held)]
        assert len(fit) + len(held) == 14 and not walks[0] & walks[1]  # no sequence on both sides
        seen += sorted(walks[1])
    assert sorted(seen) == sorted(sizes)  # every sequence scored once
