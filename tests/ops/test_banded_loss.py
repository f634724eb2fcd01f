"""segmentation_loss: its reference path (F.interpolate + F.cross_entropy, as the official head)
and its banded path (resize + cross-entropy and the gradient a band of label rows at a time)
against a plain per-pixel computation written here."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from segnext import segmentation_loss
from segnext.ops import banded_loss as loss_module

banded_loss = functools.partial(segmentation_loss, banded=True)


def reference_loss(logits, labels, ignore_index=255, reduction="all_pixels", class_weight=None):
    resized = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    weight = None if class_weight is None else torch.tensor(class_weight)
    per_pixel = F.cross_entropy(resized, labels.long(), weight=weight, ignore_index=ignore_index, reduction="none")
    denominator = labels.numel() if reduction == "all_pixels" else (labels != ignore_index).sum()
    return per_pixel.sum() / denominator


def loss_and_grad(function, logits, labels, **kwargs):
    logits = logits.detach().clone().requires_grad_()
    loss = function(logits, labels, **kwargs)
    loss.backward()
    return loss.detach(), logits.grad


CASES = [  # (B, K, h, w) logits -> (H, W) labels
    ((2, 150, 16, 16), (128, 128)),   # the training case: 8x in both directions
    ((1, 7, 9, 13), (75, 101)),       # non-integer factors
    ((2, 19, 13, 11), (13, 11)),      # same size
    ((3, 4, 1, 1), (9, 5)),           # one logit pixel
    ((1, 3, 6, 5), (1, 1)),           # downsizing to one label pixel
]


@pytest.mark.parametrize("logit_shape,label_size", CASES, ids=[str(c[0]) for c in CASES])
@pytest.mark.parametrize("reduction", ["all_pixels", "valid_pixels"])
@pytest.mark.parametrize("loss", [segmentation_loss, banded_loss], ids=["reference", "banded"])
def test_loss_and_gradient_match_resize_then_cross_entropy(logit_shape, label_size, reduction, loss):
    generator = torch.Generator().manual_seed(sum(logit_shape) + sum(label_size))
    logits = torch.randn(*logit_shape, generator=generator) * 4
    labels = torch.randint(0, logit_shape[1], (logit_shape[0], *label_size), generator=generator)
    labels[:, : label_size[0] // 3] = 255
    want_loss, want_grad = loss_and_grad(reference_loss, logits, labels, reduction=reduction)
    got_loss, got_grad = loss_and_grad(loss, logits, labels, reduction=reduction)
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=1e-6)
    assert (got_grad - want_grad).abs().max() <= 1e-5 * want_grad.abs().max()


@pytest.mark.parametrize("loss", [segmentation_loss, banded_loss], ids=["reference", "banded"])
def test_class_weights_and_channels_last_logits(loss):
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 8, 8, generator=generator).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 3, (2, 64, 64), generator=generator)
    labels[0, :5] = 255
    weights = [1.0, 2.0, 0.5]
    want_loss, want_grad = loss_and_grad(reference_loss, logits, labels, class_weight=weights)
    got_loss, got_grad = loss_and_grad(loss, logits, labels, class_weight=weights)
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=1e-6)
    assert (got_grad - want_grad).abs().max() <= 1e-5 * want_grad.abs().max()


def test_band_size_does_not_change_the_result(monkeypatch):
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 11, 12, 10, generator=generator)
    labels = torch.randint(0, 11, (2, 96, 80), generator=generator)
    whole_loss, whole_grad = loss_and_grad(banded_loss, logits, labels)
    monkeypatch.setattr(loss_module, "BAND_BYTES", 1)  # one label row per band
    row_loss, row_grad = loss_and_grad(banded_loss, logits, labels)
    assert row_loss.item() == pytest.approx(whole_loss.item(), rel=1e-6)
    assert (row_grad - whole_grad).abs().max() <= 1e-6 * whole_grad.abs().max()


def test_without_gradient_gives_the_same_loss():
    logits = torch.randn(1, 5, 4, 4)
    labels = torch.randint(0, 5, (1, 32, 32))
    with torch.no_grad():
        expected = reference_loss(logits, labels).item()
        assert banded_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_get_a_scaled_gradient_of_their_dtype(dtype):
    """As under autocast with a GradScaler: the loss is float32 and the gradient is scaled before
    it is cast to the logits' dtype (small gradients survive float16)."""
    generator = torch.Generator().manual_seed(6)
    logits = (torch.randn(2, 150, 8, 8, generator=generator) * 2).to(dtype).requires_grad_()
    labels = torch.randint(0, 150, (2, 64, 64), generator=generator)
    loss = banded_loss(logits, labels)
    assert loss.dtype == torch.float32
    (loss * 65536.0).backward()
    assert logits.grad.dtype == dtype
    _, want = loss_and_grad(reference_loss, logits.detach().float(), labels)
    assert torch.allclose(logits.grad.float(), want * 65536.0, rtol=2e-2, atol=1e-3 * float(want.abs().max()) * 65536)


