"""`segnext predict`: folders, globs, outputs, and a corrupt file among good ones."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from segnext.cli.main import main

FAST = ["--img-scale", "96", "64", "--no-progress"]


def _scene(height, width, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_scene(40, 56, 1)).save(folder / "a.png")
    Image.fromarray(_scene(33, 21, 2)).convert("L").save(folder / "b.jpg")
    Image.fromarray(_scene(25, 30, 3)).save(folder / "sub" / "c.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not an image")
    (folder / "notes.txt").write_text("not an image, not an input")
    return folder


def test_folder_with_a_corrupt_file(checkpoint_path, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["predict", "--checkpoint", str(checkpoint_path), str(image_folder), "--out", str(out),
                   "--overlay", "--probs", *FAST])
    err = capsys.readouterr().err
    assert status == 1
    assert "broken.jpg" in err and "1 input(s) failed" in err
    labels = Image.open(out / "a.png")
    assert labels.mode == "P" and labels.size == (56, 40)
    assert labels.getpalette()[:3] == [120, 120, 120]  # ADE20K's palette from the checkpoint
    assert Image.open(out / "b.png").size == (21, 33)
    assert Image.open(out / "sub" / "c.png").size == (30, 25)  # the sub-folder is kept
    assert Image.open(out / "a_overlay.jpg").size == (56, 40)
    probabilities = np.load(out / "a_probs.npy")
    assert probabilities.shape == (150, 40, 56) and probabilities.dtype == np.float16
    assert np.array_equal(probabilities.astype(np.float32).argmax(0)[probabilities.max(0) > 0.5],
                          np.asarray(labels)[probabilities.max(0) > 0.5])
    assert not (out / "broken.png").exists()


def test_glob_and_single_file_and_missing_input(checkpoint_path, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["predict", "-c", str(checkpoint_path), str(image_folder / "*.png"), str(image_folder / "b.jpg"),
                   "--out", str(out), *FAST])
    assert status == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    status = main(["predict", "-c", str(checkpoint_path), str(tmp_path / "nothing_here.png"), "--out", str(out)])
    assert status == 1 and "nothing_here.png" in capsys.readouterr().err


def test_slide_and_multi_scale_flags(checkpoint_path, image_folder, tmp_path):
    out = tmp_path / "out"
    image = str(image_folder / "a.png")
    assert main(["predict", "-c", str(checkpoint_path), image, "--out", str(out / "slide"), "--mode", "slide",
                 "--crop-size", "32", "32", "--stride", "24", "24", *FAST]) == 0
    assert main(["predict", "-c", str(checkpoint_path), image, "--out", str(out / "ms"), "--scales", "0.5", "1.0",
                 "--flip", *FAST]) == 0
    for kind in ("slide", "ms"):
        assert Image.open(out / kind / "a.png").size == (56, 40)


def test_predict_with_onnxruntime(checkpoint_path, image_folder, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: `segnext predict --onnx` untested")
    model_file = tmp_path / "model.onnx"
    assert main(["export", "-c", str(checkpoint_path), "-o", str(model_file), "--shape", "64", "96"]) == 0
    assert main(["predict", "--onnx", str(model_file), str(image_folder / "a.png"), "--out", str(tmp_path / "onnx"),
                 *FAST]) == 0
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out", str(tmp_path / "torch"),
                 *FAST]) == 0
    through_onnx = np.asarray(Image.open(tmp_path / "onnx" / "a.png"))
    through_torch = np.asarray(Image.open(tmp_path / "torch" / "a.png"))
    assert (through_onnx == through_torch).mean() >= 0.99


def test_a_full_disk_stops_prediction_naming_the_file_and_its_size(checkpoint_path, image_folder, tmp_path, capsys,
                                                                  full_disk):
    out = tmp_path / "out"
    out.mkdir()
    full_disk(out, free=0)
    status = main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), str(image_folder / "b.jpg"),
                   "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    message = rf"{re.escape(str(out / 'a.png'))}: no space left on the device: writing it needs [\d.]+ (bytes|KB)"
    assert re.search(message, err), err
    assert "b.jpg" not in err and list(out.iterdir()) == []  # stopped at once; no partial file left
