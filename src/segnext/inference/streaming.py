"""Many image files through a `Segmenter`, with reading overlapped with the model.

`predict_files` reads and resizes the images in DataLoader worker processes (Pillow, NumPy and
OpenCV; no model there), while the main process runs the model on groups of up to `batch_size`
images of one resized size (`segnext.inference.batching`). Results come out as they are computed:
not in input order when sizes vary. A file that cannot be read, or an image the model fails on,
comes out as an error that names it; the other images are still predicted.

Workers send the resized uint8 images through a pipe, not float tensors through shared memory:
four times less to copy, and no dependence on the size of /dev/shm (small in containers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .batching import as_is, batches_by_size
from .preprocess import prepare
from .segment import ClassProbabilities
from .segmenter import Segmenter
from .settings import TestConfig


@dataclass
class FilePrediction:
    """The outcome for one file: `labels` (and `probabilities`, `confidence`, `image` when asked
    for), or `error`."""

    index: int  # position in the list of paths
    path: Path
    labels: Optional[np.ndarray] = None
    probabilities: Union[np.ndarray, ClassProbabilities, None] = None  # (see probabilities_in_bands)
    confidence: Optional[np.ndarray] = None  # the probability of each pixel's label, float32 (H, W)
    image: Optional[np.ndarray] = None  # uint8 RGB, with keep_images
    no_data: Optional[np.ndarray] = None  # where the image holds no data, left unlabelled (Segmenter.leave_no_data)
    error: Optional[str] = None


@dataclass
class _ReadError:
    message: str


class _PreparedFiles(Dataset):
    """Image files read and resized for the test (in a worker process when there are workers)."""

    def __init__(self, paths: Sequence[Path], config: TestConfig, keep_images: bool, no_data: bool = False):
        self.paths = list(paths)
        self.config = config
        self.keep_images = keep_images
        self.no_data = no_data

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, prepare(self.paths[index], self.config, keep_image=self.keep_images, no_data=self.no_data)
        except (OSError, ValueError) as error:  # named here: a worker's exception would end the loop
            return index, _ReadError(_one_line(error, self.paths[index]))


def _one_line(error: BaseException, path: Path) -> str:
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    return message if str(path) in message else f"{path}: {message}"


def predict_files(segmenter: Segmenter, paths: Sequence[Union[str, Path]], *, batch_size: int = 1, workers: int = 0,
                  with_probabilities: bool = False, with_confidence: bool = False,
                  probabilities_in_bands: bool = False, keep_images: bool = False) -> Iterator[FilePrediction]:
    """Predict image files, yielding a `FilePrediction` for each as it is done.

    batch_size: images of one resized size per forward pass (each gets its single-image result).
    workers: DataLoader worker processes that read and resize images (0: in this process).
    with_probabilities: also the class probabilities, as `Segmenter.predict_with_proba`.
    probabilities_in_bands: the probabilities as a `ClassProbabilities` to compute one band of rows
        at a time (`.save(path)`), not an array of all of them (`Segmenter.predict_group`).
    with_confidence: also the confidence of each pixel, as `Segmenter.predict_with_confidence`.
    keep_images: also the RGB image (for overlays).

    A file that cannot be read comes out with the next group predicted (or at the end).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    paths = [Path(path) for path in paths]
    outputs = dict(with_probabilities=with_probabilities, with_confidence=with_confidence,
                   probabilities_in_bands=probabilities_in_bands)
    loader = DataLoader(_PreparedFiles(paths, segmenter.test_config, keep_images, segmenter.leave_no_data),
                        batch_size=None, shuffle=False,
                        num_workers=workers, collate_fn=as_is,
                        generator=torch.Generator())  # its seed draw must not advance the global RNG
    unreadable: List[FilePrediction] = []

    def readable():
        for index, item in loader:
            if isinstance(item, _ReadError):
                unreadable.append(FilePrediction(index, paths[index], error=item.message))
            else:
                yield index, item

    for batch in batches_by_size(readable(), batch_size):
        yield from _drain(unreadable)
        yield from _predict_batch(segmenter, paths, batch, outputs)
    yield from _drain(unreadable)


def _drain(items: list) -> Iterator:
    while items:
        yield items.pop(0)


def _predict_batch(segmenter: Segmenter, paths: List[Path], batch: List[tuple],
                   outputs: Dict[str, bool]) -> Iterator[FilePrediction]:
    """Predict one group of (index, PreparedImage); `outputs`: `predict_group`'s options."""
    try:
        predictions = segmenter.predict_group([image for _, image in batch], **outputs)
    except (RuntimeError, ValueError) as error:
        if len(batch) > 1:  # e.g. out of GPU memory: each image alone, so that only one at fault is named
            for one in batch:
                yield from _predict_batch(segmenter, paths, [one], outputs)
            return
        index, _ = batch[0]
        yield FilePrediction(index, paths[index], error=_one_line(error, paths[index]))
        return
    for (index, image), prediction in zip(batch, predictions):
        if not (outputs["with_probabilities"] or outputs["with_confidence"]):
            prediction = (prediction,)
        labels, *scores = prediction
        probabilities = scores.pop(0) if outputs["with_probabilities"] else None
        confidence = scores.pop(0) if outputs["with_confidence"] else None
        yield FilePrediction(index, paths[index], labels=labels, probabilities=probabilities, confidence=confidence,
                             image=image.rgb, no_data=image.no_data)
