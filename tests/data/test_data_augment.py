"""Augmentation pipelines of one's own (`data.transform: module:function`): albumentations,
torchvision transforms.v2 and plain functions get the official pipeline's per-sample seeding, end
like it (normalised, padded to the crop), and say clearly what is wrong with them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import blob_label, random_image, save_pair

from segnext.data import build_dataset
from segnext.data.augment import PluginTransform, import_function, load_transform, pipeline_kind, seeded_global_rngs
from segnext.data.transforms import normalize

MEAN, STD, CROP = (120.0, 110.0, 100.0), (60.0, 55.0, 50.0), (24, 32)


def jitter_and_crop(image, label, rng):
    """A plain-function pipeline drawing from the sample's generator and from every global RNG."""
    top, left = int(rng.integers(0, image.shape[0] - CROP[0] + 1)), random.randint(0, image.shape[1] - CROP[1])
    image = image[top:top + CROP[0], left:left + CROP[1]].astype(np.int16)
    image = image + np.random.randint(-20, 20) + int(torch.randint(-5, 5, ()))
    return np.clip(image, 0, 255).astype(np.uint8), label[top:top + CROP[0], left:left + CROP[1]]


@pytest.fixture
def sample():
    return {"image": random_image(40, 50, seed=1), "label": blob_label(40, 50, [0, 1, 2, 255], seed=1)}


def _transform(pipeline):
    return PluginTransform(pipeline, CROP, MEAN, STD)


def _same(a: dict, b: dict) -> bool:
    return torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_a_sample_gets_the_same_augmentation_for_the_same_seed_and_another_for_another(sample):
    transform = _transform(jitter_and_crop)
    first = transform(sample, np.random.default_rng([0, 0, 7]))  # (seed, epoch, index), as the datasets draw it
    assert _same(first, transform(sample, np.random.default_rng([0, 0, 7])))
    assert not _same(first, transform(sample, np.random.default_rng([0, 1, 7])))  # next epoch
    assert first["image"].shape == (3, *CROP) and first["image"].dtype == torch.float32
    assert first["label"].dtype == torch.int64


def test_the_callers_global_random_state_is_left_alone(sample):
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    _transform(jitter_and_crop)(sample, np.random.default_rng(0))
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


def test_output_is_normalised_and_padded_like_the_official_pipeline(sample):
    def keep_top_left(image, label, rng):
        return image[:10, :12], label[:10, :12]

    out = _transform(keep_top_left)(sample, np.random.default_rng(0))
    assert out["image"].shape == (3, *CROP)
    assert torch.equal(out["image"][:, :10, :12], torch.from_numpy(normalize(sample["image"][:10, :12], MEAN, STD)))
    assert out["image"][:, 10:].abs().sum() == 0 and out["image"][:, :, 12:].abs().sum() == 0
    assert (out["label"][10:] == 255).all() and (out["label"][:, 12:] == 255).all()
    assert torch.equal(out["label"][:10, :12], torch.from_numpy(sample["label"][:10, :12].astype(np.int64)))


@pytest.fixture
def albumentations(monkeypatch):
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network at import
    return pytest.importorskip("albumentations", reason="albumentations is not installed (pip install albumentations)")


def test_albumentations_pipeline_is_reproducible_and_keeps_label_and_image_aligned(sample, albumentations):
    A = albumentations
    pipeline = A.Compose([A.RandomCrop(*CROP), A.HorizontalFlip(p=0.5), A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=1.0)])
    transform = _transform(pipeline)
    assert transform.kind == "albumentations"
    outputs = [transform(sample, np.random.default_rng([0, 0, i])) for i in range(6)]
    assert _same(outputs[3], transform(sample, np.random.default_rng([0, 0, 3])))
    assert len({o["label"].numpy().tobytes() for o in outputs}) > 1  # different crops/flips for different samples
    flip = _transform(A.Compose([A.HorizontalFlip(p=1.0), A.CenterCrop(*CROP)]))
    out = flip(sample, np.random.default_rng(0))
    top, left = (40 - CROP[0]) // 2, (50 - CROP[1]) // 2
    expected = sample["label"][:, ::-1][top:top + CROP[0], left:left + CROP[1]]
    assert np.array_equal(out["label"].numpy(), expected)  # the mask took the image's geometric steps


