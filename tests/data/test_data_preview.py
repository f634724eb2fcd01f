"""`segnext data preview`: a contact sheet of a split's images with their labels over them."""

from __future__ import annotations

import json

import numpy as np
from synthetic_data import save_pair

from segnext.cli.main import main
from segnext.data import read_image
from segnext.data.preview import TILE_WIDTH, preview_sheet, spread_indices


def test_samples_are_spread_over_the_split():
    assert spread_indices(101, 5) == [0, 25, 50, 75, 100]
    assert spread_indices(3, 8) == [0, 1, 2] and spread_indices(0, 4) == []


def test_the_sheet_shows_each_image_with_its_label_colours_and_a_legend():
    image = np.full((20, 40, 3), 100, dtype=np.uint8)
    label = np.zeros((20, 40), dtype=np.uint8)
    label[:, 20:] = 1
    label[0, 0] = 255
    palette = [[0, 0, 200], [200, 0, 0], [0, 200, 0]]
    sheet = preview_sheet([(image, label, "a.jpg")] * 3, ["sky", "road", "car"], palette, alpha=1.0, columns=2)
    assert sheet.shape[1] == 2 * TILE_WIDTH and sheet.shape[2] == 3
    tile_height = 20 * TILE_WIDTH // 40
    assert sheet[tile_height // 2, TILE_WIDTH // 4].tolist() == [0, 0, 200]  # sky, alpha 1: its colour
    assert sheet[tile_height // 2, 3 * TILE_WIDTH // 4].tolist() == [200, 0, 0]  # road
    assert sheet.shape[0] > 2 * tile_height  # two rows, captions and the legend below


def test_data_preview_writes_the_sheet(tmp_path, capsys):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "lane", "car"]}))
    for i in range(5):
        label = np.zeros((16, 24), dtype=np.uint8)
        label[8:, : 4 * (i + 1)] = 1
        save_pair(tmp_path / f"images/train/{i}.jpg", tmp_path / f"labels/train/{i}.png", label, seed=i)
    out = tmp_path / "sheet.jpg"
    assert main(["data", "preview", "folder", str(tmp_path), "--num", "3", "--out", str(out),
                 "--classes", "[lane]"]) == 0
    assert "wrote" in capsys.readouterr().out and read_image(out).shape[1] == 3 * TILE_WIDTH


def test_the_default_name_says_the_split(tmp_path, monkeypatch, capsys):
    (tmp_path / "data/classes.json").parent.mkdir()
    (tmp_path / "data/classes.json").write_text(json.dumps({"classes": ["bg", "lane"]}))
    save_pair(tmp_path / "data/images/a.jpg", tmp_path / "data/labels/a.png", np.zeros((8, 8), dtype=np.uint8))
    save_pair(tmp_path / "data/images/train/a.jpg", tmp_path / "data/labels/train/a.png", np.zeros((8, 8), np.uint8))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "preview", "folder", "data", "--split", "."]) == 0
    assert main(["data", "preview", "folder", "data"]) == 0
    assert (tmp_path / "preview_folder.jpg").is_file() and (tmp_path / "preview_folder_train.jpg").is_file()
