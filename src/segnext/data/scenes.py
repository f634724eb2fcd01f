"""A small built-in scene dataset for `segnext demo`: no download, generated in seconds.

Street-like scenes: sky above a horizon, ground split into road and grass, buildings, trees, cars,
people and a sun, each class with its own colour range and texture (with jitter, noise and random
lighting so that colour alone does not solve the task). Written in the generic `folder` layout:
`root/images/{train,val}/*.png`, `root/labels/{train,val}/*.png`, `root/classes.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Tuple

import numpy as np

from .resize import opencv

CLASSES = ["sky", "building", "road", "grass", "tree", "car", "person", "sun"]
PALETTE = [[70, 130, 180], [70, 70, 70], [128, 64, 128], [152, 251, 152],
           [107, 142, 35], [0, 0, 142], [220, 20, 60], [250, 170, 30]]
# Base RGB colour of each class's texture; every object gets a random shift of it.
BASE_COLOURS = np.array([[135, 180, 230], [150, 120, 100], [90, 90, 95], [80, 160, 70],
                         [40, 110, 40], [180, 30, 30], [230, 180, 140], [255, 230, 90]], dtype=np.float32)


def _texture(rng: np.random.Generator, shape: Tuple[int, int], class_id: int) -> np.ndarray:
    """A (H, W, 3) float texture for one class: base colour, jitter, and a class-specific pattern."""
    cv2 = opencv()
    height, width = shape
    colour = BASE_COLOURS[class_id] + rng.normal(0, 18, 3)
    tex = np.broadcast_to(colour, (height, width, 3)).copy()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if class_id == 0:  # sky: vertical gradient
        tex *= (0.75 + 0.35 * yy / max(height - 1, 1))[..., None]
    elif class_id == 1:  # building: window grid
        period = rng.integers(6, 12)
        windows = ((yy % period) < period // 2) & ((xx % period) < period // 2)
        tex[windows] *= 0.55
    elif class_id == 2:  # road: fine noise and lane stripes
        tex += rng.normal(0, 6, (height, width, 1))
        tex[(np.abs(xx - width / 2) < 2) & ((yy // 8) % 2 == 0)] = 230
    elif class_id in (3, 4):  # grass, tree: blotchy noise
        noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 2.0)
        tex *= (1 + 0.25 * noise)[..., None]
    elif class_id == 5:  # car: horizontal shading
        tex *= (0.8 + 0.3 * np.sin(yy / 3.0))[..., None]
    return tex


def _scene(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    cv2 = opencv()
    label = np.zeros((height, width), np.uint8)
    horizon = int(height * rng.uniform(0.35, 0.55))
    label[horizon:] = 3  # grass
    road_top, road_bottom = rng.uniform(0.3, 0.45) * width, rng.uniform(0.05, 0.25) * width
    road = np.array([[width / 2 - road_top / 2, horizon], [width / 2 + road_top / 2, horizon],
                     [width / 2 + width / 2 + road_bottom, height], [width / 2 - width / 2 - road_bottom, height]])
    cv2.fillPoly(label, [road.astype(np.int32)], 2)
    if rng.random() < 0.6:  # sun
        cv2.circle(label, (int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.05, 0.25) * height)),
                   int(rng.uniform(0.04, 0.08) * width), 7, -1)
    for _ in range(rng.integers(1, 5)):  # buildings standing on the horizon
        w = int(rng.uniform(0.1, 0.3) * width)
        h = int(rng.uniform(0.2, 0.45) * height)
        x = int(rng.uniform(-0.1, 0.9) * width)
        cv2.rectangle(label, (x, horizon - h), (x + w, horizon + 2), 1, -1)
    for _ in range(rng.integers(0, 4)):  # trees: trunk-less crowns near the horizon
        r = int(rng.uniform(0.05, 0.1) * width)
        cv2.circle(label, (int(rng.uniform(0, 1) * width), horizon - r // 2), r, 4, -1)
    for _ in range(rng.integers(0, 4)):  # cars on or near the road, larger when closer
        y = int(rng.uniform(horizon + 0.1 * height, height - 4))
        size = (y - horizon) / (height - horizon)
        w, h = int((0.12 + 0.2 * size) * width), int((0.06 + 0.1 * size) * height)
        x = int(rng.uniform(0.15, 0.85) * width) - w // 2
        cv2.rectangle(label, (x, y - h), (x + w, y), 5, -1)
    for _ in range(rng.integers(0, 4)):  # people: thin ellipses with a head
        y = int(rng.uniform(horizon + 0.05 * height, height - 2))
        size = 0.5 + (y - horizon) / (height - horizon)
        h, w = int(0.12 * height * size), max(2, int(0.02 * width * size))
        x = int(rng.uniform(0.05, 0.95) * width)
        cv2.ellipse(label, (x, y - h // 2), (w, h // 2), 0, 0, 360, 6, -1)
        cv2.circle(label, (x, y - h - w), w, 6, -1)
    image = np.zeros((height, width, 3), np.float32)
    for class_id in np.unique(label):
        mask = label == class_id
        image[mask] = _texture(rng, (height, width), int(class_id))[mask]
    image *= rng.uniform(0.7, 1.2)  # global lighting
    image += rng.normal(0, 5, image.shape)  # sensor noise
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return np.clip(image, 0, 255).astype(np.uint8), label


def make_scene_dataset(root, num_train: int = 160, num_val: int = 40, size: Tuple[int, int] = (128, 160),
                       seed: int = 0) -> Path:
    """Write the dataset under `root` (skipped when already complete) and return `root`."""
    cv2 = opencv()
    root = Path(root)
    meta = {"dataset": "segnext built-in demo scenes (synthetic)", "num_classes": len(CLASSES),
            "ignore_index": 255, "classes": CLASSES, "palette": PALETTE,
            "groups": ".+"}  # each scene is drawn on its own: no two are frames of one sequence
    _refuse_another_dataset(root, meta)
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        image_dir, label_dir = root / "images" / split, root / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, label = _scene(rng, *size)  # always drawn, so the stream is the same when resuming
            stem = f"scene_{index:04d}"
            if (label_dir / f"{stem}.png").exists() and (image_dir / f"{stem}.png").exists():
                continue
            cv2.imwrite(str(image_dir / f"{stem}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(label_dir / f"{stem}.png"), label)
    (root / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


def _refuse_another_dataset(root: Path, meta: dict) -> None:
    """The scenes are written into `root` only where it holds nothing or scenes already: never over,
    nor among, the files of a user's dataset (a demo given the folder of a project with its data/)."""
    classes = root / "classes.json"
    try:
        written = json.loads(classes.read_text()) if classes.exists() else meta
        # scenes written before classes.json named their groups are ours too (it is written anew)
        ours = written == meta or written == {key: value for key, value in meta.items() if key != "groups"}
    except ValueError:
        ours = False
    others = [path for split in ("train", "val") for folder in (root / "images" / split, root / "labels" / split)
              if folder.is_dir() for path in folder.iterdir() if not re.fullmatch(r"scene_\d{4}\.png", path.name)]
    if not ours or others:
        found = classes if not ours else others[0]
        raise FileExistsError(f"{root} holds another dataset ({found}): the synthetic scenes are not written there. "
                              f"Give the demo a folder of its own (--work-dir)")
