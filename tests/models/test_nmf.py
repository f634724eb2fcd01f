"""NMF2D: the official bases draw, the update rule against the recorded reconstruction, the seeds,
and float32 under autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recorded_releases import assert_same_draw
from segnext.models import nmf as nmf_module
from segnext.models.nmf import NMF2D, draw_bases, nmf_reconstruct

FEATURE_TOL = dict(atol=2e-4, rtol=0.0)


def test_global_draw_is_bit_identical_to_official(io_data):
    for p in ("", "odd_"):
        bases = io_data[p + "bases"]
        torch.manual_seed(io_data[p + "bases_seed"])
        drawn = draw_bases(bases.shape[0], bases.shape[1], bases.shape[2])
        assert drawn.dtype == torch.float32
        assert_same_draw(drawn, bases)
        torch.manual_seed(io_data[p + "bases_seed"])  # the official computation, on this PyTorch
        assert torch.equal(drawn, F.normalize(torch.rand(bases.shape), dim=1))


def test_draw_is_l2_normalised_over_channels():
    torch.manual_seed(0)
    bases = draw_bases(3, 40, 7)
    assert bases.shape == (3, 40, 7) and (bases >= 0).all()
    torch.testing.assert_close(bases.norm(dim=1), torch.ones(3, 7))


@pytest.mark.parametrize("p", ["", "odd_"])
def test_private_seed_draw_equals_official_draw_of_image_0(io_data, p):
    module = NMF2D(rank=16, seed=io_data[p + "bases_seed"]).eval()
    private = module.seeded_bases(256)
    assert private.shape == (1, 256, 16)
    assert_same_draw(private[0], io_data[p + "bases"][0])


def test_reconstruction_matches_official(io_data):
    module = NMF2D(rank=16, train_steps=6, eval_steps=7, seed=None).eval()
    with torch.no_grad():
        out = module(io_data["odd_nmf_in"], io_data["odd_bases"])
    assert out.shape == io_data["odd_nmf_in"].shape
    torch.testing.assert_close(out, io_data["odd_nmf_out"], **FEATURE_TOL)


def test_global_seed_reconstruction_matches_official(io_data):
    """nmf_seed=None: torch.manual_seed(bases_seed) before the forward reproduces the recorded output."""
    module = NMF2D(rank=16, seed=None).eval()
    torch.manual_seed(io_data["odd_bases_seed"])
    with torch.no_grad():
        out = module(io_data["odd_nmf_in"])
    torch.testing.assert_close(out, io_data["odd_nmf_out"], **FEATURE_TOL)


def test_eval_uses_7_steps_and_train_6(io_data):
    x = io_data["odd_nmf_in"].flatten(2)
    bases = io_data["odd_bases"]
    module = NMF2D(rank=16, seed=None)
    with torch.no_grad():
        module.eval()
        evaluated = module(io_data["odd_nmf_in"], bases).flatten(2)
        module.train()
        trained = module(io_data["odd_nmf_in"], bases).flatten(2)
    torch.testing.assert_close(evaluated, nmf_reconstruct(x, bases, 7), atol=1e-6, rtol=0)
    torch.testing.assert_close(trained, nmf_reconstruct(x, bases, 6), atol=1e-6, rtol=0)
    assert (evaluated - trained).abs().max() > 1e-3


def test_update_rules_with_temperature_one_reproduce_official(io_data):
    """Initial coefficients are softmax(x^T bases) with temperature 1 (not the config's INV_T=100)."""
    x, bases = io_data["odd_nmf_in"].flatten(2), io_data["odd_bases"]
    coef_t1 = F.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
    for _ in range(7):
        coef_t1 = nmf_module.update_coef(x, bases, coef_t1)
        bases = nmf_module.update_bases(x, bases, coef_t1)
    coef_t1 = nmf_module.update_coef(x, bases, coef_t1)
    torch.testing.assert_close(torch.bmm(bases, coef_t1.transpose(1, 2)).reshape(io_data["odd_nmf_out"].shape),
                               io_data["odd_nmf_out"], **FEATURE_TOL)


def test_seed_none_follows_global_rng():
    module = NMF2D(rank=4, seed=None).eval()
    x = torch.rand(1, 8, 5, 6)
    with torch.no_grad():
        torch.manual_seed(1)
        a = module(x)
        b = module(x)  # the RNG moved on
        torch.manual_seed(1)
        c = module(x)
    assert torch.equal(a, c)
    assert not torch.equal(a, b)


def test_int_seed_is_fixed_batch_invariant_and_leaves_global_rng_alone():
    module = NMF2D(rank=4, seed=5).eval()
    x = torch.rand(3, 8, 5, 6)
    state = torch.get_rng_state()
    with torch.no_grad():
        whole = module(x)
        single = module(x[1:2])
    assert torch.equal(state, torch.get_rng_state())
    torch.testing.assert_close(whole[1:2], single, atol=1e-6, rtol=0)
    other = NMF2D(rank=4, seed=6).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), whole)


