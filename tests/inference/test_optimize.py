"""optimize_for_inference: the same outputs as the eager model (official fixtures, odd sizes),
through the oneDNN-fused graph and through standard operators alike."""

from __future__ import annotations

import pytest
import torch

import segnext
from segnext.inference import optimize as optimize_module

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


@pytest.mark.skipif(not optimize_module.ONEDNN_FUSION, reason="this PyTorch build has no oneDNN fusion ops")
def test_every_convolution_is_a_onednn_call_and_most_carry_their_post_op(optimized):
    graph = optimized.fused.graph
    convolutions = [n for n in graph.nodes if n.op == "call_module" and "conv" in str(n.target)]
    fused = [n for n in graph.nodes if n.op == "call_function" and n.target in (
        optimize_module._conv_unary, optimize_module._conv_binary)]
    mlps = [n for n in graph.nodes if n.target is optimize_module._mlp_with_residual]
    assert convolutions == [] and len(mlps) == 13  # SegNeXt-T: 13 blocks
    with_post_op = [n for n in fused if n.target is optimize_module._conv_binary or n.args[-1] != "none"]
    assert len(with_post_op) >= 40  # branch sums, attention products, residuals, GELU/ReLU


def test_standard_operator_path_matches(eager, optimized, monkeypatch):
    """The path used on GPUs, in ONNX export and under torch.compile (no oneDNN calls)."""
    images = torch.randn(1, 3, 72, 88)
    with torch.no_grad():
        fused = optimized(images)
        monkeypatch.setattr(optimize_module, "_standard_ops_required", lambda: True)
        standard = optimized(images)
    assert (fused - standard).abs().max() <= TOLERANCE


def test_batches_run_image_by_image_with_the_same_result(optimized):
    images = torch.randn(3, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        together = optimized(images)
        alone = torch.cat([optimized(images[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)


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
    assert isinstance(eager, segnext.SegNeXt) and not eager.reparameterized
    assert any(name.endswith("norm1.running_mean") for name, _ in eager.named_buffers())
    assert not any(p.requires_grad for p in optimized.parameters())
    assert optimized.num_classes == 150 and optimized.config is not None
    with pytest.raises(RuntimeError, match="inference only"):
        optimized.train()


@pytest.mark.skipif(not optimize_module.ONEDNN_FUSION, reason="this PyTorch build has no oneDNN fusion ops")
@pytest.mark.parametrize("band_bytes", [1, 200_000, 1 << 30], ids=["one-row", "few-rows", "unbanded"])
def test_banded_mlp_is_bit_identical(optimized, monkeypatch, band_bytes):
    """The MLP in bands of rows (with a one-row halo) computes exactly the unbanded values."""
    images = torch.randn(1, 3, 200, 136, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        monkeypatch.setattr(optimize_module, "MLP_BAND_BYTES", 1 << 40)
        unbanded = optimized.forward_logits(images)
        monkeypatch.setattr(optimize_module, "MLP_BAND_BYTES", band_bytes)
        banded = optimized.forward_logits(images)
    assert torch.equal(banded, unbanded)


def test_an_image_with_an_odd_batch_stride_gets_the_same_result(optimized):
    """(1, 3, H, W) viewed from an HWC array: channels-last by PyTorch's rule, but with a batch
    stride of 3, which sends oneDNN down a slow path; it is run with standard strides instead."""
    hwc = torch.randn(40, 56, 3, generator=torch.Generator().manual_seed(2))
    odd = hwc.permute(2, 0, 1).unsqueeze(0)
    assert odd.stride(0) == 3 and odd.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(optimized.forward_logits(odd), optimized.forward_logits(odd.contiguous()))
