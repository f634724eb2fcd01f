"""End-to-end parity of SegNeXt-T with the official code (fixtures/README.md, sections 3 and 4).

Eval mode, both recorded cases (main: batch 2, 256x320; odd: batch 1, 75x101), three ways of
getting the NMF bases:
- "global": nmf_seed=None and torch.manual_seed(bases_seed) right before the forward (the official draw);
- "injected": the recorded bases passed as `nmf_bases=`;
- "private": nmf_seed=bases_seed (one private draw shared by the batch; equals the official draw of
  image 0, so the whole odd case and image 0 of the main case must match).
Train mode: the deterministic `det_*` case (loss, drawn bases, gradients, BN statistics) and the
official stochastic `sto_*` case (DropPath + NMF bases + Dropout2d from one seeded global RNG).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import segnext
from recorded_releases import assert_same_draw, recorded_random_streams
from segnext.models import mscan, nmf

LOGITS_TOL = dict(atol=1e-4, rtol=1e-4)  # fixtures/README.md, "Suggested test tolerances"
STAGE_TOL = dict(atol=2e-4, rtol=0.0)
LOSS_ATOL = 1e-5
GRAD_RTOL = 2e-3
MIN_ARGMAX_AGREEMENT = 0.999

CASES = {"main": "", "odd": "odd_"}
MODES = ("global", "injected", "private")


@pytest.fixture(scope="module")
def model(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path, nmf_seed=None).eval()


def _run_eval(model, x, mode, seed, bases):
    """One eval forward capturing stage outputs, head output, final logits and any global bases draw."""
    captured = {"drawn": []}
    hooks = [
        model.backbone.register_forward_hook(lambda m, i, o: captured.__setitem__("stages", [t.clone() for t in o])),
        model.decode_head.register_forward_hook(lambda m, i, o: captured.__setitem__("decode", o.clone())),
    ]
    original_draw = nmf.draw_bases

    def spy_draw(*args, **kwargs):
        out = original_draw(*args, **kwargs)
        if kwargs.get("generator") is None and (len(args) < 4 or args[3] is None):
            captured["drawn"].append(out.clone())
        return out

    nmf.draw_bases = spy_draw
    old_seed = model.nmf_seed
    try:
        with torch.no_grad():
            if mode == "global":
                model.nmf_seed = None
                torch.manual_seed(seed)
                final = model(x)
                captured["rng_after"] = torch.get_rng_state()
            elif mode == "injected":
                model.nmf_seed = None
                final = model(x, nmf_bases=bases)
            else:
                model.nmf_seed = seed
                torch.manual_seed(12345)
                before = torch.get_rng_state()
                final = model(x)
                captured["rng_untouched"] = torch.equal(before, torch.get_rng_state())
                captured["private_bases"] = model.nmf.seeded_bases(bases.shape[1]).clone()
    finally:
        nmf.draw_bases = original_draw
        model.nmf_seed = old_seed
        for h in hooks:
            h.remove()
    captured["final"] = final
    return captured


@pytest.fixture(scope="module")
def eval_runs(model, io_data):
    runs = {}
    for case, p in CASES.items():
        for mode in MODES:
            runs[case, mode] = _run_eval(model, io_data[p + "input"], mode, io_data[p + "bases_seed"],
                                         io_data[p + "bases"])
    return runs


def _images(case, mode, io_data):
    """Images of the batch that must match the fixture: with a private seed, only image 0 of the
    main case has the recorded bases (image 1 was recorded with the second half of the official draw)."""
    batch = io_data[CASES[case] + "input"].shape[0]
    return slice(0, 1) if mode == "private" and batch > 1 else slice(0, batch)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_stage_outputs(eval_runs, io_data, case, mode):
    p = CASES[case]
    stages = eval_runs[case, mode]["stages"]
    assert len(stages) == 4
    for i, stage in enumerate(stages):
        torch.testing.assert_close(stage, io_data[f"{p}backbone_out_{i}"], **STAGE_TOL,
                                   msg=lambda m: f"{case}/{mode} stage {i}: {m}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_decode_logits(eval_runs, io_data, case, mode):
    p, b = CASES[case], _images(case, mode, io_data)
    torch.testing.assert_close(eval_runs[case, mode]["decode"][b], io_data[p + "decode_logits"][b], **LOGITS_TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_final_logits(eval_runs, io_data, case, mode):
    p, b = CASES[case], _images(case, mode, io_data)
    final = eval_runs[case, mode]["final"]
    assert list(final.shape) == io_data[p + "final_logits_shape"]
    assert final.dtype == torch.float32
    start_h, start_w, step = io_data[p + "final_logits_sub_start_step"]
    torch.testing.assert_close(final[b, :, start_h::step, start_w::step], io_data[p + "final_logits_sub"][b],
                               **LOGITS_TOL)
    torch.testing.assert_close(final[b, :, :8, :8], io_data[p + "final_logits_topleft"][b], **LOGITS_TOL)
    torch.testing.assert_close(final[b, :, -8:, -8:], io_data[p + "final_logits_bottomright"][b], **LOGITS_TOL)
    # Checksum of the full map: compared as the per-channel mean logit, with the logits tolerance.
    pixels = final.shape[2] * final.shape[3]
    torch.testing.assert_close(final[b].double().sum((2, 3)) / pixels,
                               io_data[p + "final_logits_channel_sum_f64"][b] / pixels, **LOGITS_TOL)
    agreement = (final[b].argmax(1) == io_data[p + "final_argmax"][b].long()).double().mean().item()
    assert agreement >= MIN_ARGMAX_AGREEMENT, f"{case}/{mode}: argmax agreement {agreement:.6f}"


@pytest.mark.parametrize("case", CASES)
def test_global_seed_draw_is_the_official_one_and_only_draw(eval_runs, io_data, case):
    """nmf_seed=None: exactly one global-RNG draw per eval forward, bit-identical to the official bases."""
    p = CASES[case]
    run = eval_runs[case, "global"]
    assert len(run["drawn"]) == 1
    assert_same_draw(run["drawn"][0], io_data[p + "bases"])
    torch.manual_seed(io_data[p + "bases_seed"])
    torch.rand(io_data[p + "bases"].shape)  # the official draw, nothing else
    assert torch.equal(run["rng_after"], torch.get_rng_state())


@pytest.mark.parametrize("case", CASES)
def test_private_seed_equals_official_draw_of_image_0(eval_runs, io_data, case):
    p = CASES[case]
    run = eval_runs[case, "private"]
    assert run["rng_untouched"], "an int nmf_seed must not consume the global RNG in eval mode"
    assert run["drawn"] == []
    assert_same_draw(run["private_bases"][0], io_data[p + "bases"][0])


def test_injected_bases_do_not_draw(eval_runs):
    for case in CASES:
        assert eval_runs[case, "injected"]["drawn"] == []


def test_private_seed_applies_image_0_bases_to_every_image(eval_runs, model, io_data):
    """Main case, nmf_seed=42: image 1 gets the same bases as image 0 (not the recorded bases[1])."""
    x, bases = io_data["input"][1:], io_data["bases"][:1]
    with torch.no_grad():
        expected = model.forward_logits(x, nmf_bases=bases)
    torch.testing.assert_close(eval_runs["main", "private"]["decode"][1:], expected, atol=1e-5, rtol=0)
    # ... and that differs from the recorded image-1 output (the bases matter).
    assert (expected - io_data["decode_logits"][1:]).abs().max() > 1e-2


# --------------------------------------------------------------------------------------------------
# Train mode (fixtures/README.md, section 4)


def _official_loss(logits, labels):
    """mmseg 0.24.1 forward_train: resize, per-pixel CE (ignore 255), sum / ALL pixels, weight 1."""
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    return per_pixel.sum() / labels.numel()


def _train_step(checkpoint_path, data, prefix, **overrides):
    model = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path, nmf_seed=None, **overrides)
    model.train()
    drawn, keep = [], []
    original_draw, original_drop_path = nmf.draw_bases, mscan.drop_path

    def spy_draw(*args, **kwargs):
        out = original_draw(*args, **kwargs)
        drawn.append(out.detach().clone())
        return out

    def spy_drop_path(x, drop_prob, training):
        out = original_drop_path(x, drop_prob, training)
        if training and drop_prob > 0:
            keep.append(out.detach().flatten(1).abs().sum(1) > 0)
        return out

    nmf.draw_bases, mscan.drop_path = spy_draw, spy_drop_path
    try:
        torch.manual_seed(data[prefix + "seed"])
        logits = model.forward_logits(data["input"])
    finally:
        nmf.draw_bases, mscan.drop_path = original_draw, original_drop_path
    loss = _official_loss(logits, data["gt_semantic_seg"][:, 0])
    loss.backward()
    return model, loss, drawn, keep


@pytest.fixture(scope="module")
def det_step(checkpoint_path, train_data):
    return _train_step(checkpoint_path, train_data, "det_", drop_path_rate=0.0, dropout_ratio=0.0)


@pytest.fixture(scope="module")
def sto_step(checkpoint_path, train_data):
    return _train_step(checkpoint_path, train_data, "sto_")


def _check_train_case(step, data, prefix):
    model, loss, drawn, _ = step
    assert abs(loss.item() - data[prefix + "loss"]) <= LOSS_ATOL, (loss.item(), data[prefix + "loss"])
    torch.testing.assert_close(loss.detach(), data[prefix + "loss_tensor"], atol=LOSS_ATOL, rtol=0)
    # The NMF bases are drawn once from the seeded global RNG, bit-identical to the official draw.
    assert len(drawn) == 1
    assert_same_draw(drawn[0], data[prefix + "bases"])

    params = dict(model.named_parameters())
    assert len(params) == data[prefix + "n_params"] == 457
    without_grad = [name for name, p in params.items() if p.grad is None]
    assert not without_grad, f"parameters without a gradient: {without_grad[:5]}"
    for name, norm in data[prefix + "grad_norms"].items():
        got = params[name].grad.norm().item()
        assert got == pytest.approx(norm, rel=GRAD_RTOL), f"grad norm of {name}: {got} vs {norm}"
    total = torch.sqrt(sum(p.grad.double().pow(2).sum() for p in params.values())).item()
    assert total == pytest.approx(data[prefix + "total_grad_norm"], rel=GRAD_RTOL)
    for name, grad in data[prefix + "grads"].items():
        # Element-wise, relative to the tensor's scale (tiny entries carry only the float noise).
        scale = grad.abs().max().item()
        torch.testing.assert_close(params[name].grad, grad, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale,
                                   msg=lambda m: f"gradient of {name}: {m}")
    state = model.state_dict()
    for name, value in data[prefix + "bn_after"].items():
        if name.endswith("num_batches_tracked"):
            assert int(value) == 160001 and state[name].item() == 160001, name
        else:
            torch.testing.assert_close(state[name], value, atol=1e-5, rtol=1e-5, msg=lambda m: f"{name}: {m}")


def test_det_train_step(det_step, train_data):
    _check_train_case(det_step, train_data, "det_")
    assert det_step[3] == [], "drop_path_rate=0 must draw no DropPath masks"


def test_det_loss_is_sum_over_all_pixels(det_step, train_data):
    """The contrast value (mean over valid pixels) must NOT be what we compute."""
    loss = det_step[1].item()
    ratio = train_data["n_total_pixels"] / train_data["n_valid_pixels"]
    assert loss * ratio == pytest.approx(train_data["det_loss_if_mean_over_valid"], rel=1e-5)
    assert abs(loss - train_data["det_loss_if_mean_over_valid"]) > 1.0


@recorded_random_streams
def test_sto_train_step(sto_step, train_data):
    """Official stochastic config: DropPath (mmcv form, attention then MLP per block), then the NMF
    bases, then Dropout2d, all from the global RNG seeded with sto_seed."""
    _check_train_case(sto_step, train_data, "sto_")
    keep = torch.stack(sto_step[3]).to(torch.uint8)
    assert torch.equal(keep, train_data["sto_droppath_keep_masks"])
    assert (keep == 0).any(), "the fixture drops some paths; a test that never drops could not see order errors"
