"""Batched prediction: every image of a batch gets exactly its single-image result, in every test
mode, and images are grouped by their resized size (never padded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segnext
from segnext.inference import (
    PreparedImage,
    Segmenter,
    TestConfig,
    override_test_config,
    prepare,
    segment,
    segment_group,
    segment_group_scores,
    segment_logits,
)
from segnext.inference.batching import batches_by_size

BASE = TestConfig(img_scale=(64, 48), size_divisor=16)  # small and fast
SLIDE = override_test_config(BASE, mode="slide", crop_size=(48, 48), stride=(48, 16))  # two overlapping windows
CONFIGS = {
    "whole": BASE,
    "slide": SLIDE,
    "multi-scale+flip": override_test_config(BASE, scales=(0.5, 1.0), flip=True),
    "slide+flip": override_test_config(SLIDE, flip=True),
}


def _scene(height, width, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


# Two different original sizes that the test resize (to 64 x 48, up to a multiple of 16) maps to
# one input size, and one that it does not.
SAME_INPUT = [_scene(40, 60, 1), _scene(38, 58, 2)]
OTHER_INPUT = _scene(60, 40, 4)


@pytest.fixture(scope="module")
def eager(checkpoint_path):
    return segnext.create_model(checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def optimized(eager):
    return segnext.optimize_for_inference(eager)


def test_prepared_images_group_by_their_input_size():
    keys = [prepare(image, BASE).group_key for image in SAME_INPUT]
    assert keys == [((48, 64),)] * 2 and prepare(OTHER_INPUT, BASE).group_key == ((64, 48),)
    multi = prepare(SAME_INPUT[0], CONFIGS["multi-scale+flip"])
    assert len(multi.views) == 2 and multi.size == (40, 60) and multi.rgb is None
    assert prepare(SAME_INPUT[0], BASE, keep_image=True).rgb.shape == (40, 60, 3)


@pytest.mark.parametrize("mode,memory_efficient", [
    ("whole", True), ("whole", False), ("multi-scale+flip", True), ("multi-scale+flip", False), ("slide", True),
    ("slide+flip", False),  # with flip, slide takes the same path either way
])
def test_every_image_of_a_batch_gets_its_single_image_result(optimized, mode, memory_efficient):
    """Bit for bit with the optimized model on the CPU (it runs a batch image by image)."""
    config = CONFIGS[mode]
    group = [prepare(image, config) for image in SAME_INPUT]
    labels = segment_group(optimized, group, config, "cpu", memory_efficient=memory_efficient)
    scores = segment_group_scores(optimized, group, config, "cpu", memory_efficient=memory_efficient)
    for image, got_labels, got_scores in zip(SAME_INPUT, labels, scores):
        assert got_labels.shape == image.shape[:2]
        assert torch.equal(got_labels, segment(optimized, image, config, memory_efficient=memory_efficient))
        assert torch.equal(got_scores, segment_logits(optimized, image, config, memory_efficient=memory_efficient))


@pytest.mark.parametrize("mode", ["whole", "multi-scale+flip"])
def test_the_plain_model_agrees_to_rounding(eager, mode):
    """A batched convolution may sum in another order than a single image's (as cuDNN may on a
    GPU): scores agree to float rounding, labels except at exact ties."""
    config = CONFIGS[mode]
    group = [prepare(image, config) for image in SAME_INPUT]
    for image, labels, scores in zip(SAME_INPUT, segment_group(eager, group, config, "cpu", memory_efficient=True),
                                     segment_group_scores(eager, group, config, "cpu")):
        assert torch.allclose(scores, segment_logits(eager, image, config), atol=1e-4)
        assert (labels == segment(eager, image, config, memory_efficient=True)).float().mean() >= 0.999


def test_a_group_must_share_one_input_size(optimized):
    with pytest.raises(ValueError, match="one resized size"):
        segment_group(optimized, [prepare(SAME_INPUT[0], BASE), prepare(OTHER_INPUT, BASE)], BASE, "cpu")


def _fake(key: int) -> PreparedImage:
    return PreparedImage(size=(1, 1), views=(np.zeros((key, 1, 3), np.uint8),))


def _tags(batches):
    return [[tag for tag, _ in batch] for batch in batches]


def test_batches_fill_by_size_and_hold_a_bounded_number_of_images():
    sizes = [1, 2, 1, 2, 1, 3, 1]
    stream = [(index, _fake(size)) for index, size in enumerate(sizes)]
    assert _tags(batches_by_size(stream, 2)) == [[0, 2], [1, 3], [4, 6], [5]]
    assert _tags(batches_by_size(stream, 1)) == [[i] for i in range(7)]
    # five images waiting (more than max_waiting) when image 4 arrives: the fullest group, the two
    # of size 1, goes out; the rest at the end in order of arrival
    many_sizes = [(index, _fake(size)) for index, size in enumerate([1, 2, 3, 1, 4, 5])]
    assert _tags(batches_by_size(many_sizes, 4, max_waiting=4)) == [[0, 3], [1], [2], [4], [5]]
    with pytest.raises(ValueError, match="at least 1"):
        list(batches_by_size(stream, 0))


def test_segmenter_predicts_lists_in_order(optimized):
    segmenter = Segmenter(optimized, BASE)
    images = [SAME_INPUT[0], OTHER_INPUT, SAME_INPUT[1], _scene(39, 59, 3)]
    alone = [segmenter.predict(image) for image in images]
    together = segmenter.predict(images, batch_size=3)
    assert isinstance(together, list) and len(together) == 4
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(alone, together))
    pairs = segmenter.predict_with_proba(tuple(images), batch_size=2)
    for image, (labels, probabilities) in zip(images, pairs):
        single_labels, single_probabilities = segmenter.predict_with_proba(image)
        assert np.array_equal(labels, single_labels) and np.array_equal(probabilities, single_probabilities)
    assert all(np.array_equal(a, b) for a, b in zip(segmenter.predict_proba(images), (p for _, p in pairs)))
    assert segmenter.predict([]) == []
