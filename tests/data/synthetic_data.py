"""Helpers that write tiny datasets in the real on-disk layouts, for the data tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared folder next to the repository, or $SEGNEXT_SHARED."""
    override = os.environ.get("SEGNEXT_SHARED")
    return Path(override).expanduser() if override else (REPO_ROOT / ".." / "shared").resolve()


def blob_label(height: int, width: int, values: Sequence[int], seed: int = 0) -> np.ndarray:
    """A label map made of rectangles of the given values; every value occurs."""
    rng = np.random.default_rng(seed)
    label = np.full((height, width), values[0], dtype=np.uint8)
    for value in values[1:]:
        h, w = max(2, height // 3), max(2, width // 3)
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        label[top:top + h, left:left + w] = value
    for value in values:  # make sure small rectangles were not fully covered by later ones
        if not (label == value).any():
            label[rng.integers(height), rng.integers(width)] = value
    return label


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def save_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(image).save(path)
    return path


def save_label(path: Path, label: np.ndarray, palette: Optional[Sequence] = None) -> Path:
    """A PNG label; with `palette` a palettised (mode P) PNG whose colours are NOT the indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label.astype(np.uint8))
    if palette is not None:
        image = Image.frombytes("P", image.size, label.astype(np.uint8).tobytes())
        flat = [c for colour in palette for c in colour]
        image.putpalette(flat + [255] * (768 - len(flat)))
    image.save(path)
    return path


def save_pair(image_path: Path, label_path: Path, label: np.ndarray, seed: int = 0, palette=None):
    save_image(image_path, random_image(*label.shape, seed=seed))
    save_label(label_path, label, palette)


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
