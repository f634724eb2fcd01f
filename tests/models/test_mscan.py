"""MSCAN encoder: the ImageNet backbone file, stage outputs against the official code, shapes for odd
sizes, stochastic depth."""

from __future__ import annotations

import math

import pytest
import torch

import segnext
from segnext.models import mscan, read_checkpoint
from segnext.models.mscan import MSCAN

STAGE_TOL = dict(atol=2e-4, rtol=0.0)


@pytest.fixture(scope="module")
def backbone_model(backbone_path):
    torch.manual_seed(0)
    return segnext.create_model("segnext_t", 150, backbone_checkpoint=backbone_path).eval()


@pytest.mark.parametrize("p", ["", "odd_"])
def test_imagenet_backbone_file_gives_official_stage_outputs(backbone_model, io_data, p):
    with torch.no_grad():
        stages = backbone_model.backbone(io_data[p + "input"])
    assert len(stages) == 4
    for i, stage in enumerate(stages):
        torch.testing.assert_close(stage, io_data[f"{p}backbone_out_{i}"], **STAGE_TOL,
                                   msg=lambda m: f"stage {i}: {m}")


def test_imagenet_classifier_is_dropped(backbone_path, backbone_model):
    raw = torch.load(backbone_path, map_location="cpu", weights_only=True)["state_dict"]
    assert {"head.weight", "head.bias"} <= set(raw)
    loaded = read_checkpoint(backbone_path)
    assert loaded.kind == "backbone"
    assert not any(k.startswith(("head.", "backbone.head.")) for k in loaded.state_dict)
    assert len(loaded.state_dict) == len(raw) - 2 == 537
    assert any("head.weight" in note for note in loaded.notes)
    # Every backbone tensor is the file's; the decoder keeps its random init (same seed, no file).
    state = backbone_model.state_dict()
    for key, value in raw.items():
        if not key.startswith("head."):
            assert torch.equal(state["backbone." + key], value), key
    torch.manual_seed(0)
    fresh = segnext.create_model("segnext_t", 150)
    for key, value in fresh.decode_head.state_dict().items():
        assert torch.equal(backbone_model.decode_head.state_dict()[key], value), key


def test_backbone_file_in_1x_naming(tmp_path, backbone_path, io_data):
    raw = torch.load(backbone_path, map_location="cpu", weights_only=True)["state_dict"]
    renamed = {k.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv."): v for k, v in raw.items()}
    assert renamed.keys() != raw.keys()
    torch.save({"state_dict": renamed}, tmp_path / "mscan_t_1x.pth")
    model = segnext.create_model("segnext_t", 19, backbone_checkpoint=tmp_path / "mscan_t_1x.pth").eval()
    with torch.no_grad():
        stages = model.backbone(io_data["odd_input"])
    torch.testing.assert_close(stages[3], io_data["odd_backbone_out_3"], **STAGE_TOL)


@pytest.mark.parametrize("size", [(1, 1), (33, 47), (65, 65), (75, 101)])
def test_stage_sizes_round_up(size):
    torch.manual_seed(0)
    encoder = MSCAN((8, 16, 24, 32), (1, 1, 1, 1), (2, 2, 2, 2)).eval()
    with torch.no_grad():
        stages = encoder(torch.randn(1, 3, *size))
    h, w = size
    for i, stage in enumerate(stages):
        h, w = (math.ceil(h / 4), math.ceil(w / 4)) if i == 0 else (math.ceil(h / 2), math.ceil(w / 2))
        assert stage.shape == (1, (8, 16, 24, 32)[i], h, w)


def test_stochastic_depth_rates_grow_linearly_over_all_blocks():
    model = segnext.create_model("segnext_t", 150)
    rates = [block.drop_path_rate for _, blocks, _ in model.backbone.stages() for block in blocks]
    assert len(rates) == 13
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.1, 13), atol=1e-7, rtol=0)
    large = segnext.create_model("segnext_l", 150)
    rates = [block.drop_path_rate for _, blocks, _ in large.backbone.stages() for block in blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3) and len(rates) == 38


def test_drop_path_is_mmcv_form():
    x = torch.randn(6, 3, 2, 2)
    assert mscan.drop_path(x, 0.3, training=False) is x
    assert mscan.drop_path(x, 0.0, training=True) is x
    torch.manual_seed(4)
    out = mscan.drop_path(x, 0.3, training=True)
    torch.manual_seed(4)
    keep = (0.7 + torch.rand(6, 1, 1, 1)).floor()
    torch.testing.assert_close(out, x / 0.7 * keep)
    assert 0 < keep.sum() < 6  # this seed drops some samples and keeps others


def test_block_layout_and_layer_scale_init():
    model = segnext.create_model("segnext_t", 150)
    block = model.backbone.block1[0]
    assert torch.equal(block.layer_scale_1, torch.full((32,), 1e-2))
    sgu = block.attn.spatial_gating_unit
    assert sgu.conv0.kernel_size == (5, 5) and sgu.conv0.groups == 32
    for i, k in enumerate((7, 11, 21)):
        assert getattr(sgu, f"conv{i}_1").kernel_size == (1, k)  # horizontal strip first
        assert getattr(sgu, f"conv{i}_2").kernel_size == (k, 1)
    assert block.mlp.fc1.out_channels == 32 * 8 and model.backbone.block3[0].mlp.fc1.out_channels == 160 * 4
    assert model.backbone.norm1.eps == 1e-5


