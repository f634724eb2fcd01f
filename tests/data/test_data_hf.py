"""Datasets saved with Hugging Face `datasets` (save_to_disk), read as segnext datasets: rows become
the same samples as files would, with the classes of a segnext dataset, a classes.json or an
id2label.json, and clear errors for a wrong split, column or classes file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import blob_label, random_image

from segnext.data.io import DataError

datasets = pytest.importorskip("datasets", reason="the datasets package is not installed "
                                                  "(pip install 'segnext[huggingface]')")

from segnext.data.hf import build_huggingface_dataset  # noqa: E402 (after the skip)


def save_dataset(root: Path, label_values=(0, 1, 2), splits=("train", "validation"), label_name="annotation",
                 as_arrays=False) -> dict:
    """A DatasetDict of 3 rows per split (image + label map), saved to `root`; returns the arrays."""
    from PIL import Image

    arrays = {}
    parts = {}
    for s, split in enumerate(splits):
        images = [random_image(12, 16, seed=10 * s + i) for i in range(3)]
        labels = [blob_label(12, 16, list(label_values), seed=10 * s + i) for i in range(3)]
        arrays[split] = (images, labels)
        if as_arrays:
            features = datasets.Features({"image": datasets.Image(),
                                          label_name: datasets.Array2D(shape=(12, 16), dtype="uint8")})
            columns = {"image": [Image.fromarray(i) for i in images], label_name: labels}
        else:
            features = datasets.Features({"image": datasets.Image(), label_name: datasets.Image(),
                                          "scene_category": datasets.Value("int32")})
            columns = {"image": [Image.fromarray(i) for i in images],
                       label_name: [Image.fromarray(lab) for lab in labels], "scene_category": [0, 1, 2]}
        parts[split] = datasets.Dataset.from_dict(columns, features=features)
    datasets.DatasetDict(parts).save_to_disk(str(root))
    return arrays


def test_rows_become_samples_with_the_classes_of_a_classes_json(tmp_path):
    arrays = save_dataset(tmp_path / "hf")
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    train = build_huggingface_dataset(tmp_path / "hf", "train")
    assert len(train) == 3 and train.class_names == ["a", "b", "c"] and train.num_classes == 3
    for index in range(3):
        sample = train[index]
        assert np.array_equal(sample["image"], arrays["train"][0][index])
        assert np.array_equal(sample["label"], arrays["train"][1][index])
    val = build_huggingface_dataset(tmp_path / "hf", "val")  # the usual other name of "validation"
    assert val.split == "validation" and np.array_equal(val[1]["label"], arrays["validation"][1][1])
    joined = build_huggingface_dataset(tmp_path / "hf", "train+val")  # both, in that order
    assert joined.split == "train+validation" and len(joined) == 6
    assert np.array_equal(joined[4]["label"], arrays["validation"][1][1])


def test_scene_parse_150_style_rows_read_as_ade20k(tmp_path):
    arrays = save_dataset(tmp_path / "hf", label_values=(0, 1, 150))  # ADE's raw values: 0 = other
    train = build_huggingface_dataset(tmp_path / "hf", "train", classes="ade20k")
    assert train.num_classes == 150 and train.class_names[0] == "wall"
    raw = arrays["train"][1][0]
    label = train[0]["label"]
    assert (label[raw == 0] == 255).all() and (label[raw == 1] == 0).all() and (label[raw == 150] == 149).all()


def test_a_classes_json_with_reduce_zero_label_reads_labels_stored_from_one(tmp_path):
    arrays = save_dataset(tmp_path / "hf", label_values=(0, 1, 2))
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["a", "b"], "reduce_zero_label": True}))
    train = build_huggingface_dataset(tmp_path / "hf", "train")
    raw = arrays["train"][1][0]
    assert train.num_classes == 2 and np.array_equal(train[0]["label"], np.where(raw == 0, 255, raw - 1))


def test_id2label_of_transformers_and_array_labels(tmp_path):
    arrays = save_dataset(tmp_path / "hf", label_name="semantic_segmentation", as_arrays=True)
    (tmp_path / "hf" / "id2label.json").write_text(json.dumps({"1": "car", "0": "road", "2": "sky"}))
    train = build_huggingface_dataset(tmp_path / "hf", "train")
    assert train.class_names == ["road", "car", "sky"] and len(train.palette) == 3
    assert np.array_equal(train[2]["label"], arrays["train"][1][2])


def test_with_a_transform_the_sample_gets_its_per_sample_stream(tmp_path):
    save_dataset(tmp_path / "hf")
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    seen = []
    dataset = build_huggingface_dataset(tmp_path / "hf", "train", transform=lambda s, rng: seen.append(rng.random()),
                                        seed=4)
    dataset[1], dataset[1]
    dataset.set_epoch(1)
    dataset[1]
    assert seen[0] == seen[1] == np.random.default_rng([4, 0, 1]).random() != seen[2]


@pytest.mark.parametrize("problem,expected", [
    ("split", "no split 'tran'. Did you mean 'train'? Splits: train, validation; set data.train_split"),
    ("image_column", "no image column 'img'. Did you mean 'image'?"),
    ("classes", "no classes for this dataset. Put a classes.json"),
    ("classes_name", "data.huggingface.classes is 'ade', neither a segnext dataset"),
    ("not_saved", "not a dataset saved with `datasets`"),
])
def test_mistakes_are_named(tmp_path, problem, expected):
    save_dataset(tmp_path / "hf")
    if problem != "classes":
        (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    kwargs = {"split": "train"}
    if problem == "split":
        kwargs["split"] = "tran"
    elif problem == "image_column":
        kwargs["image_column"] = "img"
    elif problem == "classes_name":
        kwargs["classes"] = "ade"
    root = tmp_path / "elsewhere" if problem == "not_saved" else tmp_path / "hf"
    root.mkdir(exist_ok=True)
    with pytest.raises((DataError, ValueError, FileNotFoundError)) as error:
        build_huggingface_dataset(root, **kwargs)
    assert expected in str(error.value)


def test_colour_masks_read_with_the_palette_of_classes_json(tmp_path):
    from PIL import Image

    palette = [[70, 130, 180], [128, 64, 128], [0, 0, 142]]
    labels = [blob_label(12, 16, [0, 1, 2, 255], seed=i) for i in range(2)]
    colour_table = np.zeros((256, 3), np.uint8)
    colour_table[:3] = palette  # 255 (ignore) -> black, an ignore colour
    rows = {"image": [Image.fromarray(random_image(12, 16, seed=i)) for i in range(2)],
            "mask": [Image.fromarray(colour_table[label]) for label in labels]}
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})
    datasets.DatasetDict(train=datasets.Dataset.from_dict(rows, features=features)).save_to_disk(str(tmp_path / "hf"))
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["sky", "road", "car"], "palette": palette,
                                                              "ignore_colors": [[0, 0, 0]]}))
    train = build_huggingface_dataset(tmp_path / "hf", "train", label_colors=True)
    assert [np.array_equal(train[i]["label"], labels[i]) for i in range(2)] == [True, True]
    from segnext.train.config import config_from_dict  # the same through a config (segnext train)

    config = config_from_dict({"data": {"dataset": "huggingface", "root": str(tmp_path / "hf"),
                                        "huggingface": {"label_colors": True}}})
    assert np.array_equal(config.data.build("train")[1]["label"], labels[1])
    with pytest.raises(DataError, match="colour"):  # without the option, colour masks are refused
        build_huggingface_dataset(tmp_path / "hf", "train")[0]
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["sky", "road", "car"], "palette": palette}))
    unlisted = r"row 0: label colours in neither the palette nor \"ignore_colors\": \[0, 0, 0\]"
    with pytest.raises(DataError, match=unlisted):
        build_huggingface_dataset(tmp_path / "hf", "train", label_colors=True)[0]
    (tmp_path / "hf" / "classes.json").unlink()
    (tmp_path / "hf" / "id2label.json").write_text(json.dumps({"0": "sky", "1": "road", "2": "car"}))  # no colours
    with pytest.raises(FileNotFoundError, match="label_colors needs the colour of each class"):
        build_huggingface_dataset(tmp_path / "hf", "train", label_colors=True, classes=None)


def test_a_class_selection_reads_a_saved_dataset_too(tmp_path):
    """data.classes on a Hugging Face dataset: the same selection as on files."""
    from segnext.data.selection import select_classes

    arrays = save_dataset(tmp_path / "hf")
    (tmp_path / "hf" / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    train = select_classes(build_huggingface_dataset(tmp_path / "hf", "train"), {"bc": ["b", "c"]})
    assert train.class_names == ["bc"] and train.num_classes == 1
    raw = arrays["train"][1][0]
    label = train[0]["label"]
    assert (label[raw == 0] == 255).all() and (label[raw > 0] == 0).all()