def test_training_always_draws_from_global_rng():
    module = NMF2D(rank=4, seed=5).train()
    x = torch.rand(2, 8, 5, 6)
    torch.manual_seed(3)
    a = module(x)
    torch.manual_seed(3)
    expected_bases = draw_bases(2, 8, 4)
    torch.testing.assert_close(a.flatten(2), nmf_reconstruct(x.flatten(2), expected_bases, 6), atol=1e-6, rtol=0)


def test_changing_seed_invalidates_the_cache():
    module = NMF2D(rank=4, seed=1).eval()
    first = module.seeded_bases(8).clone()
    module.seed = 2
    assert not torch.equal(first, module.seeded_bases(8))
    module.seed = 1
    assert torch.equal(first, module.seeded_bases(8))


def test_seed_type_is_checked():
    with pytest.raises(TypeError, match="nmf_seed"):
        NMF2D(seed="3")


def test_injected_bases_broadcast_over_batch():
    module = NMF2D(rank=4, seed=None).eval()
    x = torch.rand(2, 8, 5, 6)
    bases = draw_bases(1, 8, 4)
    with torch.no_grad():
        assert torch.equal(module(x, bases), module(x, bases.expand(2, -1, -1)))


def test_gradient_flows_through_every_step():
    """No HamNet one-step-gradient trick: d(out)/d(x) equals autograd through the whole unrolled loop."""
    torch.manual_seed(0)
    x = torch.rand(1, 6, 20, requires_grad=True)
    bases = draw_bases(1, 6, 3)
    out = nmf_reconstruct(x, bases, 6)
    (grad,) = torch.autograd.grad(out.square().sum(), x)

    def one_step(x):  # what the one-step trick would differentiate
        with torch.no_grad():
            coef = F.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
            b = bases
            for _ in range(6):
                coef = nmf_module.update_coef(x, b, coef)
                b = nmf_module.update_bases(x, b, coef)
        coef = nmf_module.update_coef(x, b, coef)
        return torch.bmm(b, coef.transpose(1, 2))

    (grad_one_step,) = torch.autograd.grad(one_step(x).square().sum(), x)
    assert (grad - grad_one_step).abs().max() > 1e-3 * grad.abs().max()


def test_runs_in_float32_under_bf16_autocast(io_data, monkeypatch):
    seen = []
    original = nmf_module.nmf_reconstruct

    def spy(x, bases, steps, **kwargs):
        out = original(x, bases, steps, **kwargs)
        seen.append((x.dtype, bases.dtype, out.dtype))
        return out

    monkeypatch.setattr(nmf_module, "nmf_reconstruct", spy)
    module = NMF2D(rank=16, seed=None).eval()
    x = io_data["odd_nmf_in"].to(torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, io_data["odd_bases"])
    assert seen == [(torch.float32, torch.float32, torch.float32)]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    with torch.no_grad():
        reference = module(x.float(), io_data["odd_bases"])
    # Only the final cast to bf16 differs: relative rounding 2^-8 of values up to ~4.
    torch.testing.assert_close(out.float(), reference, atol=0.02, rtol=2 ** -8)
