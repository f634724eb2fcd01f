"""Datasets, converters, checks and the train/test pipelines.

    from segnext.data import build_dataset, TrainTransform, TestTransform, seed_worker
    train = build_dataset("ade20k", "data/ADEChallengeData2016", "training", transform=TrainTransform(), seed=0)
    loader = DataLoader(train, batch_size=16, shuffle=True, num_workers=4, worker_init_fn=seed_worker)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        ...

See docs/datasets.md for the layouts and the `segnext data prepare` / `segnext data check` commands.
"""

from .datasets import (DATASETS, IGNORE_INDEX, DatasetSpec, Layout, LabelMap, SegmentationDataset,
                       build_dataset, read_classes_json)
from .io import DataError, read_image, read_label
from .transforms import IMAGENET_MEAN, IMAGENET_STD, TestTransform, TrainTransform, seed_worker

__all__ = [
    "DATASETS", "DataError", "DatasetSpec", "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "LabelMap",
    "Layout", "SegmentationDataset", "TestTransform", "TrainTransform", "build_dataset", "read_classes_json",
    "read_image", "read_label", "seed_worker",
]