def test_albumentations_normalisation_in_the_pipeline_is_refused(sample, albumentations):
    A = albumentations
    transform = _transform(A.Compose([A.RandomCrop(*CROP), A.Normalize()]))
    with pytest.raises(ValueError, match="returned a float32 image; return it as uint8 .* remove Normalize"):
        transform(sample, np.random.default_rng(0))


def test_a_pipeline_of_ones_own_takes_bands_of_other_channels(sample, albumentations):
    """Images of other channels than RGB reach the pipeline as float32 bands and leave it as numbers
    in their units: the geometric steps move every band and the label alike."""
    A = albumentations
    rng = np.random.default_rng(7)
    bands = {"image": rng.uniform(0, 5000, (40, 50, 5)).astype(np.float32), "label": sample["label"]}
    mean, std = (1000.0,) * 5, (500.0,) * 5
    flip = PluginTransform(A.Compose([A.HorizontalFlip(p=1.0), A.CenterCrop(*CROP)]), CROP, mean, std)
    out = flip(bands, np.random.default_rng(0))
    top, left = (40 - CROP[0]) // 2, (50 - CROP[1]) // 2
    expected = (bands["image"][:, ::-1][top:top + CROP[0], left:left + CROP[1]] - 1000.0) / 500.0
    assert out["image"].shape == (5, *CROP)
    assert torch.allclose(out["image"], torch.from_numpy(expected.transpose(2, 0, 1).copy()), atol=1e-6)
    assert np.array_equal(out["label"].numpy(), sample["label"][:, ::-1][top:top + CROP[0], left:left + CROP[1]])
    three = PluginTransform(lambda image, label, rng: (image[:CROP[0], :CROP[1], :3], label[:CROP[0], :CROP[1]]), CROP,
                            mean, std)
    with pytest.raises(ValueError, match="returned an image of shape \\(24, 32, 3\\); expected \\(height, width, 5\\)"):
        three(bands, np.random.default_rng(0))


def test_a_pipeline_of_ones_own_takes_three_bands_as_bands_with_data_bands(sample):
    """With data.bands, three channels come in as float32 bands and go out as numbers (an 8-bit RGB
    pipeline's uint8 rule does not apply); load_transform reads it from the data section."""
    colour = {"image": np.random.default_rng(8).uniform(1024, 1280, (40, 50, 3)).astype(np.float32),
              "label": sample["label"]}
    crop = lambda image, label, rng: (image[:CROP[0], :CROP[1]], label[:CROP[0], :CROP[1]])  # noqa: E731
    mean, std = (1150.0,) * 3, (70.0,) * 3
    out = PluginTransform(crop, CROP, mean, std, bands=True)(colour, np.random.default_rng(0))
    expected = (colour["image"][:CROP[0], :CROP[1]] - 1150.0) / 70.0
    assert torch.allclose(out["image"], torch.from_numpy(expected.transpose(2, 0, 1).copy()), atol=1e-6)
    with pytest.raises(ValueError, match="returned a float32 image; return it as uint8"):
        PluginTransform(crop, CROP, mean, std)(colour, np.random.default_rng(0))


def test_torchvision_v2_pipeline(sample):
    try:
        from torchvision.transforms import v2
    except Exception as error:  # absent, or built for another torch
        pytest.skip(f"torchvision cannot be imported here ({type(error).__name__}: {error})")
    transform = _transform(v2.Compose([v2.RandomCrop(CROP), v2.RandomHorizontalFlip()]))
    assert transform.kind == "torchvision"
    first = transform(sample, np.random.default_rng([0, 0, 3]))
    assert _same(first, transform(sample, np.random.default_rng([0, 0, 3])))
    assert first["image"].shape == (3, *CROP)


