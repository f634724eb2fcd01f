"""Fixture of the training tests: a tiny synthetic dataset (helpers: train_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """16 train / 8 val synthetic scenes of 64x80 (8 classes), in the folder layout."""
    from segnext.data.scenes import make_scene_dataset

    return make_scene_dataset(tmp_path_factory.mktemp("scenes"), num_train=16, num_val=8, size=(64, 80), seed=0)
