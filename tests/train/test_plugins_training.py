"""A training run with the plug-ins together: rows of a Hugging Face dataset on disk, augmented by an
albumentations pipeline named in the config; and a pipeline of one's own that cannot work stops the
run before it touches the work dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from train_helpers import tiny_config, write_config

from segnext.train import load_config, train

AUGMENT = '''
import albumentations as A

def build(data):
    return A.Compose([A.RandomResizedCrop(size=tuple(data.crop_size), scale=(0.5, 1.0)), A.HorizontalFlip(),
                      A.ColorJitter(0.2, 0.2, 0.2, 0.02)])
'''

TOO_LARGE = '''
def build():
    return lambda image, label, rng: (image, label)
'''


def scenes_as_hugging_face_dataset(scenes: Path, root: Path) -> Path:
    datasets = pytest.importorskip("datasets", reason="the datasets package is not installed "
                                                      "(pip install 'segnext[huggingface]')")
    from PIL import Image

    from segnext.data import build_dataset

    parts = {}
    for split, name in (("train", "train"), ("val", "validation")):
        rows = build_dataset("folder", scenes, split)
        features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
        parts[name] = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(rows[i]["image"]) for i in range(len(rows))],
             "annotation": [Image.fromarray(rows[i]["label"]) for i in range(len(rows))]}, features=features)
    datasets.DatasetDict(parts).save_to_disk(str(root))
    shutil.copy(scenes / "classes.json", root / "classes.json")
    return root


def test_hugging_face_rows_with_an_albumentations_pipeline(tmp_path, scenes, monkeypatch):
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
    pytest.importorskip("albumentations", reason="albumentations is not installed (pip install albumentations)")
    root = scenes_as_hugging_face_dataset(scenes, tmp_path / "hf")
    (tmp_path / "my_augment.py").write_text(AUGMENT)
    config = tiny_config(root, data={"dataset": "huggingface", "val_split": "validation",
                                     "transform": f"{tmp_path / 'my_augment.py'}:build"})
    result = train(load_config(str(write_config(tmp_path / "c.yaml", config)), ["train.max_iters=2"]),
                   tmp_path / "run", progress=False)
    assert result.iteration == 2 and result.results["num_images"] == 8
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [row["class"] for row in results["per_class"]][:2] == ["sky", "building"]
    assert "huggingface" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.parametrize("module,reference,expected", [
    (TOO_LARGE, "{dir}/too_large.py:build", "larger than data.crop_size [64, 64]"),
    (None, "my_missing_augment_module:build", "no module named 'my_missing_augment_module'"),
], ids=["too-large", "missing-module"])
def test_a_pipeline_that_cannot_work_stops_the_run_before_the_work_dir(tmp_path, scenes, module, reference, expected):
    if module is not None:
        (tmp_path / "too_large.py").write_text(module)
    config = tiny_config(scenes, data={"transform": reference.format(dir=tmp_path)})
    with pytest.raises(ValueError) as error:
        train(load_config(str(write_config(tmp_path / "c.yaml", config))), tmp_path / "run", progress=False)
    assert expected in str(error.value) and "data.transform" in str(error.value)
    assert not (tmp_path / "run").exists()
