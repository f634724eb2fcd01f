"""Datasets, converters, checks and the training pipeline.

    from segnext.data import build_dataset, TrainTransform, seed_worker
    train = build_dataset("ade20k", "data/ADEChallengeData2016", "training", transform=TrainTransform(), seed=0)
    loader = DataLoader(train, batch_size=16, shuffle=True, num_workers=4, worker_init_fn=seed_worker)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        ...

See docs/datasets.md for the layouts and the `segnext data prepare` / `segnext data check` commands.
"""

from .bands import display_rgb, read_bands
from .datasets import DATASETS, DatasetSpec, LabelMap, Layout, SegmentationDataset, build_dataset, read_classes_json
from .io import DataError, pil_to_rgb, read_image, read_label, write_image, write_label
from .palette import colorize, default_palette, overlay
from .selection import select_classes
from .tiff_scene import TiffScene, open_tiff_scene
from .transforms import ClassPaste, TrainTransform, seed_worker

__all__ = [
    "DATASETS", "ClassPaste", "DataError", "DatasetSpec", "LabelMap", "Layout", "SegmentationDataset", "TiffScene",
    "TrainTransform", "build_dataset", "colorize", "default_palette", "display_rgb", "open_tiff_scene", "overlay",
    "pil_to_rgb", "read_bands", "read_classes_json", "read_image", "read_label", "seed_worker", "select_classes",
    "write_image", "write_label",
]