def test_bad_label_values_and_arguments_are_named():
    logits = torch.randn(1, 4, 2, 2)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, 3, 3] = 7
    with pytest.raises(ValueError, match="label value 7 .*\\[0, 4\\)"):
        segmentation_loss(logits, labels)
    with pytest.raises(ValueError, match="class_weight has 2 values for 4 classes"):
        segmentation_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long), class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="all_pixels"):
        segmentation_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long), reduction="mean")


def test_ohem_keeps_the_hard_pixels_as_mmsegmentations_sampler_and_averages_over_them():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    labels = torch.randint(0, 4, (2, 20, 24))
    labels[0, :3] = 255
    resized = F.interpolate(logits, size=(20, 24), mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(resized, labels, ignore_index=255, reduction="none")
    probability = resized.softmax(1).gather(1, labels.clamp(0, 3).unsqueeze(1)).squeeze(1)
    valid = labels != 255

    # A threshold above every probability keeps every labelled pixel: the mean over valid pixels.
    everything = segmentation_loss(logits, labels, ohem_threshold=1.0, ohem_min_kept=0)
    torch.testing.assert_close(everything, per_pixel[valid].mean())

    # A threshold below every probability keeps the min_kept x batch hardest pixels (and no more).
    kept_count = 2 * 7
    hardest = probability[valid].sort().values[:kept_count]
    expected = per_pixel[valid][probability[valid] <= hardest[-1]].mean()
    few = segmentation_loss(logits, labels, ohem_threshold=1e-9, ohem_min_kept=7)
    torch.testing.assert_close(few, expected)

    # Class weights: the weighted mean over the kept pixels; the gradient reaches the logits.
    weights = [1.0, 2.0, 0.5, 3.0]
    logits.requires_grad_()
    weighted = segmentation_loss(logits, labels, class_weight=weights, ohem_threshold=0.7, ohem_min_kept=10)
    kept = valid & (probability < max(0.7, float(probability[valid].sort().values[20])))
    pixel_weight = torch.tensor(weights)[labels.clamp(0, 3)]
    weighted_ce = F.cross_entropy(resized, labels, weight=torch.tensor(weights), ignore_index=255, reduction="none")
    torch.testing.assert_close(weighted, (weighted_ce * kept).sum() / (pixel_weight * kept).sum())
    weighted.backward()
    assert logits.grad.abs().sum() > 0


def one_hot_dice(scores, labels, ignore_index=255):
    """The soft Dice loss written plainly: one-hot labels, sums over the batch's labelled pixels."""
    valid = (labels != ignore_index)[:, None].float()
    probabilities = scores.softmax(1) * valid
    one_hot = F.one_hot(labels.clamp(0, scores.shape[1] - 1), scores.shape[1]).permute(0, 3, 1, 2).float() * valid
    intersection = (probabilities * one_hot).sum((0, 2, 3))
    labelled = one_hot.sum((0, 2, 3))
    dice = 2 * intersection / (probabilities.sum((0, 2, 3)) + labelled + 1e-6)
    return 1 - dice[labelled > 0].mean()


def test_dice_loss_and_its_gradient_match_the_one_hot_sums_over_the_classes_present():
    from segnext.models import dice_loss

    torch.manual_seed(0)
    scores = torch.randn(2, 5, 12, 10)
    labels = torch.randint(0, 4, (2, 12, 10))  # class 4 absent: left out of the mean
    labels[1, :4] = 255
    ours, our_grad = loss_and_grad(dice_loss, scores, labels)
    reference, reference_grad = loss_and_grad(one_hot_dice, scores, labels)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(our_grad, reference_grad)
    sure = F.one_hot(labels.clamp(0, 4), 5).permute(0, 3, 1, 2).float() * 40  # certain and right
    assert dice_loss(sure, labels).item() < 1e-5
    empty = loss_and_grad(dice_loss, scores, torch.full((2, 12, 10), 255))
    assert empty[0].item() == 0.0 and empty[1].abs().sum() == 0  # nothing labelled: no loss, no gradient


@pytest.mark.parametrize("banded", [False, True])
def test_the_dice_weight_adds_the_dice_of_the_resized_scores_whatever_the_loss_path(banded):
    from segnext.models import dice_loss

    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5, 6)
    labels = torch.randint(0, 4, (2, 40, 48))
    labels[0, :5] = 255
    resized = F.interpolate(logits, size=(40, 48), mode="bilinear", align_corners=False)
    combined, grad = loss_and_grad(segmentation_loss, logits, labels, dice_weight=0.5, banded=banded)
    expected, expected_grad = loss_and_grad(
        lambda x, y: reference_loss(x, y) + 0.5 * dice_loss(
            F.interpolate(x, size=(40, 48), mode="bilinear", align_corners=False), y), logits, labels)
    torch.testing.assert_close(combined, expected)
    torch.testing.assert_close(grad, expected_grad)
    assert combined > reference_loss(logits, labels) and dice_loss(resized, labels) > 0
