"""Parity with MMSegmentation 1.2.2's SegNeXt from a fresh clone: no download, no shared folder.

tests/fixtures/mmseg_reference.safetensors holds what MMSegmentation's SegNeXt (a port of the authors'
code, independent of this one) computes from weights, images and NMF bases made from seeds
(`synthetic_weights`); tests/fixtures/make_mmseg_reference.py wrote it. Here the same seeds build
segnext's model and inputs, their fingerprints are checked against the ones recorded, and every
stage is compared: SegNeXt-T (150 classes, a batch of two) and SegNeXt-B (19 classes, the wider
decoder with rank-64 NMF), eval mode, and one training step of SegNeXt-T (official loss, gradients,
BatchNorm statistics). The outputs recorded from the authors' own code (the shared fixtures, where
present) remain the stronger check: tests/models/test_segnext_parity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import segnext
from recorded_releases import SAME_RELEASE, recorded_random_streams
from synthetic_weights import fingerprint, synthetic_images, synthetic_labels, synthetic_state_dict

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "mmseg_reference.safetensors"
ATOL, RTOL = 2e-4, 1e-4  # float32 rounding of two implementations of the same function


@pytest.fixture(scope="module")
def reference():
    from safetensors import safe_open

    with safe_open(str(REFERENCE), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        metadata = handle.metadata()
    return tensors, metadata


def build(reference, name):
    tensors, metadata = reference
    case = json.loads(metadata[name])
    model = segnext.create_model(f"segnext_{case['variant']}", case["num_classes"], nmf_seed=case["nmf_seed"],
                                 drop_path_rate=0.0)
    weights = synthetic_state_dict(model, case["weight_seed"])
    images = synthetic_images(case["batch"], case["height"], case["width"], case["image_seed"])
    bases = model.nmf.seeded_bases(model.config.ham_channels)
    made_here = [("weights", weights), ("images", {"images": images})]
    if SAME_RELEASE:  # elsewhere F.normalize may round a basis's last bit differently (test_nmf.py)
        made_here.append(("bases", {"bases": bases}))
    for what, made in made_here:
        assert fingerprint(made) == case[f"{what}_sha256"], (
            f"the {what} made from seeds differ from those the reference was computed from (this PyTorch's "
            f"random generator gives other numbers?); rebuild it with tests/fixtures/make_mmseg_reference.py")
    model.load_state_dict(weights, strict=True)
    return model, images, bases, case, {key.split(".", 1)[1]: value for key, value in tensors.items()
                                        if key.startswith(name + ".")}


@pytest.mark.parametrize("name", ["t", "b"])
def test_eval_outputs_equal_mmsegmentation(reference, name):
    model, images, _, case, expected = build(reference, name)
    model.eval()
    with torch.no_grad():
        features = model.backbone(images)
        for index, feature in enumerate(features):
            torch.testing.assert_close(feature, expected[f"stage{index + 1}"], atol=ATOL, rtol=RTOL)
        logits = model.forward_logits(images)
        final = model(images)
    torch.testing.assert_close(logits, expected["decode_logits"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(final[:, :, 3::8, 5::8], expected["final_lattice"], atol=ATOL, rtol=RTOL)
    corners = torch.cat([final[:, :, :4, :4], final[:, :, -4:, -4:]], dim=3)
    torch.testing.assert_close(corners, expected["final_corners"], atol=ATOL, rtol=RTOL)
    assert expected["decode_logits"].abs().max() > 1 and expected["decode_logits"].std() > 0.1  # not a trivial map


@pytest.mark.parametrize("name", ["t", "b"])
def test_the_optimized_model_and_onnx_equal_mmsegmentation(reference, name):
    model, images, _, _, expected = build(reference, name)
    with torch.no_grad():
        final = segnext.optimize_for_inference(model.eval())(images)
    torch.testing.assert_close(final[:, :, 3::8, 5::8], expected["final_lattice"], atol=ATOL, rtol=RTOL)


@recorded_random_streams
def test_training_step_equals_mmsegmentation(reference):
    model, images, bases, case, expected = build(reference, "t")
    labels = synthetic_labels(case["batch"], case["height"], case["width"], case["num_classes"],
                              case["image_seed"] + 100)
    assert fingerprint({"labels": labels}) == case["labels_sha256"]
    model.train()
    torch.manual_seed(11)  # the decoder's Dropout2d draws from the global RNG, in the same order as theirs
    loss = segnext.segmentation_loss(model.forward_logits(images, nmf_bases=bases), labels)
    loss.backward()
    torch.testing.assert_close(loss.detach().reshape(1), expected["train_loss"], atol=1e-5, rtol=1e-5)
    parameters = dict(model.named_parameters())
    norms = torch.stack([parameters[name].grad.norm() for name in case["names"]["parameters"]])
    torch.testing.assert_close(norms, expected["train_grad_norms"], atol=1e-6, rtol=2e-4)
    for name in case["gradients"]:
        torch.testing.assert_close(parameters[name].grad, expected[f"train_grad.{name}"], atol=1e-6, rtol=2e-4)
    buffers = dict(model.named_buffers())
    running = case["names"]["running"]
    torch.testing.assert_close(torch.stack([buffers[name].norm() for name in running]),
                               expected["train_running_mean_norms"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.stack([buffers[name.replace("running_mean", "running_var")].norm()
                                            for name in running]),
                               expected["train_running_var_norms"], atol=1e-6, rtol=1e-5)


def test_the_comparison_can_fail(reference):
    """A model that differs in one place (the order of two strip convolutions) does not pass."""
    model, images, _, _, expected = build(reference, "t")
    unit = model.backbone.block1[0].attn.spatial_gating_unit
    with torch.no_grad():
        horizontal, vertical = unit.conv0_1.weight.clone(), unit.conv0_2.weight.clone()
        unit.conv0_1.weight.copy_(vertical.transpose(2, 3))
        unit.conv0_2.weight.copy_(horizontal.transpose(2, 3))
        stage1 = model.eval().backbone(images)[0]
    assert not torch.allclose(stage1, expected["stage1"], atol=ATOL, rtol=RTOL)
