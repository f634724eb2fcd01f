"""`segnext data tile`: large images and their labels cut into tiles, written as a folder dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segnext.cli.main import main
from segnext.data import build_dataset
from segnext.data.tiles import tile_dataset, tile_origins


def test_tiles_cover_the_image_the_last_ones_aligned_to_its_far_edges():
    assert tile_origins(1000, 1300, 512, 64) == [(y, x) for y in (0, 448, 488) for x in (0, 448, 788)]
    assert tile_origins(512, 512, 512) == [(0, 0)]
    assert tile_origins(300, 200, 512) == [(0, 0)]  # smaller than a tile: one, padded
    with pytest.raises(ValueError, match="tiles of 64 pixels need an overlap from 0 to 63, got 64"):
        tile_dataset("folder", "anywhere", "elsewhere", size=64, overlap=64)


def _scenes(root, reduce_zero_label=False):
    """Two aerial scenes (TIFF images and masks) of a folder dataset, stored with 0 = no label when
    `reduce_zero_label`."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["ground", "building"],
                                                   "reduce_zero_label": reduce_zero_label}))
    rng = np.random.default_rng(0)
    scenes = {}
    for name, (height, width) in {"austin1": (100, 130), "vienna2": (30, 20)}.items():
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = rng.integers(1 if reduce_zero_label else 0, 3 if reduce_zero_label else 2, (height, width),
                            dtype=np.uint8)
        mask[:, :10] = 0 if reduce_zero_label else 255
        Image.fromarray(image).save(root / "images" / "train" / f"{name}.tif")
        Image.fromarray(mask).save(root / "masks" / "train" / f"{name}.tif")
        scenes[name] = (image, mask.astype(np.int64) - 1 if reduce_zero_label else mask)
    return scenes


def test_a_folder_of_scenes_becomes_a_folder_dataset_of_tiles(tmp_path, capsys):
    scenes = _scenes(tmp_path / "aerial", reduce_zero_label=True)
    out = tmp_path / "tiles"
    assert main(["data", "tile", "folder", str(tmp_path / "aerial"), str(out), "--size", "64", "--overlap", "16",
                 "--workers", "0", "--no-progress"]) == 0
    assert "folder tiles: 2 image(s) tiled, 0 already done, 0 failed" in capsys.readouterr().out
    tiles = build_dataset("folder", out, "train")
    names = [name.rsplit("/", 1)[-1] for name in tiles.image_paths]
    assert names == sorted(f"austin1_y{y}_x{x}.png" for y in (0, 36) for x in (0, 48, 66)) + ["vienna2_y0_x0.png"]
    assert json.loads((out / "classes.json").read_text())["classes"] == ["ground", "building"]
    image, ids = scenes["austin1"]
    ids = np.where(ids < 0, 255, ids)  # stored 0: no label
    sample = tiles[names.index("austin1_y36_x48.png")]
    assert np.array_equal(sample["image"], image[36:100, 48:112])
    assert np.array_equal(sample["label"], ids[36:100, 48:112])
    small = tiles[names.index("vienna2_y0_x0.png")]  # padded: image 0, no label
    assert small["image"].shape == (64, 64, 3) and not small["image"][30:].any() and (small["label"][30:] == 255).all()
    # Each scene is a group: `data split` holds out whole scenes.
    assert main(["data", "split", "folder", str(out), "--hold-out", "vienna2"]) == 0
    assert len(build_dataset("folder", out, "train_heldout")) == 1
    # Done scenes are skipped; --overwrite tiles them again; --drop-unlabelled leaves empty tiles out.
    assert main(["data", "tile", "folder", str(tmp_path / "aerial"), str(out), "--size", "64", "--overlap", "16",
                 "--workers", "0", "--no-progress"]) == 0
    assert "0 image(s) tiled, 2 already done" in capsys.readouterr().out
    report = tile_dataset("folder", tmp_path / "aerial", tmp_path / "narrow", size=8, drop_unlabelled=True,
                          workers=0, progress=False)
    assert report.converted == 2 and not report.failures
    assert not any(name.endswith("_x0.png") for name in build_dataset("folder", tmp_path / "narrow", "train")
                   .image_paths)  # the first 10 columns hold no label: the tiles at x 0 are left out


def test_bands_are_tiled_as_arrays_of_their_own_type(tmp_path):
    root = tmp_path / "fields"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "water"]}))
    bands = np.random.default_rng(1).integers(0, 4000, (40, 50, 6), dtype=np.uint16)
    np.save(root / "images" / "train" / "t.npy", bands)
    Image.fromarray((bands[:, :, 5] > 2000).astype(np.uint8)).save(root / "labels" / "train" / "t.png")
    report = tile_dataset("folder", root, tmp_path / "out", size=32, channels=6, workers=0, progress=False)
    assert report.converted == 1
    tile = np.load(tmp_path / "out" / "images" / "train" / "t_y8_x18.npy")
    assert tile.dtype == np.uint16 and np.array_equal(tile, bands[8:40, 18:50])
    assert len(build_dataset("folder", tmp_path / "out", "train", channels=6)) == 4
    failed = tile_dataset("folder", root, tmp_path / "wrong", size=32, channels=4, workers=0, progress=False)
    assert "t.npy: holds 6 channel(s), and the model takes 4" in failed.failures[0]
    with pytest.raises(ValueError, match="the tiles are written beside their source"):
        tile_dataset("folder", root, root, size=32)