def test_results_the_rest_of_the_pipeline_cannot_use_are_named(sample):
    with pytest.raises(ValueError, match=r"returned a 40x50 sample \(height x width\), larger than "
                                         r"data.crop_size \[24, 32\]: end the pipeline with a crop"):
        _transform(lambda image, label, rng: (image, label))(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match="returned a label of shape"):
        _transform(lambda image, label, rng: (image[:8, :8], label[:4, :4]))(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match="gave dict, not a transform"):
        PluginTransform({"crop": 1}, CROP, MEAN, STD)
    assert pipeline_kind(jitter_and_crop) == "function" and pipeline_kind(3) is None


def test_seeded_global_rngs_restores_them():
    random.seed(1)
    expected = random.random()
    random.seed(1)
    with seeded_global_rngs(99):
        inside = random.random(), float(np.random.rand()), float(torch.rand(()))
    assert random.random() == expected
    with seeded_global_rngs(99):
        assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == inside


AUGMENT_MODULE = '''
import numpy as np

def build(data):
    crop = tuple(data.crop_size)

    def crop_and_flip(image, label, rng):
        top = int(rng.integers(0, image.shape[0] - crop[0] + 1))
        left = int(np.random.randint(0, image.shape[1] - crop[1] + 1))  # global RNG: seeded per sample too
        image, label = image[top:top + crop[0], left:left + crop[1]], label[top:top + crop[0], left:left + crop[1]]
        return (image[:, ::-1], label[:, ::-1]) if rng.random() < 0.5 else (image, label)

    return crop_and_flip

def no_arguments():
    return lambda image, label, rng: (image[:8, :8], label[:8, :8])

not_a_function = 3
'''


class DataSection:
    crop_size = (16, 16)


def test_load_transform_from_a_file_or_a_module(tmp_path, monkeypatch):
    path = tmp_path / "my_augment.py"
    path.write_text(AUGMENT_MODULE)
    transform = load_transform(f"{path}:build", DataSection(), (16, 16), MEAN, STD)
    assert isinstance(transform, PluginTransform) and transform.kind == "function"
    monkeypatch.syspath_prepend(str(tmp_path))
    transform = load_transform("my_augment:no_arguments", DataSection(), (16, 16), MEAN, STD)  # build() works too
    out = transform({"image": random_image(20, 20), "label": blob_label(20, 20, [0, 1])}, np.random.default_rng(0))
    assert out["image"].shape == (3, 16, 16)


@pytest.mark.parametrize("reference,expected", [
    ("my_augment", r"'my_augment' is not of the form module:function \(e.g. my_augment:build"),
    ("no_such_module_here:build", r"no module named 'no_such_module_here' on the Python path. Give its file instead "
                                  r"\(data.transform=path/to/no_such_module_here.py:build\)"),
    ("{dir}/my_augment.py:biuld", r"has no 'biuld'. Did you mean 'build'\?"),
    ("{dir}/my_augment.py:not_a_function", "not_a_function is a int, not a function"),
    ("{dir}/absent.py:build", r"the file .*absent.py does not exist"),
    ("{dir}/needs_missing.py:build", r"the file imports 'segnext_no_such_package', which is not installed"),
])
def test_a_transform_that_cannot_be_loaded_says_why(tmp_path, reference, expected):
    (tmp_path / "my_augment.py").write_text(AUGMENT_MODULE)
    (tmp_path / "needs_missing.py").write_text("import segnext_no_such_package\n")
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        import_function(reference.format(dir=tmp_path), "data.transform")


def _folder_with_augment_module(tmp_path):
    """A folder dataset of six train pairs in tmp_path/data, and AUGMENT_MODULE as tmp_path/my_augment.py."""
    root = tmp_path / "data"
    (root / "classes.json").parent.mkdir(parents=True)
    (root / "classes.json").write_text('{"classes": ["a", "b", "c"]}')
    for i in range(6):
        save_pair(root / "images/train" / f"{i}.png", root / "labels/train" / f"{i}.png",
                  blob_label(30, 40, [0, 1, 2], seed=i), seed=i)
    (tmp_path / "my_augment.py").write_text(AUGMENT_MODULE)
    return root


