"""upsampled_argmax gives exactly the labels of resize-then-argmax (F.interpolate itself)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from segnext.ops.label_upsample import class_argmax, resize_chain, upsampled_argmax


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




@pytest.mark.parametrize("shape, dim", [((1, 11, 40, 70), 1), ((150, 30, 40), 0), ((3, 19, 5, 13), 1), ((7, 1), 0)])
def test_class_argmax_is_argmax_ties_and_nan_included(shape, dim):
    """The first of equal maxima (scores of few values tie everywhere), NaN as the maximum, as argmax."""
    generator = torch.Generator().manual_seed(0)
    for scores in (torch.randn(shape, generator=generator), torch.randint(0, 3, shape, generator=generator).float(),
                   torch.randint(0, 3, shape, generator=generator).half()):
        scores.view(-1)[::37] = float("nan") if scores.numel() > 40 else scores.view(-1)[::37]
        assert torch.equal(class_argmax(scores, dim), scores.argmax(dim))
