"""Temperature scaling (Guo, Pleiss, Sun, Weinberger, ICML 2017, "On Calibration of Modern Neural
Networks"): one number T divides the logits, so that the softmax says how often the model is right.
A segmentation network trained to the end is usually overconfident on images it has not seen (T > 1
softens it); the labels do not change (the argmax of z / T is the argmax of z).

T is fitted on labelled images the model did not train on: the negative log-likelihood of their
pixels' labels under softmax(z / T), over pixels drawn evenly from each image. The logits are the
model's at its test resize, one view (the first scale, no flip), at the label's size: the test
procedure's plain path. `SegNeXt.apply_temperature(T)` then divides the classifier by T, so that every
path (multi-scale averages, --confidence, ONNX, the server) gives the calibrated probabilities.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..inference.preprocess import prepare
from ..inference.segment import evaluation_mode, segment_group_scores
from ..inference.settings import TestConfig
from ..utils import progress_bar
from .metrics import ConfidenceCalibration

# Pixels drawn in all (spread evenly over the images): enough for one number, small enough that
# 150 classes' logits fit in memory (150 x 4 bytes x 500,000 = 300 MB).
FIT_PIXELS = 500_000


def single_view(config: TestConfig) -> TestConfig:
    """`config` with one view: its only scale (or 1.0 among several), no flip."""
    scales = tuple(config.scales or (1.0,))
    return dataclasses.replace(config, scales=scales if len(scales) == 1 else (1.0,), flip=False)


@torch.no_grad()
def pixel_logits(model, dataset, config: TestConfig, *, max_images: Optional[int] = None,
                 max_pixels: int = FIT_PIXELS, seed: int = 0, device=None,
                 progress: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, K) float32, labels (N,) int64) of up to `max_pixels` labelled pixels drawn evenly
    from the first `max_images` images of `dataset`, through `single_view(config)`."""
    view = single_view(config)
    total = len(dataset) if max_images is None else min(max_images, len(dataset))
    per_image = max(1, math.ceil(max_pixels / max(total, 1)))
    ignore_index = getattr(dataset, "ignore_index", 255)
    generator = np.random.default_rng(seed)
    logits, labels = [], []
    bar = progress_bar(total, desc="logits", unit="img", leave=False, enabled=progress)
    with evaluation_mode(model):
        for index in range(total):
            sample = dataset[index]
            label = torch.from_numpy(np.asarray(sample["label"]).astype(np.int64)).reshape(-1)
            scores = segment_group_scores(model, [prepare(sample["image"], view)], view, device)[0]
            valid = torch.nonzero(label != ignore_index).flatten()
            if len(valid) > per_image:
                valid = valid[torch.from_numpy(np.sort(generator.choice(len(valid), per_image, replace=False)))]
            logits.append(scores.reshape(scores.shape[0], -1)[:, valid.to(scores.device)].T.float().cpu())
            labels.append(label[valid])
            bar.update(1)
    bar.close()
    if not logits or not sum(len(chunk) for chunk in labels):
        raise ValueError("no labelled pixel to fit a temperature on: give images with labels")
    return torch.cat(logits), torch.cat(labels)


def _nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    scaled = logits / temperature
    return float((torch.logsumexp(scaled, 1) - scaled.gather(1, labels[:, None])[:, 0]).mean())


def _calibration(logits: torch.Tensor, labels: torch.Tensor, temperature: float, ignore_index: int) -> Dict[str, Any]:
    confidence, predicted = (logits / temperature).softmax(1).max(1)
    calibration = ConfidenceCalibration(ignore_index)
    calibration.update(predicted, confidence, labels)
    return calibration.compute()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255,
                    bounds: Tuple[float, float] = (0.05, 20.0), steps: int = 100) -> Dict[str, Any]:
    """The temperature that minimises the mean negative log-likelihood of `labels` under
    softmax(`logits` / T), found by golden-section search on log T within `bounds` (the likelihood is
    convex in 1 / T, so it has one minimum there), with the likelihood and the expected calibration
    error (ECE, `ConfidenceCalibration`) of those pixels before (T = 1) and after."""
    low, high = (math.log(bound) for bound in bounds)
    ratio = (math.sqrt(5) - 1) / 2
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    at_left, at_right = _nll(logits, labels, math.exp(left)), _nll(logits, labels, math.exp(right))
    for _ in range(steps):
        if at_left < at_right:
            high, right, at_right = right, left, at_left
            left = high - ratio * (high - low)
            at_left = _nll(logits, labels, math.exp(left))
        else:
            low, left, at_left = left, right, at_right
            right = low + ratio * (high - low)
            at_right = _nll(logits, labels, math.exp(right))
    temperature = math.exp((low + high) / 2)
    before, after = (_calibration(logits, labels, t, ignore_index) for t in (1.0, temperature))
    return {"temperature": temperature, "pixels": int(len(labels)),
            "nll_before": _nll(logits, labels, 1.0), "nll_after": _nll(logits, labels, temperature),
            "ECE_before": before["ECE"], "ECE_after": after["ECE"],
            "mean_confidence_before": before["mean_confidence"], "mean_confidence_after": after["mean_confidence"],
            "accuracy": before["accuracy"]}
