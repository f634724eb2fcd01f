"""`segnext train` on images of other channels than RGB: a folder of .npy arrays, one mean and std per
band, a model of as many input channels; then eval, calibrate, predict and data stats on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import tiny_config, write_config

from segnext.cli.main import main
from segnext.data import read_image
from segnext.inference import Segmenter
from segnext.train import load_config, train

# Band 3 ("near infrared") alone tells water (class 1) from land (class 0): the RGB bands are noise
# of one distribution for both, as water and dark fields can look in a photograph.
MEAN, STD = [127.5, 127.5, 127.5, 500.0], [73.6, 73.6, 73.6, 500.0]


def _lake_dataset(root, seed: int, draw_image, write_image, num_train: int = 12, num_val: int = 4, size=(64, 64)):
    """A folder dataset of land (class 0) around a round lake (class 1): `draw_image(water, rng)`
    makes each image, `write_image(path without its suffix, image)` saves it."""
    rng = np.random.default_rng(seed)
    (root / "classes.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["land", "water"]}))
    for split, count in (("train", num_train), ("val", num_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(count):
            rows, cols = np.mgrid[:size[0], :size[1]]
            centre, radius = rng.uniform(16, 48, 2), rng.uniform(10, 22)
            water = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius ** 2
            write_image(root / "images" / split / f"tile_{index:03d}", draw_image(water, rng))
            Image.fromarray(water.astype(np.uint8)).save(root / "labels" / split / f"tile_{index:03d}.png")
    return root


def _water_dataset(root, num_train: int = 12, num_val: int = 4):
    """.npy arrays of four bands whose fourth alone tells water from land."""
    def draw(water, rng):
        bands = rng.integers(0, 256, (*water.shape, 4)).astype(np.uint16)
        bands[:, :, 3] = np.where(water, 60, 900) + rng.integers(0, 80, water.shape)
        return bands

    return _lake_dataset(root, 0, draw, lambda stem, bands: np.save(stem.with_suffix(".npy"), bands),
                         num_train, num_val)


def test_a_model_of_four_channels_learns_from_the_fourth_and_every_command_reads_its_bands(tmp_path, capsys):
    root = _water_dataset(tmp_path / "water")
    raw = tiny_config(root, model={"name": "segnext_t", "options": {"in_channels": 4}},
                      train={"max_iters": 40, "batch_size": 4, "micro_batch_size": 4, "log_interval": 10,
                             "checkpoint_interval": 40, "eval_interval": 0, "threads": 1},
                      optimizer={"lr": 1.0e-3}, evaluation={"img_scale": None, "num_overlays": 2})
    raw["data"].update(mean=MEAN, std=STD, photometric=False, img_scale=[64, 64], ratio_range=[0.75, 1.5])
    config_path = write_config(tmp_path / "water.yaml", raw)
    result = train(load_config(str(config_path)), tmp_path / "run", progress=False)
    # All land scores mIoU about 35 here; the fourth band draws the water's outline.
    assert result.results["mIoU"] > 80, result.results["mIoU"]
    model_dir = tmp_path / "run" / "final_model"
    assert json.loads((model_dir / "config.json").read_text())["config"]["in_channels"] == 4
    assert sorted(p.name for p in (tmp_path / "run" / "report_data" / "hardest").glob("*.jpg"))  # pictures of bands

    run_config = str(tmp_path / "run" / "config.yaml")
    assert main(["eval", run_config, "-c", str(model_dir), "--no-progress", "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["mIoU"] == result.results["mIoU"]
    assert main(["calibrate", run_config, "-c", str(model_dir), "--out", str(tmp_path / "calibrated"),
                 "--no-progress"]) == 0
    tile = root / "images" / "val" / "tile_000.npy"
    assert main(["predict", "-c", str(model_dir), str(tile), "--out", str(tmp_path / "labels.png")]) == 0
    labels = np.asarray(Image.open(tmp_path / "labels.png"))
    assert np.array_equal(labels, Segmenter.from_checkpoint(model_dir).predict(np.load(tile)))
    truth = np.asarray(Image.open(root / "labels" / "val" / "tile_000.png"))
    assert (labels == truth).mean() > 0.9
    capsys.readouterr()
    assert main(["data", "stats", "folder", str(root), "--channels", "4"]) == 0
    printed = capsys.readouterr().out
    band = np.concatenate([np.load(p)[:, :, 3].ravel() for p in sorted((root / "images" / "train").glob("*.npy"))])
    assert f"       3 {band.mean():>12.4f} {band.std():>12.4f}" in printed
    assert "model.options.in_channels=4" in printed


def test_an_rgb_model_meets_data_of_other_channels_with_what_to_do(tmp_path, capsys):
    root = _water_dataset(tmp_path / "water", num_train=1, num_val=1)
    raw = tiny_config(root, model={"name": "segnext_t", "options": {"in_channels": 4}})
    raw["data"].update(mean=MEAN, std=STD, photometric=False)
    config_path = write_config(tmp_path / "water.yaml", raw)
    rgb_model = tmp_path / "rgb_model"
    import segnext

    segnext.save_model(segnext.create_model("segnext_t", 2), rgb_model)
    assert main(["eval", str(config_path), "-c", str(rgb_model), "--no-progress"]) == 1
    assert (f"{rgb_model} takes 3 input channels (in_channels), and the test settings' mean and std normalise 4: give "
            f"the config it was trained with" in capsys.readouterr().err)


def _wide_colour_dataset(root, tifffile):
    """16-bit RGB TIFFs of 12-bit data in which water is a few levels darker in blue than land: every
    sample lies in 1024..1279, whose top byte (an 8-bit read) is 4 everywhere."""
    def draw(water, rng):
        colour = rng.integers(1024, 1280, (*water.shape, 3)).astype(np.uint16)
        colour[:, :, 2] = np.where(water, 1040, 1200) + rng.integers(0, 40, water.shape)
        return colour

    return _lake_dataset(root, 1, draw, lambda stem, colour: tifffile.imwrite(stem.with_suffix(".tif"), colour,
                                                                              photometric="rgb"))


def test_16_bit_colour_read_as_bands_is_learnt_from_the_bits_an_8_bit_read_drops(tmp_path, capsys):
    """data.bands: three channels at all their bits, found by `data check`, measured by `data stats
    --bands`, trained on, and read alike by eval, predict (TIFF and 16-bit PNG) and info."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): no 16-bit "
                                                      "colour TIFF to write")
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install opencv-python-headless)")
    root = _wide_colour_dataset(tmp_path / "wide", tifffile)
    scene = root / "images" / "val" / "tile_000.tif"
    assert np.unique(read_image(scene)).tolist() == [4]  # read as 8-bit RGB, nothing is left to learn from
    assert main(["data", "check", "folder", str(root), "--no-progress"]) == 0
    assert "read them as bands at all their bits (--bands here, data.bands=true in training" in capsys.readouterr().out
    assert main(["data", "check", "folder", str(root), "--no-progress", "--bands"]) == 0
    assert "16-bit samples" not in capsys.readouterr().out
    assert main(["data", "stats", "folder", str(root), "--bands"]) == 0
    printed = capsys.readouterr().out
    assert "data.bands=true data.photometric=false" in printed and "in_channels" not in printed
    mean = json.loads(printed.split("data.mean=")[1].split(" data.std=")[0])
    std = json.loads(printed.split("data.std=")[1].split(" data.bands")[0])
    assert 1100 < mean[2] < 1200 and 1140 < mean[0] < 1160

    raw = tiny_config(root, train={"max_iters": 40, "batch_size": 4, "micro_batch_size": 4, "log_interval": 10,
                                   "checkpoint_interval": 40, "eval_interval": 0, "threads": 1},
                      optimizer={"lr": 1.0e-3}, evaluation={"img_scale": None, "num_overlays": 1})
    raw["data"].update(bands=True, mean=mean, std=std, photometric=False, img_scale=[64, 64], ratio_range=[0.75, 1.5])
    result = train(load_config(str(write_config(tmp_path / "wide.yaml", raw))), tmp_path / "run", progress=False)
    assert result.results["mIoU"] > 80, result.results["mIoU"]  # all land: about 35
    model_dir = tmp_path / "run" / "final_model"
    assert json.loads((model_dir / "config.json").read_text())["config"]["test_settings"]["bands"] is True

    run_config = str(tmp_path / "run" / "config.yaml")
    assert main(["eval", run_config, "-c", str(model_dir), "--no-progress", "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["mIoU"] == result.results["mIoU"]
    png = tmp_path / "tile_000.png"  # the same 16 bits as a PNG
    cv2.imwrite(str(png), tifffile.imread(scene)[:, :, ::-1])
    for image in (scene, png):
        assert main(["predict", "-c", str(model_dir), str(image), "--out", str(tmp_path / "labels.png"),
                     "--overlay"]) == 0
        labels = np.asarray(Image.open(tmp_path / "labels.png"))
        assert np.array_equal(labels, Segmenter.from_checkpoint(model_dir).predict(tifffile.imread(scene)))
        truth = np.asarray(Image.open(root / "labels" / "val" / "tile_000.png"))
        assert (labels == truth).mean() > 0.9, image
    capsys.readouterr()
    assert main(["info", str(model_dir)]) == 0
    assert "3 channels read as bands in their own units (not 8-bit RGB)" in capsys.readouterr().out


def test_statistics_in_other_units_than_the_images_are_a_warning_at_the_start(tmp_path, capsys):
    """16-bit colour read as bands with the 0..255 ImageNet values normalises to means of about 17
    standard deviations: training starts with a warning naming the command that measures them; the
    measured statistics, and 8-bit RGB with the ImageNet values, give none."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed: no 16-bit colour TIFF to write")
    root = _wide_colour_dataset(tmp_path / "wide", tifffile)
    raw = tiny_config(root, train={"max_iters": 1, "checkpoint_interval": 1})
    raw["data"].update(bands=True, photometric=False)
    config = load_config(str(write_config(tmp_path / "wide.yaml", raw)))
    note = config.data.normalisation_note(config.data.build("train"))
    first = root / "images" / "train" / "tile_000.tif"
    assert note.startswith(f"data.mean/data.std normalise the training image {first} to channel means of 17.")
    assert f"not in the images' units; `segnext data stats folder {root} --split train --bands` measures them" in note
    train(config, tmp_path / "run", progress=False)
    assert f"  warning: {note}" in capsys.readouterr().out
    config.data.mean, config.data.std = (1150.0, 1150.0, 1130.0), (74.0, 74.0, 75.0)
    assert config.data.normalisation_note(config.data.build("train")) is None
    water = _water_dataset(tmp_path / "water", num_train=2, num_val=1)
    raw = tiny_config(water, model={"name": "segnext_t", "options": {"in_channels": 4}})
    raw["data"].update(mean=MEAN, std=STD, photometric=False)
    config = load_config(str(write_config(tmp_path / "water.yaml", raw)))
    assert config.data.normalisation_note(config.data.build("train")) is None
    config.data.mean, config.data.std = (127.5, 127.5, 127.5, 0.5), (73.6, 73.6, 73.6, 0.2)  # band 4: reflectance
    assert "--channels 4` measures them" in config.data.normalisation_note(config.data.build("train"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (these tests run on a GPU)")
def test_a_model_of_four_channels_learns_from_the_fourth_on_the_gpu(tmp_path):
    """The bands pipeline feeding a CUDA run (mixed precision, the device's defaults): the fourth band
    learnt as on the CPU, and the GPU's labels for a tile those of its Segmenter."""
    root = _water_dataset(tmp_path / "water")
    raw = tiny_config(root, model={"name": "segnext_t", "options": {"in_channels": 4}},
                      train={"max_iters": 40, "batch_size": 4, "micro_batch_size": 4, "log_interval": 10,
                             "checkpoint_interval": 40, "eval_interval": 0, "device": "cuda", "amp": True},
                      optimizer={"lr": 1.0e-3}, evaluation={"img_scale": None, "num_overlays": 0})
    raw["data"].update(mean=MEAN, std=STD, photometric=False, img_scale=[64, 64], ratio_range=[0.75, 1.5])
    result = train(load_config(str(write_config(tmp_path / "water.yaml", raw))), tmp_path / "run", progress=False)
    assert result.results["mIoU"] > 80, result.results["mIoU"]
    tile = np.load(root / "images" / "val" / "tile_000.npy")
    labels = Segmenter.from_checkpoint(tmp_path / "run" / "final_model", device="cuda").predict(tile)
    truth = np.asarray(Image.open(root / "labels" / "val" / "tile_000.png"))
    assert (labels == truth).mean() > 0.9
