"""SegNeXt segmentor behaviour: determinism of the default, batch invariance, the nmf_seed modes,
any input size in train and eval, bf16 autocast."""

from __future__ import annotations

import pytest
import torch

import segnext
from segnext.models import nmf as nmf_module

# bf16 autocast vs fp32 on the fixture input (random weights, features up to ~400 inside the blocks):
# measured max |diff| of the final logits 0.27 (logits up to ~3.3), argmax agreement 89.6 %.
BF16_MAX_ABS = 0.35
BF16_MIN_ARGMAX_AGREEMENT = 0.85


@pytest.fixture(scope="module")
def model(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def small_input(io_data):
    return io_data["input"][:, :, :96, :128].clone()


def test_default_is_deterministic(model, small_input):
    assert model.nmf_seed == segnext.DEFAULT_NMF_SEED
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(small_input)
        torch.manual_seed(2)
        b = model(small_input)
    assert torch.equal(a, b)


def test_default_prediction_does_not_depend_on_the_batch(model, small_input):
    with torch.no_grad():
        batch = model(small_input)
        alone = [model(small_input[i:i + 1]) for i in range(small_input.shape[0])]
        reversed_batch = model(small_input.flip(0))
    for i, single in enumerate(alone):
        torch.testing.assert_close(batch[i:i + 1], single, atol=1e-5, rtol=0)
    torch.testing.assert_close(reversed_batch.flip(0), batch, atol=1e-5, rtol=0)


def test_different_nmf_seed_gives_different_output(model, small_input):
    try:
        with torch.no_grad():
            model.nmf_seed = 0
            a = model(small_input)
            model.nmf_seed = 1
            b = model(small_input)
            model.nmf_seed = 0
            c = model(small_input)
    finally:
        model.nmf_seed = segnext.DEFAULT_NMF_SEED
    assert (a - b).abs().max() > 1e-2
    assert torch.equal(a, c)


def test_nmf_seed_none_follows_global_rng(model, small_input):
    try:
        model.nmf_seed = None
        with torch.no_grad():
            torch.manual_seed(5)
            a = model(small_input)
            b = model(small_input)
            torch.manual_seed(5)
            c = model(small_input)
            torch.manual_seed(5)
            bases = nmf_module.draw_bases(small_input.shape[0], 256, 16)
            d = model(small_input, nmf_bases=bases)
    finally:
        model.nmf_seed = segnext.DEFAULT_NMF_SEED
    assert torch.equal(a, c) and torch.equal(a, d)
    assert (a - b).abs().max() > 1e-2


@pytest.mark.parametrize("size", [(1, 1), (33, 47), (65, 65), (37, 8)])
@pytest.mark.parametrize("training", [False, True])
def test_any_input_size(size, training):
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 7)
    model.train(training)
    batch = 2  # BatchNorm in training needs more than one value per channel at the 1x1 stage
    x = torch.randn(batch, 3, *size)
    with torch.set_grad_enabled(training):
        out = model(x)
    assert out.shape == (batch, 7, *size)
    assert torch.isfinite(out).all()
    if training:
        out.mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_forward_logits_at_stride_8(model, small_input):
    with torch.no_grad():
        logits = model.forward_logits(small_input)
        full = model(small_input)
    assert logits.shape == (2, 150, 12, 16) and full.shape == (2, 150, 96, 128)
    expected = torch.nn.functional.interpolate(logits, size=(96, 128), mode="bilinear", align_corners=False)
    assert torch.equal(full, expected)


@pytest.fixture(scope="module")
def bf16_run(model, io_data):
    x, bases = io_data["input"], io_data["bases"]
    seen = {}
    hook = model.nmf.register_forward_hook(lambda m, i, o: seen.update(out=o))
    inner = nmf_module.nmf_reconstruct
    dtypes = []

    def spy(x, b, steps, **kwargs):
        out = inner(x, b, steps, **kwargs)
        dtypes.append((x.dtype, b.dtype, out.dtype))
        return out

    nmf_module.nmf_reconstruct = spy
    try:
        with torch.no_grad():
            reference = model(x, nmf_bases=bases)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(x, nmf_bases=bases)
    finally:
        nmf_module.nmf_reconstruct = inner
        hook.remove()
    return reference, low, seen["out"], dtypes


def test_bf16_autocast_is_finite_and_close_to_fp32(bf16_run):
    reference, low, _, _ = bf16_run
    assert low.dtype == torch.bfloat16 and low.shape == reference.shape
    assert torch.isfinite(low).all()
    diff = (low.float() - reference).abs().max().item()
    assert diff <= BF16_MAX_ABS, f"bf16 vs fp32 max abs diff {diff:.4f}"
    agreement = (low.float().argmax(1) == reference.argmax(1)).double().mean().item()
    assert agreement >= BF16_MIN_ARGMAX_AGREEMENT, agreement


def test_bf16_autocast_runs_nmf_in_fp32(bf16_run):
    _, _, ham_out, dtypes = bf16_run
    assert dtypes[0] == (torch.float32, torch.float32, torch.float32)  # the fp32 reference pass
    assert dtypes[1] == (torch.float32, torch.float32, torch.float32)  # the autocast pass
    assert torch.isfinite(ham_out).all() and ham_out.abs().max() > 0


@pytest.mark.parametrize("images, hint", [
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "pixels as integers? the model takes them normalised"),
    (torch.zeros(3, 32, 32), "one image? images.unsqueeze(0)"),
    (torch.zeros(32, 32, 3), "one (H, W, 3) image? images.permute(2, 0, 1).unsqueeze(0)"),
    (torch.zeros(2, 32, 32, 3), "channels last in the shape? images.permute(0, 3, 1, 2)"),
    (torch.zeros(2, 1, 32, 32), "grayscale? images.expand(-1, 3, -1, -1)"),
    (torch.zeros(2, 4, 32, 32), "3 colour channels are needed"),
], ids=["uint8", "CHW", "HWC", "BHWC", "gray", "RGBA"])
def test_images_of_the_wrong_form_are_named_before_the_first_convolution(images, hint):
    model = segnext.create_model("segnext_t", num_classes=3).eval()
    with pytest.raises(ValueError, match="SegNeXt takes a batch of normalised RGB images, float \\(B, 3, H, W\\), "
                                         "and got ") as error:
        model(images)
    assert hint in str(error.value) and str(tuple(images.shape)) in str(error.value)


def test_the_loss_takes_labels_as_datasets_and_transforms_give_them_and_names_bad_ones():
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 3, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    labels[:, :2] = 255
    expected = segnext.segmentation_loss(logits, labels)
    for same in (labels[:, None], labels.to(torch.uint8), labels.float()):  # (B, 1, H, W), uint8, whole floats
        assert torch.equal(segnext.segmentation_loss(logits, same), expected)
    with pytest.raises(ValueError, match="labels hold fractions, not class ids: were they resized with bilinear"):
        segnext.segmentation_loss(logits, labels.float() * 0.5)
    with pytest.raises(ValueError, match=r"label value 5 is neither a class index in \[0, 3\) nor the ignore index "
                                         r"255"):
        segnext.segmentation_loss(logits, labels.masked_fill(labels == 1, 5))
    with pytest.raises(ValueError, match=r"expected logits \(B, K, h, w\) and labels \(B, H, W\)"):
        segnext.segmentation_loss(logits, labels[0])
