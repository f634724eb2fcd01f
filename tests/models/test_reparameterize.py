"""reparameterize(): each module folded for inference computes the same function as before, and a
reparameterized model can be neither trained nor saved as official weights."""

from __future__ import annotations

import copy

import pytest
import torch

import segnext
from segnext.models.ham_head import LightHamHead
from segnext.models.mscan import Block, OverlapPatchEmbed, StemConv

TOLERANCE = 1e-5


def _randomise_norms(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, and layer scales far from 1e-2."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            folded = "norm" in name or "proj.1" in name or "proj.4" in name or "layer_scale" in name
            if folded and tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 1.5 + 0.25)


def _same_function(module: torch.nn.Module, *inputs) -> float:
    module.eval()
    folded = copy.deepcopy(module)
    folded.reparameterize()
    with torch.no_grad():
        return (folded(*inputs) - module(*inputs)).abs().max().item()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_block(memory_format):
    block = Block(32, mlp_ratio=4, drop_path_rate=0.1, kernel_size=5, strip_kernel_sizes=(7, 11, 21))
    _randomise_norms(block, 0)
    x = torch.randn(2, 32, 19, 23).contiguous(memory_format=memory_format)
    assert _same_function(block, x) <= TOLERANCE


def test_stem_and_patch_embedding():
    stem, embed = StemConv(3, 32), OverlapPatchEmbed(32, 64)
    _randomise_norms(stem, 1)
    _randomise_norms(embed, 2)
    assert _same_function(stem, torch.randn(1, 3, 37, 41)) <= TOLERANCE
    assert _same_function(embed, torch.randn(1, 32, 19, 21)) <= TOLERANCE


def test_head_squeezes_each_stage_before_the_resize():
    head = LightHamHead([64, 160, 256], ham_channels=256, channels=256, num_classes=19)
    features = [torch.rand(1, 64, 10, 13), torch.rand(1, 160, 5, 7), torch.rand(1, 256, 3, 4)]
    bases = torch.nn.functional.normalize(torch.rand(1, 256, 16), dim=1)
    assert _same_function(head, features, bases) <= TOLERANCE


def test_whole_model_on_the_official_fixture(checkpoint_path, io_data):
    model = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()
    folded = copy.deepcopy(model).reparameterize()
    with torch.no_grad():
        for prefix in ("", "odd_"):
            logits = folded.forward_logits(io_data[prefix + "input"], io_data[prefix + "bases"])
            assert (logits - io_data[prefix + "decode_logits"]).abs().max() <= 1e-4
    block_norms = [n for n, _ in folded.named_parameters() if n.startswith("backbone.block") and ".norm1." in n]
    assert block_norms == []  # folded into the convolutions
    with pytest.raises(RuntimeError, match="reparameterized for inference"):
        folded.train()
    with pytest.raises(ValueError, match="reparameterized for inference"):
        segnext.save_model(folded, "unused")
    with pytest.raises(ValueError, match="reparameterized for inference"):  # it holds a folded model and its fusion
        segnext.save_model(segnext.optimize_for_inference(model), "unused")


def test_reparameterize_draws_no_random_numbers(checkpoint_path):
    model = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()
    state = torch.get_rng_state()
    model.reparameterize()
    assert torch.equal(torch.get_rng_state(), state)


def test_the_logit_temperature_divides_the_logits_and_folds_into_the_classifier(tmp_path):
    """`logit_temperature` T: the logits of the model as trained, divided by T, in every form of the
    model: eager, reparameterized (T in the classifier's weights), optimized, and saved and loaded."""
    torch.manual_seed(0)
    plain = segnext.create_model("segnext_t", 5).eval()
    warm = copy.deepcopy(plain)
    warm.config.logit_temperature = 2.5
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = plain(images) / 2.5
        assert (warm(images) - expected).abs().max().item() <= TOLERANCE
        folded = copy.deepcopy(warm).reparameterize()
        assert (folded(images) - expected).abs().max().item() <= TOLERANCE
        assert folded.reparameterize() is folded and (folded(images) - expected).abs().max().item() <= TOLERANCE
        optimized = segnext.optimize_for_inference(warm)
        assert (optimized(images) - expected).abs().max().item() <= 1e-4
    segnext.save_model(warm, tmp_path / "warm")
    loaded = segnext.create_model(checkpoint=tmp_path / "warm").eval()
    assert loaded.config.logit_temperature == 2.5
    with torch.no_grad():
        assert (loaded(images) - expected).abs().max().item() <= TOLERANCE
    card = (tmp_path / "warm" / "README.md").read_text()
    assert "Its logits are divided by a temperature of 2.500 (`logit_temperature`" in card
    assert "architecture is not" not in card  # not an architecture change
    for bad in (0, -1.0, float("inf"), True, "2"):
        with pytest.raises(ValueError, match="SegNeXt option logit_temperature must be a positive number"):
            segnext.create_model("segnext_t", 5, logit_temperature=bad)