def test_the_same_batches_whatever_the_number_of_loader_workers(tmp_path):
    """The official pipeline's guarantee, for a pipeline of one's own: a sample's augmentation
    depends on (seed, epoch, index) only."""
    from segnext.train.sampler import training_loader

    root = _folder_with_augment_module(tmp_path)
    transform = load_transform(f"{tmp_path / 'my_augment.py'}:build", DataSection(), (16, 16), MEAN, STD)
    dataset = build_dataset("folder", root, "train", transform=transform, seed=3)

    def batches(workers):
        loader = iter(training_loader(dataset, seed=3, batch_size=2, micro_batch_size=2, num_workers=workers))
        return [next(loader) for _ in range(5)]  # into the second epoch

    alone, with_workers = batches(0), batches(2)
    assert all(_same(a, b) for a, b in zip(alone, with_workers))
    assert not _same(alone[0], alone[3])


def test_a_pipeline_of_ones_own_reaches_spawned_workers(tmp_path):
    """Workers started by spawn or forkserver (macOS, Windows, Python 3.14 on Linux) get the dataset
    pickled; a pipeline of closures from a file cannot be pickled itself, so it is built again there
    from its reference and augments as in the main process."""
    import pickle
    import types

    (tmp_path / "my_augment.py").write_text(AUGMENT_MODULE)
    data = types.SimpleNamespace(crop_size=(16, 16))
    transform = load_transform(f"{tmp_path / 'my_augment.py'}:build", data, (16, 16), MEAN, STD)
    rebuilt = pickle.loads(pickle.dumps(transform))
    assert rebuilt is not transform and rebuilt.name == transform.name
    source = {"image": random_image(30, 40, seed=2), "label": blob_label(30, 40, [0, 1, 2], seed=2)}
    for seed in range(3):
        assert _same(transform(dict(source), np.random.default_rng(seed)),
                     rebuilt(dict(source), np.random.default_rng(seed)))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(PluginTransform(transform.pipeline, CROP, MEAN, STD))  # what it would be without


SPAWNED_LOADER = """
import hashlib, multiprocessing, sys, types
from segnext.data import build_dataset
from segnext.data.augment import load_transform
from segnext.train.sampler import training_loader


def batches_digest(root, reference, workers):
    data = types.SimpleNamespace(crop_size=(16, 16))
    transform = load_transform(reference, data, (16, 16), (120.0, 110.0, 100.0), (60.0, 55.0, 50.0))
    dataset = build_dataset("folder", root, "train", transform=transform, seed=3)
    loader = iter(training_loader(dataset, seed=3, batch_size=4, micro_batch_size=2, num_workers=int(workers),
                                  rank=1, world_size=2))
    digest = hashlib.sha256()
    for _ in range(3):
        batch = next(loader)
        digest.update(batch["image"].numpy().tobytes() + batch["label"].numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    root, reference, start_method, workers = sys.argv[1:]
    multiprocessing.set_start_method(start_method)
    print(batches_digest(root, reference, workers))
"""


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_training_batches_are_the_same_from_spawned_workers(tmp_path, start_method):
    """macOS and Windows start loader workers by spawn, Python 3.14 on Linux by forkserver: the
    workers rebuild a pipeline of one's own from its file, so the batches are those that the
    process makes alone."""
    import subprocess

    root = _folder_with_augment_module(tmp_path)
    (tmp_path / "spawned_loader.py").write_text(SPAWNED_LOADER)

    reference = f"{tmp_path / 'my_augment.py'}:build"
    result = subprocess.run([sys.executable, str(tmp_path / "spawned_loader.py"), str(root), reference, start_method,
                             "2"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    alone = {}  # the same code in this process, without workers (and without paying another start-up)
    exec(compile(SPAWNED_LOADER, "spawned_loader.py", "exec"), alone)
    assert result.stdout.split()[-1] == alone["batches_digest"](str(root), reference, 0)


def test_a_transform_file_does_not_shadow_an_installed_module(tmp_path):
    (tmp_path / "json.py").write_text("def build():\n    return lambda image, label, rng: (image, label)\n")
    import_function(f"{tmp_path / 'json.py'}:build", "data.transform")
    import json

    assert sys.modules["json"] is json and hasattr(json, "dumps")  # the user's file did not shadow a module
    assert Path(json.__file__).parent != tmp_path
