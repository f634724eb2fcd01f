"""Temperature scaling: the fitted temperature is the one the pixels' labels were drawn with, and the
logits gathered are the model's single-view logits at the labelled pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segnext
from segnext.evaluation import fit_temperature, pixel_logits
from segnext.evaluation.temperature import single_view
from segnext.inference import TestConfig, segment_logits


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    """Labels drawn from softmax(z / 2): the likelihood is highest at T = 2, the ECE falls there,
    and over-confident logits (T > 1) become less sure."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200_000, 6, generator=generator) * 4
    labels = torch.multinomial((logits / 2.0).softmax(1), 1, generator=generator)[:, 0]
    fitted = fit_temperature(logits, labels)
    assert fitted["temperature"] == pytest.approx(2.0, rel=0.02)
    assert fitted["nll_after"] < fitted["nll_before"] and fitted["ECE_after"] < 1.0 < fitted["ECE_before"]
    assert fitted["mean_confidence_after"] < fitted["mean_confidence_before"] and fitted["pixels"] == 200_000
    sure = fit_temperature(logits / 2.0, labels)  # the same, already calibrated: T = 1
    assert sure["temperature"] == pytest.approx(1.0, rel=0.02)


def test_single_view_keeps_one_scale_and_drops_the_flip():
    assert single_view(TestConfig(scales=(1.5,), flip=True)).scales == (1.5,)
    multi = single_view(TestConfig(scales=(0.5, 1.0, 1.5), flip=True))
    assert multi.scales == (1.0,) and multi.flip is False


class _Images:
    num_classes, ignore_index = 4, 255

    def __init__(self):
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
        self.labels = [rng.integers(0, 4, (40, 56)).astype(np.uint8) for _ in range(3)]
        self.labels[1][:20] = 255  # half of the second image unlabelled

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index]}


def test_pixel_logits_are_the_single_view_logits_at_labelled_pixels_drawn_evenly():
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 4).eval()
    dataset = _Images()
    config = TestConfig(img_scale=(64, 48), flip=True)
    logits, labels = pixel_logits(model, dataset, config, max_pixels=900)
    assert logits.shape == (900, 4) and labels.shape == (900,) and int(labels.max()) < 4  # 300 an image
    again = pixel_logits(model, dataset, config, max_pixels=900)
    assert torch.equal(again[0], logits) and torch.equal(again[1], labels)  # drawn from a seed
    everything = pixel_logits(model, dataset, config, max_pixels=10 ** 6)[0]
    assert everything.shape[0] == 2 * 40 * 56 + 20 * 56  # every labelled pixel, none of the ignored
    first = segment_logits(model, dataset.images[0], single_view(config))  # (K, H, W), no flip
    assert torch.allclose(everything[:40 * 56], first.reshape(4, -1).T, atol=1e-5)
