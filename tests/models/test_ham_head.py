"""LightHamHead against the official head intermediates of the odd-size case (fixtures/README.md §3).

Each part is checked twice: fed with the official input of that part (isolates the part), and
chained from our own encoder output (what the model really computes).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import segnext
from segnext.models import ham_head

FEATURE_TOL = dict(atol=2e-4, rtol=0.0)  # stage-feature tolerance of the fixture README
LOGITS_TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def model(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path, nmf_seed=None).eval()


@pytest.fixture(scope="module")
def head(model):
    return model.decode_head


def _head_steps(head, stage_outputs, bases):
    """The head's documented sequence, part by part: name -> tensor (names as in the fixture)."""
    out = {}
    with torch.no_grad():
        out["head_squeeze_out"] = head.squeeze(head.concat_stages(stage_outputs))
        out["nmf_in"] = F.relu(head.hamburger.ham_in(out["head_squeeze_out"]))
        out["nmf_out"] = head.hamburger.ham(out["nmf_in"], bases)
        out["ham_out_out"] = head.hamburger.ham_out(out["nmf_out"])
        out["hamburger_out"] = F.relu(out["head_squeeze_out"] + out["ham_out_out"])
        out["align_out"] = head.align(out["hamburger_out"])
        out["decode_logits"] = head.conv_seg(head.dropout(out["align_out"]))
    return out


def test_parts_from_official_inputs(head, io_data):
    p = "odd_"
    stages = [io_data[f"{p}backbone_out_{i}"] for i in (1, 2, 3)]
    with torch.no_grad():
        squeeze = head.squeeze(head.concat_stages(stages))
        nmf_in = F.relu(head.hamburger.ham_in(io_data[p + "head_squeeze_out"]))
        nmf_out = head.hamburger.ham(io_data[p + "nmf_in"], io_data[p + "bases"])
        ham_out = head.hamburger.ham_out(io_data[p + "nmf_out"])
        align = head.align(io_data[p + "hamburger_out"])
        logits = head.conv_seg(io_data[p + "align_out"])
    torch.testing.assert_close(squeeze, io_data[p + "head_squeeze_out"], **FEATURE_TOL)
    torch.testing.assert_close(nmf_in, io_data[p + "nmf_in"], **FEATURE_TOL)
    torch.testing.assert_close(nmf_out, io_data[p + "nmf_out"], **FEATURE_TOL)
    torch.testing.assert_close(ham_out, io_data[p + "ham_out_out"], **FEATURE_TOL)
    torch.testing.assert_close(F.relu(io_data[p + "head_squeeze_out"] + io_data[p + "ham_out_out"]),
                               io_data[p + "hamburger_out"], **FEATURE_TOL)
    torch.testing.assert_close(align, io_data[p + "align_out"], **FEATURE_TOL)
    torch.testing.assert_close(logits, io_data[p + "decode_logits"], **LOGITS_TOL)


def test_chained_from_our_encoder(model, head, io_data):
    p = "odd_"
    with torch.no_grad():
        features = model.backbone(io_data[p + "input"])
    steps = _head_steps(head, [features[i] for i in model.config.head_in_stages], io_data[p + "bases"])
    for name, value in steps.items():
        tol = LOGITS_TOL if name == "decode_logits" else FEATURE_TOL
        torch.testing.assert_close(value, io_data[p + name], **tol, msg=lambda m: f"{name}: {m}")
    # The head's own forward is the same sequence.
    with torch.no_grad():
        whole = head([features[i] for i in (1, 2, 3)], io_data[p + "bases"])
    torch.testing.assert_close(whole, steps["decode_logits"], atol=0, rtol=0)


def test_head_reads_stages_2_to_4(model):
    assert tuple(model.config.head_in_stages) == (1, 2, 3)
    assert model.decode_head.squeeze.conv.in_channels == 64 + 160 + 256


def test_concat_resizes_to_stage_2_with_align_corners_false(head, io_data):
    p = "odd_"
    stages = [io_data[f"{p}backbone_out_{i}"] for i in (1, 2, 3)]
    fused = head.concat_stages(stages)
    assert fused.shape == (1, 64 + 160 + 256, 10, 13)
    assert torch.equal(fused[:, :64], stages[0])
    expected = F.interpolate(stages[2], size=(10, 13), mode="bilinear", align_corners=False)
    assert torch.equal(fused[:, 224:], expected)
    wrong = F.interpolate(stages[2], size=(10, 13), mode="bilinear", align_corners=True)
    assert (fused[:, 224:] - wrong).abs().max() > 1e-2


def test_head_structure_matches_official_modules(head):
    """Biases only where no norm follows; GroupNorm(32) everywhere a norm is."""
    assert head.squeeze.conv.bias is None and head.squeeze.gn.num_groups == 32 and head.squeeze.relu
    assert head.hamburger.ham_in.conv.bias is not None and not hasattr(head.hamburger.ham_in, "gn")
    assert isinstance(head.hamburger.ham_in, ham_head.Conv1x1)  # no norm; the Hamburger applies the ReLU
    assert head.hamburger.ham_out.conv.bias is None and not head.hamburger.ham_out.relu
    assert head.align.conv.bias is None and head.align.relu
    assert head.conv_seg.bias is not None


def test_classifier_dropout_is_channelwise_before_conv_seg_in_training_only(model):
    """Dropout2d(p=0.1): whole channels of the align output zeroed, the rest scaled by 1/0.9."""
    head = model.decode_head
    assert isinstance(head.dropout, torch.nn.Dropout2d) and head.dropout.p == pytest.approx(0.1)
    seen = {}
    hooks = [head.align.register_forward_hook(lambda m, i, o: seen.__setitem__("align", o)),
             head.conv_seg.register_forward_pre_hook(lambda m, i: seen.__setitem__("seg_in", i[0]))]
    features = [torch.rand(2, 64, 6, 7), torch.rand(2, 160, 3, 4), torch.rand(2, 256, 2, 2)]
    try:
        with torch.no_grad():
            head.eval()
            head(features)
            assert torch.equal(seen["seg_in"], seen["align"])
            head.train()
            torch.manual_seed(0)
            head(features)
    finally:
        head.eval()
        for h in hooks:
            h.remove()
    align, seg_in = seen["align"], seen["seg_in"]
    dropped = seg_in.flatten(2).abs().amax(2) == 0  # (B, C): channel entirely zero
    active = align.flatten(2).abs().amax(2) > 0
    assert (dropped & active).any(), "p=0.1 over 512 channels must drop some"
    assert (dropped & active).float().mean() < 0.3
    kept = ~dropped
    torch.testing.assert_close(seg_in[kept], align[kept] / 0.9)
