"""optimize_for_inference: same outputs as the eager model (fixtures and odd sizes), and the
label-only resize gives exactly the labels of resize-then-argmax."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segnext
from segnext import memory, optimize as optimize_module
from segnext.inference import TestConfig as InferenceConfig, segment, segment_logits
from segnext.label_upsample import resize_chain, upsampled_argmax

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def eager(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def optimized(eager):
    return segnext.optimize_for_inference(eager)


@pytest.mark.parametrize("prefix", ["", "odd_"])
def test_fixture_parity_with_official_bases(eager, optimized, io_data, prefix):
    images, bases = io_data[prefix + "input"], io_data[prefix + "bases"]
    with torch.no_grad():
        decode = optimized.forward_logits(images, bases)
        final = optimized(images, bases)
        eager_final = eager(images, bases)
    assert (decode - io_data[prefix + "decode_logits"]).abs().max() <= TOLERANCE
    assert (final - eager_final).abs().max() <= TOLERANCE
    agreement = (final.argmax(1) == io_data[prefix + "final_argmax"].long()).float().mean()
    assert agreement >= 0.999


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 33, 47), (1, 3, 64, 96), (1, 3, 97, 31)])
def test_parity_on_odd_sizes(eager, optimized, shape):
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        expected, got = eager(images), optimized(images)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= TOLERANCE


def test_plain_operator_path_matches(eager, optimized, monkeypatch):
    """The path used on GPUs, in ONNX export and under torch.compile (no oneDNN fusions)."""
    images = torch.randn(1, 3, 72, 88)
    with torch.no_grad():
        fused = optimized(images)
        monkeypatch.setattr(optimize_module, "MKLDNN_FUSION", False)
        plain = optimized(images)
    assert (fused - plain).abs().max() <= TOLERANCE


def test_random_bases_follow_the_global_rng_like_the_eager_model(checkpoint_path):
    model = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path, nmf_seed=None).eval()
    optimized = segnext.optimize_for_inference(model)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(5)
        expected = model(images)
        torch.manual_seed(5)
        got = optimized(images)
    assert (got - expected).abs().max() <= TOLERANCE


def test_original_model_is_untouched_and_optimized_is_eval_only(eager, optimized):
    assert isinstance(eager, segnext.SegNeXt)
    assert not any(p.requires_grad for p in optimized.parameters())
    assert optimized.num_classes == 150 and optimized.config is eager.config
    with pytest.raises(RuntimeError, match="inference only"):
        optimized.train()


def _smooth_logits(num_classes, height, width, rng):
    coarse = torch.randn(num_classes, max(1, height // 4) + 1, max(1, width // 4) + 1, generator=rng) * 3
    return F.interpolate(coarse[None], size=(height, width), mode="bilinear", align_corners=False)[0]


def _reference_labels(logits, sizes):
    """Resize-then-argmax with F.interpolate itself (independent of segnext's resize helpers)."""
    scores = logits[None].contiguous()
    for size in sizes:
        scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    return scores[0].argmax(0)


def test_label_only_resize_is_identical_to_resize_then_argmax():
    rng = torch.Generator().manual_seed(0)
    picker = random.Random(0)
    cases = [((150, 64, 64), [(512, 512)]), ((150, 10, 13), [(75, 101)]), ((19, 32, 43), [(256, 341), (600, 800)]),
             ((150, 16, 22), [(128, 171), (90, 120)]), ((5, 1, 1), [(8, 8), (3, 3)]), ((3, 2, 2), [(1, 1)])]
    cases += [((picker.choice([2, 19, 150]), picker.randint(1, 30), picker.randint(1, 30)),
               [(picker.randint(1, 300), picker.randint(1, 300)) for _ in range(picker.randint(1, 2))])
              for _ in range(12)]
    for (num_classes, height, width), sizes in cases:
        logits = _smooth_logits(num_classes, height, width, rng)
        if picker.random() < 0.3:
            logits[:, : height // 2] = logits[:, : height // 2].round()  # exact ties
        expected = _reference_labels(logits, sizes)
        got = upsampled_argmax(logits, sizes, memory_limit=picker.choice([1 << 16, 1 << 28]))
        assert torch.equal(got, expected), (num_classes, height, width, sizes)
        assert torch.equal(resize_chain(logits[None], sizes)[0].argmax(0), expected)


@pytest.mark.parametrize("num_classes,size", [(150, 512), (19, 97)])
def test_label_only_resize_of_white_noise_logits(num_classes, size):
    """Class boundaries at almost every pixel (untrained weights): the mostly-uncertain branch."""
    logits = torch.randn(num_classes, size // 8, size // 8 + 3, generator=torch.Generator().manual_seed(size))
    sizes = [(size, size + 24)]
    assert torch.equal(upsampled_argmax(logits, sizes), _reference_labels(logits, sizes))


def test_label_only_resize_handles_non_finite_logits():
    logits = torch.randn(4, 6, 7)
    logits[1, 2, 3] = float("nan")
    assert torch.equal(upsampled_argmax(logits, [(30, 31)]), _reference_labels(logits, [(30, 31)]))


@pytest.mark.parametrize("config", [
    InferenceConfig(img_scale=(160, 96), size_divisor=32),
    InferenceConfig(img_scale=None),
    InferenceConfig(img_scale=(200, 120), mode="slide", crop_size=(64, 64), stride=(48, 48)),
], ids=["whole-divisor", "whole-native", "slide"])
def test_segment_labels_equal_argmax_of_segment_logits(eager, optimized, config):
    rng = np.random.default_rng(1)
    image = np.kron(rng.integers(0, 255, (9, 13, 3)), np.ones((9, 9, 1))).astype(np.uint8)[:77, :109]
    for model in (eager, optimized):
        labels = segment(model, image, config)
        assert labels.shape == image.shape[:2] and labels.dtype == torch.int64
        assert torch.equal(labels, segment_logits(model, image, config).argmax(0))


@pytest.mark.parametrize("band_bytes", [1, 200_000, 1 << 30], ids=["one-row", "few-rows", "unbanded"])
def test_banded_mlp_is_bit_identical(optimized, monkeypatch, band_bytes):
    """FusedBlock.mlp in bands of rows (with a one-row halo) computes exactly the unbanded values."""
    images = torch.randn(1, 3, 200, 136, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(memory, "_reuse_done", False)  # bands are used with glibc's default malloc
    with torch.no_grad():
        monkeypatch.setattr(optimize_module, "MLP_BAND_BYTES", 1 << 30)
        unbanded = optimized.forward_logits(images)
        monkeypatch.setattr(optimize_module, "MLP_BAND_BYTES", band_bytes)
        banded = optimized.forward_logits(images)
    assert torch.equal(banded, unbanded)
