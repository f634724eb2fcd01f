"""Label maps in the ids and files a benchmark's evaluation server takes (`segnext.data.submission`)."""

from __future__ import annotations

import tarfile
import zipfile

import numpy as np
import pytest

from segnext.constants import SUBMISSION_BENCHMARKS
from segnext.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_ID_TO_TRAIN_ID, VOC_PALETTE
from segnext.data.submission import (
    SUBMISSION_FORMATS,
    check_submission_classes,
    submission_format,
    submission_label,
    write_submission_archive,
)


def test_the_command_line_offers_every_format():
    assert tuple(SUBMISSION_FORMATS) == SUBMISSION_BENCHMARKS
    with pytest.raises(ValueError, match="no submission format for 'kitti'; choose one of cityscapes, ade20k, voc"):
        submission_format("kitti")


def test_cityscapes_train_ids_become_the_label_ids_that_read_back_as_them():
    """The server scores label ids: mapped back through the official id -> train id table (what
    `segnext data prepare cityscapes` applies to the ground truth), each train id is itself."""
    train_ids = np.arange(19, dtype=np.int64).reshape(1, 19).repeat(3, axis=0)
    label_ids = submission_label(train_ids, submission_format("cityscapes"))
    assert label_ids.dtype == np.uint8
    assert label_ids[0].tolist() == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    back = np.vectorize(CITYSCAPES_ID_TO_TRAIN_ID.get)(label_ids)
    np.testing.assert_array_equal(back, train_ids)


def test_ade20k_ids_are_one_based_and_voc_ids_keep_their_colour_map():
    labels = np.array([[0, 1], [148, 149]])
    np.testing.assert_array_equal(submission_label(labels, submission_format("ade20k")), [[1, 2], [149, 150]])
    assert submission_format("ade20k").palette is None and submission_format("cityscapes").palette is None
    voc = submission_format("voc")
    np.testing.assert_array_equal(submission_label(np.array([[0, 20]]), voc), [[0, 20]])
    assert voc.palette == VOC_PALETTE and voc.folder == "results/VOC2012/Segmentation/comp6_test_cls"


def test_ids_outside_the_benchmark_are_refused():
    with pytest.raises(ValueError, match="label map holds ids 0..19, outside the ids of cityscapes, 0..18"):
        submission_label(np.array([[0, 19]]), submission_format("cityscapes"))


def test_a_model_of_other_classes_is_refused_and_spellings_of_the_same_pass():
    cityscapes = submission_format("cityscapes")
    with pytest.raises(ValueError, match="the model has 150 classes, but cityscapes has 19 \\(road, sidewalk, "
                                         "building, wall, ...\\); use a model with the classes of cityscapes, in "
                                         "their order"):
        check_submission_classes(cityscapes, None, 150)
    swapped = list(CITYSCAPES_CLASSES)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    with pytest.raises(ValueError, match="the model's class 2 is 'wall', where cityscapes has 'building'"):
        check_submission_classes(cityscapes, swapped, 19)
    spelled = [name.replace(" ", "_").title() for name in CITYSCAPES_CLASSES]  # "Traffic_Light"
    check_submission_classes(cityscapes, spelled, 19)
    check_submission_classes(cityscapes, [f"class_{i}" for i in range(19)], 19)  # unnamed: the count decides
    check_submission_classes(cityscapes, None, 19)


@pytest.mark.parametrize("suffix", ["zip", "tar.gz"])
def test_the_archive_holds_the_files_given_named_below_the_root(tmp_path, suffix):
    root = tmp_path / "out"
    (root / "berlin").mkdir(parents=True)
    given = [root / "berlin" / "a.png", root / "b.png"]
    for index, path in enumerate(given):
        path.write_bytes(bytes([index]) * 10)
    (root / "earlier_run.png").write_bytes(b"not this run's")
    archive = write_submission_archive(tmp_path / f"out.{suffix}", root, given)
    if suffix == "zip":
        with zipfile.ZipFile(archive) as packed:
            contents = {name: packed.read(name) for name in packed.namelist()}
    else:
        with tarfile.open(archive) as packed:
            contents = {member.name: packed.extractfile(member).read() for member in packed.getmembers()}
    assert contents == {"b.png": b"\x01" * 10, "berlin/a.png": b"\x00" * 10}


def test_an_archive_of_another_kind_is_refused_and_nothing_is_left(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="out.rar: an archive is a .zip or a .tar.gz"):
        write_submission_archive(tmp_path / "out.rar", tmp_path, [tmp_path / "a.png"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("name", SUBMISSION_BENCHMARKS)
def test_server_ids_read_back_as_the_class_ids_and_ids_of_no_class_are_named(name):
    from segnext.data.submission import label_from_submission

    benchmark = submission_format(name)
    labels = np.arange(len(benchmark.classes), dtype=np.int64).reshape(1, -1).repeat(2, axis=0)
    back = label_from_submission(submission_label(labels, benchmark), benchmark)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)
    void = {"cityscapes": 3, "ade20k": 0, "voc": 255}[name]  # Cityscapes' "out of roi", ADE20K's "other"
    with pytest.raises(ValueError, match=f"x.png: holds {name} id\\(s\\) {void} of no class it scores"):
        label_from_submission(np.array([[void, benchmark.server_ids[0]]]), benchmark, "x.png")
