"""The optimiser, schedule and loss against numbers recorded from the official code
(fixtures/README.md sections 4 and 5)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import segnext
from segnext import segmentation_loss
from segnext.compat import fused_adamw
from segnext.train.config import OptimizerSection, ScheduleSection
from segnext.train.optim import build_optimizer, lr_factor, parameter_groups, scheduled_lr, set_learning_rates


@pytest.fixture(scope="module")
def optim_fixture(fixtures_dir):
    path = fixtures_dir / "segnext_tiny_ade_optim.json"
    if not path.is_file():
        pytest.skip(f"optimizer fixture not found at {path}")
    return json.loads(path.read_text())


def test_param_groups_match_official_for_all_457_parameters(optim_fixture):
    model = segnext.create_model("segnext_t", num_classes=150)
    optimizer = build_optimizer(model, OptimizerSection())
    got = {}
    for group in optimizer.param_groups:
        for name in group["names"]:
            got[name] = (group["lr"], group["weight_decay"], group["matched_key"] or None)
    expected = optim_fixture["param_groups"]
    assert len(expected) == 457 and set(got) == set(expected)
    wrong = [(name, got[name], want) for name, want in expected.items()
             if got[name][0] != pytest.approx(want["lr"], rel=1e-12)
             or got[name][1] != pytest.approx(want["weight_decay"], rel=1e-12, abs=0)
             or got[name][2] != want["matched_custom_key"]]
    assert not wrong, wrong[:5]
    # The rules the README spells out, as a readable double check.
    lr_of = {n: v[0] for n, v in got.items()}
    wd_of = {n: v[1] for n, v in got.items()}
    assert lr_of["decode_head.squeeze.gn.weight"] == pytest.approx(6e-4)
    assert wd_of["decode_head.squeeze.gn.weight"] == 0.01
    assert wd_of["backbone.block1.0.norm1.weight"] == 0.0 and wd_of["backbone.norm4.bias"] == 0.0
    assert wd_of["backbone.patch_embed1.proj.1.weight"] == 0.01  # stem BN keeps decay
    assert wd_of["backbone.block2.1.layer_scale_1"] == 0.01
    assert optimizer.defaults["betas"] == (0.9, 0.999)


@pytest.mark.skipif(not fused_adamw("cpu"), reason=f"PyTorch {torch.__version__} has no fused AdamW for the CPU (2.4+)")
def test_the_fused_adamw_updates_as_the_reference_one():
    """build_optimizer takes PyTorch's fused AdamW where it exists (here, on the CPU): its steps equal
    the per-parameter AdamW's to float rounding, with the same groups."""
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", num_classes=19)
    reference_model = copy.deepcopy(model)
    fused = build_optimizer(model, OptimizerSection())
    reference = torch.optim.AdamW(parameter_groups(reference_model, OptimizerSection()), foreach=False)
    assert all(group["fused"] for group in fused.param_groups)
    assert not any(group["fused"] or group["foreach"] for group in reference.param_groups)
    for step in range(3):
        for one, other in zip(model.parameters(), reference_model.parameters()):
            one.grad = torch.randn_like(one) * 10.0 ** -step
            other.grad = one.grad.clone()
        fused.step(), reference.step()
    worst = max((a - b).abs().max().item() for a, b in zip(model.parameters(), reference_model.parameters()))
    assert worst < 1e-6


def test_poly_warmup_lr_factors_match_official(optim_fixture):
    schedule = ScheduleSection()
    max_iters = optim_fixture["max_iters"]
    for iteration, factor in optim_fixture["lr_factor_by_iter"].items():
        assert lr_factor(int(iteration), max_iters, schedule) == pytest.approx(factor, rel=1e-9, abs=1e-15), iteration


def test_set_learning_rates_applies_the_factor_to_every_group():
    model = segnext.create_model("segnext_t", num_classes=19)
    optimizer = build_optimizer(model, OptimizerSection())
    set_learning_rates(optimizer, 80000, 160000, ScheduleSection())
    lrs = sorted({round(g["lr"], 12) for g in optimizer.param_groups})
    assert lrs == [pytest.approx(3e-5), pytest.approx(3e-4)]
    # min_lr is an absolute floor per group, as mmcv's poly
    assert scheduled_lr(1.0, 160000, 160000, ScheduleSection(min_lr=1e-4)) == pytest.approx(1e-4)
    assert scheduled_lr(1.0, 5, 10, ScheduleSection(warmup_iters=0), progress=0.25) == pytest.approx(0.75)


def test_the_peak_of_the_schedule():
    from segnext.train.optim import peak_lr_factor

    assert peak_lr_factor(2000, ScheduleSection(warmup_iters=500)) == pytest.approx(0.75)
    assert peak_lr_factor(160000, ScheduleSection()) == pytest.approx(1 - 1500 / 160000, abs=1e-3)
    # a warm-up as long as the run: the multiplied warm-up and decay peak near max_iters / (4 warmup_iters)
    assert peak_lr_factor(50, ScheduleSection(warmup_iters=500)) == pytest.approx(0.025, abs=0.001)


@pytest.fixture(scope="module")
def deterministic_forward(train_data, checkpoint_path):
    """The README's det_* recipe: no drop path, no dropout, train mode, seed 9 before the forward."""
    model = segnext.create_model("segnext_t", num_classes=150, checkpoint=checkpoint_path,
                                 drop_path_rate=0.0, dropout_ratio=0.0)
    model.train()
    torch.manual_seed(train_data["det_seed"])
    logits = model.forward_logits(train_data["input"])
    return model, logits


def test_loss_is_normalised_over_all_pixels_like_official(train_data, deterministic_forward):
    model, logits = deterministic_forward
    labels = train_data["gt_semantic_seg"][:, 0]
    loss = segmentation_loss(logits, labels)
    assert loss.item() == pytest.approx(train_data["det_loss"], abs=1e-5)
    loss.backward()
    total = torch.sqrt(sum(p.grad.double().pow(2).sum() for p in model.parameters())).item()
    assert total == pytest.approx(train_data["det_total_grad_norm"], rel=2e-3)
    model.zero_grad()


def test_mean_over_valid_pixels_is_opt_in(train_data, deterministic_forward):
    _, logits = deterministic_forward
    labels = train_data["gt_semantic_seg"]  # (B, 1, H, W) is accepted too
    loss = segmentation_loss(logits.detach(), labels, reduction="valid_pixels")
    assert loss.item() == pytest.approx(train_data["det_loss_if_mean_over_valid"], abs=1e-5)
    with pytest.raises(ValueError, match="all_pixels"):
        segmentation_loss(logits.detach(), labels, reduction="mean")


def test_class_weights_weight_pixels_but_keep_the_all_pixel_denominator():
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.randint(0, 3, (1, 8, 8))
    labels[0, 0] = 255
    weights = [1.0, 2.0, 0.5]
    import torch.nn.functional as F

    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(up, labels, weight=torch.tensor(weights), ignore_index=255, reduction="none")
    assert segmentation_loss(logits, labels, class_weight=weights).item() == pytest.approx(per_pixel.sum().item() / 64)
