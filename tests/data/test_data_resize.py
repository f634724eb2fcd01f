"""Resizes shared by the training pipeline and the test-time preprocessing, and OpenCV as an
optional dependency: without it the training pipeline says how to install it, and test-time
resizing still works."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from segnext.data.resize import rescale_size, resize_image


def test_rescale_size_rounds_like_mmcv():
    assert rescale_size(683, 512, (2048, 512)) == (683, 512)
    assert rescale_size(400, 300, (2048, 512)) == (683, 512)
    assert rescale_size(300, 400, (512, 2048)) == (512, 683)


def test_rescale_size_keeps_at_least_one_pixel_where_mmcv_would_round_to_zero():
    assert rescale_size(3000, 2, (2048, 512)) == (2048, 1)
    assert rescale_size(1, 5000, (2048, 512)) == (1, 2048)


def test_without_opencv_the_bilinear_resize_is_within_one_grey_level(tmp_path):
    pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'segnext[opencv]')")
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    code = """
import sys, numpy as np
sys.modules["cv2"] = None  # as if OpenCV were not installed
from segnext.data.resize import resize_image
image = np.load(sys.argv[1])
small = np.pad(resize_image(image, 20, 15), ((0, 46), (0, 60), (0, 0)))
np.save(sys.argv[1], np.stack([resize_image(image, 80, 61), small]))
"""
    path = tmp_path / "image.npy"
    np.save(path, image)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    up, down = np.load(path)
    assert np.abs(up.astype(int) - resize_image(image, 80, 61)).max() <= 1
    assert np.abs(down[:15, :20].astype(int) - resize_image(image, 20, 15)).max() <= 1


def test_without_opencv_training_says_how_to_get_it():
    code = """
import sys
sys.modules["cv2"] = None
from segnext.data import TrainTransform
try:
    TrainTransform()
except ValueError as error:
    print(error)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'segnext[opencv]'" in out and "opencv-python-headless" in out
