"""Mixed-precision inference: which precision a device gets, float32 logits out of an autocast
model, and the NMF kept in float32 inside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segnext
from segnext.data.scenes import make_scene_dataset
from segnext.inference import Segmenter, TestConfig, segment
from segnext.inference.precision import AutocastModel, autocast_dtype
from segnext.models import nmf as nmf_module


@pytest.fixture(scope="module")
def eager(checkpoint_path):
    return segnext.create_model(checkpoint=checkpoint_path).eval()


def test_precision_by_device_and_setting(monkeypatch):
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")
    assert autocast_dtype(cpu, True) is None and autocast_dtype(cpu, "fp16") is None  # float32 is the CPU's path
    assert autocast_dtype(cuda, False) is None and autocast_dtype(cuda, None) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert autocast_dtype(cuda, True) == torch.bfloat16 and autocast_dtype(cuda, "fp16") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    assert autocast_dtype(cuda, True) == torch.float16  # no bfloat16 before Ampere
    with pytest.raises(ValueError, match="Tesla V100 has no bfloat16 support; use fp16"):
        autocast_dtype(cuda, "bf16")
    assert autocast_dtype(mps, True) == torch.float16
    with pytest.raises(ValueError, match="amp must be True, False, 'bf16' or 'fp16', got 'int8'"):
        autocast_dtype(cpu, "int8")


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # PyTorch < 2.4
        return torch.is_autocast_cpu_enabled()


def test_autocast_model_returns_float32_logits_close_to_float32(eager, monkeypatch):
    """Run on the CPU, where torch.autocast supports bfloat16, to exercise what a GPU runs."""
    seen = []
    reconstruct = nmf_module.nmf_reconstruct

    def recording(x, bases, *args, **kwargs):
        seen.append((x.dtype, bases.dtype, _cpu_autocast_enabled()))
        return reconstruct(x, bases, *args, **kwargs)

    monkeypatch.setattr(nmf_module, "nmf_reconstruct", recording)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mixed = AutocastModel(eager, "cpu", torch.bfloat16)
    assert mixed.num_classes == 150
    with torch.no_grad():
        reference = eager(images)
        seen.clear()
        low, full = mixed.forward_logits(images), mixed(images)
    assert seen == [(torch.float32, torch.float32, False)] * 2  # the NMF ran in float32, autocast off
    assert low.dtype == full.dtype == torch.float32 and full.shape == reference.shape
    assert not torch.equal(full, reference)  # bfloat16 did run
    error = (full - reference).abs().max() / reference.abs().max()
    assert error < 0.1, error
    assert (full.argmax(1) == reference.argmax(1)).float().mean() > 0.8


def test_segmenter_amp_is_float32_on_the_cpu_and_checked_up_front(eager):
    config = TestConfig(img_scale=(64, 48))
    plain = Segmenter(eager, config)
    mixed = Segmenter(eager, config, amp=True)
    assert mixed.autocast_dtype is None and mixed.inference_model is eager and "amp=True" in repr(mixed)
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.array_equal(mixed.predict(image), plain.predict(image))
    with pytest.raises(ValueError, match="amp must be"):
        Segmenter(eager, config, amp="fp8")
    with pytest.raises(ValueError, match="amp must be"):
        plain.amp = "half"


def test_segmenter_runs_an_autocast_model_where_amp_applies(eager, monkeypatch):
    """What a GPU gets, on the CPU: the model wrapped in AutocastModel, labels from float32 logits."""
    monkeypatch.setattr("segnext.inference.segmenter.autocast_dtype", lambda device, amp: torch.bfloat16)
    segmenter = Segmenter(eager, TestConfig(img_scale=(64, 48)), amp=True)
    assert isinstance(segmenter.inference_model, AutocastModel)
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    labels, probabilities = segmenter.predict_with_proba(image)
    assert labels.shape == (40, 50) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(0), 1, atol=1e-4)
    reference = Segmenter(eager, TestConfig(img_scale=(64, 48))).predict(image)
    assert (segmenter.predict(image) == reference).mean() > 0.8


def _cpu_has_float16_convolutions() -> bool:
    try:
        torch.nn.functional.conv2d(torch.zeros(1, 1, 2, 2, dtype=torch.float16), torch.zeros(1, 1, 1, 1,
                                                                                        dtype=torch.float16))
    except RuntimeError:  # older PyTorch releases on the CPU
        return False
    return True


@pytest.mark.parametrize("dtype", [torch.bfloat16, pytest.param(torch.float16, marks=pytest.mark.skipif(
    not _cpu_has_float16_convolutions(), reason="this PyTorch has no float16 convolutions on the CPU"))])
def test_a_model_cast_to_half_precision_takes_images_and_gives_float32_scores(dtype, tmp_path):
    """`model.half()` (or bfloat16), as users cast a model for a GPU: images go in in its dtype, the
    NMF stays float32 and the scores come out float32, close to the float32 model's. The trained
    CamVid model (in the package) has the clear margins that random weights lack."""
    image = make_scene_dataset(tmp_path, num_train=0, num_val=1, size=(96, 128)) / "images/val/scene_0000.png"
    config = TestConfig(img_scale=(128, 96))
    model = segnext.create_model("segnext_t", pretrained="camvid").eval()
    expected_labels, expected_scores = Segmenter(model, config).predict_with_proba(image)
    labels, scores = Segmenter(model.to(dtype), config).predict_with_proba(image)
    assert scores.dtype == np.float32 and next(model.parameters()).dtype == dtype
    assert np.array_equal(segment(model, image, config).numpy(), labels)  # the test procedure itself too
    assert np.abs(scores - expected_scores).max() < 0.1
    assert (labels == expected_labels).mean() > 0.99 and len(np.unique(expected_labels)) >= 3