def test_msca_ablations_leave_out_what_they_name():
    """The paper's ablation of MSCA's components: each option changes the attention as it says and
    nothing else (the other modules keep their weights from the same seed)."""
    u = torch.randn(2, 8, 12, 16)
    torch.manual_seed(0)
    full = mscan.AttentionModule(8)
    attention_map = full.conv0(u) + sum(v(h(full.conv0(u))) for h, v in full.strip_branches())
    torch.manual_seed(0)
    without_mixing = mscan.AttentionModule(8, channel_mixing=False)
    torch.manual_seed(0)
    without_gating = mscan.AttentionModule(8, gating=False)
    without_branches = mscan.AttentionModule(8, strip_kernel_sizes=())
    without_branches.conv0, without_branches.conv3 = full.conv0, full.conv3
    with torch.no_grad():
        assert torch.allclose(full(u), full.conv3(attention_map) * u, atol=1e-6)
        assert torch.allclose(without_mixing(u), attention_map * u, atol=1e-6)
        assert torch.allclose(without_gating(u), full.conv3(attention_map), atol=1e-6)
        assert torch.allclose(without_branches(u), full.conv3(full.conv0(u)) * u, atol=1e-6)
    assert "conv3.weight" not in without_mixing.state_dict() and not list(without_branches.strip_branches())


@pytest.mark.parametrize("options", [dict(strip_kernel_sizes=()), dict(attention_channel_mixing=False),
                                     dict(attention_gating=False), dict(head_in_stages=(0, 1, 2, 3)),
                                     dict(head_in_stages=(3,)), dict(attention="lka"),
                                     dict(decoder="mlp", head_in_stages=(0, 1, 2, 3)), dict(decoder="mlp")], ids=str)
def test_ablated_models_train_save_load_and_optimize(options, tmp_path):
    """Every ablation of the paper that is a model option trains, saves and loads with its
    architecture, and runs through the optimized inference path with the same outputs."""
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 4, **options)
    x = torch.randn(2, 3, 64, 96)
    loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 4, (2, 64, 96)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    segnext.save_model(model.eval(), tmp_path / "ablated")
    loaded = segnext.create_model(checkpoint=tmp_path / "ablated").eval()
    assert {key: getattr(loaded.config, key) for key in options} == options
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(loaded(x), expected)
        assert torch.allclose(segnext.optimize_for_inference(loaded)(x), expected, atol=1e-4)


def _saved_bytes(model, x, y):
    """The bytes autograd keeps for the backward pass of one training step."""
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return sum(saved)


def test_grad_checkpointing_gives_the_same_step_for_less_memory():
    """Gradients, BatchNorm running statistics and the random stream (stochastic depth) as without
    it, bit for bit; the activations kept for backward are a fraction."""
    torch.manual_seed(0)
    plain = segnext.create_model("segnext_t", 11, drop_path_rate=0.3)
    recomputing = segnext.create_model("segnext_t", 11, drop_path_rate=0.3)
    recomputing.load_state_dict(plain.state_dict())
    recomputing.set_grad_checkpointing()
    x, y = torch.randn(2, 3, 96, 128), torch.randint(0, 11, (2, 96, 128))
    saved, after = {}, {}
    for name, model in (("plain", plain), ("recomputing", recomputing)):
        torch.manual_seed(1)
        saved[name] = _saved_bytes(model, x, y)
        after[name] = torch.rand(4)
    assert torch.equal(after["plain"], after["recomputing"])
    grads = {name: parameter.grad for name, parameter in plain.named_parameters()}
    assert all(torch.equal(parameter.grad, grads[name]) for name, parameter in recomputing.named_parameters())
    state = plain.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in recomputing.state_dict().items())
    assert saved["recomputing"] < 0.4 * saved["plain"]
    with torch.no_grad():  # inference is untouched
        assert torch.equal(recomputing.eval()(x), plain.eval()(x))


def test_frozen_stages_take_no_gradient_and_keep_their_statistics():
    """freeze_encoder(2): a training step leaves stages 1-2 (weights and BatchNorm running statistics)
    bit for bit as they were and trains the rest; the gradients of the rest are those of the model
    with those stages in eval mode; freeze_encoder(0) trains everything again."""
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 5, drop_path_rate=0.3).freeze_encoder(2).train()
    reference = segnext.create_model("segnext_t", 5, drop_path_rate=0.3)
    reference.load_state_dict(model.state_dict())
    reference.train()
    for stage in list(reference.backbone.stages())[:2]:
        for module in stage:
            module.eval()
    frozen = ("backbone.patch_embed1.", "backbone.block1.", "backbone.norm1.",
              "backbone.patch_embed2.", "backbone.block2.", "backbone.norm2.")
    assert model.backbone.block2[0].training is False and model.backbone.block3[0].training is True
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x, y = torch.randn(2, 3, 64, 96), torch.randint(0, 5, (2, 64, 96))
    for net in (model, reference):
        torch.manual_seed(1)
        torch.nn.functional.cross_entropy(net(x), y).backward()
    for name, parameter in model.named_parameters():
        assert (parameter.grad is None) == name.startswith(frozen), name
        if parameter.grad is not None:
            assert torch.equal(parameter.grad, dict(reference.named_parameters())[name].grad), name
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    after = model.state_dict()
    assert all(torch.equal(after[key], before[key]) for key in after if key.startswith(frozen))
    for key in ("backbone.block3.0.norm1.running_mean", "backbone.block3.0.mlp.fc1.weight"):
        assert not torch.equal(after[key], before[key]), key
    model.freeze_encoder(0)
    assert all(parameter.requires_grad for parameter in model.parameters()) and model.backbone.block1[0].training
    with pytest.raises(ValueError, match=r"frozen stages must be from 0 \(none\) to 4"):
        model.freeze_encoder(5)
