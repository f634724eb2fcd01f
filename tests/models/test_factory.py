"""create_model / list_models: the four variants with the official sizes, options, errors."""

from __future__ import annotations

import json

import pytest
import torch

import segnext
from segnext.models.configuration import SegNeXtConfig

# The official code's sizes: total / backbone / head at 150 classes; total at 19 classes.
PARAMS_150 = {
    "segnext_t": (4_263_414, 3_903_584, 359_830),
    "segnext_s": (13_932_886, 13_450_176, 482_710),
    "segnext_b": (27_636_310, 26_277_824, 1_358_486),
    "segnext_l": (48_926_550, 44_636_864, 4_289_686),
}
PARAMS_19 = {"segnext_t": 4_229_747, "segnext_s": 13_899_219, "segnext_b": 27_569_107, "segnext_l": 48_792_275}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_list_models():
    assert segnext.list_models() == ["segnext_t", "segnext_s", "segnext_b", "segnext_l"]


@pytest.mark.parametrize("name", list(PARAMS_150))
def test_exact_parameter_counts(name):
    total, backbone, head = PARAMS_150[name]
    model = segnext.create_model(name, 150)
    assert (count(model), count(model.backbone), count(model.decode_head)) == (total, backbone, head)
    assert count(model) == count(model.backbone) + count(model.decode_head)
    model = segnext.create_model(name, 19)
    assert count(model) == PARAMS_19[name]
    assert count(model.backbone) == backbone


@pytest.mark.parametrize("name, head_channels, rank, drop_path", [
    ("segnext_t", 256, 16, 0.1), ("segnext_s", 256, 16, 0.1), ("segnext_b", 512, 64, 0.1), ("segnext_l", 1024, 64, 0.3),
])
def test_variant_head_settings(name, head_channels, rank, drop_path):
    c = segnext.create_model(name, 150).config
    assert (c.head_channels, c.ham_channels, c.nmf_rank, c.drop_path_rate) == (head_channels, head_channels, rank,
                                                                               drop_path)
    assert (c.nmf_train_steps, c.nmf_eval_steps, c.dropout_ratio, c.group_norm_groups) == (6, 7, 0.1, 32)


def test_default_nmf_seed_is_a_fixed_int_and_settable():
    model = segnext.create_model("segnext_t", 19)
    assert isinstance(model.nmf_seed, int) and model.nmf_seed == segnext.DEFAULT_NMF_SEED
    assert segnext.create_model("segnext_t", 19, nmf_seed=None).nmf_seed is None
    assert segnext.create_model("segnext_t", 19, nmf_seed=7).nmf_seed == 7
    model.nmf_seed = 3
    assert model.nmf_seed == 3 and model.decode_head.hamburger.ham.seed == 3


def test_overrides_reach_the_modules():
    model = segnext.create_model("segnext_t", 19, drop_path_rate=0.0, dropout_ratio=0.0, nmf_eval_steps=5)
    assert all(b.drop_path_rate == 0.0 for _, blocks, _ in model.backbone.stages() for b in blocks)
    assert isinstance(model.decode_head.dropout, torch.nn.Identity)
    assert model.nmf.eval_steps == 5
    assert isinstance(model.config, SegNeXtConfig) and model.config.num_classes == 19 == model.num_classes


def test_unknown_model_name_suggests():
    with pytest.raises(ValueError, match=r"Unknown model 'segnext_tt'.*Did you mean 'segnext_t'"):
        segnext.create_model("segnext_tt", 150)
    with pytest.raises(ValueError, match=r"Unknown model 'segnext_tt'"):  # named first, before what else is missing
        segnext.create_model("segnext_tt")


def test_unknown_option_suggests():
    with pytest.raises(ValueError, match=r"drop_path_rat.*Did you mean 'drop_path_rate'"):
        segnext.create_model("segnext_t", 150, drop_path_rat=0.0)
    with pytest.raises(ValueError, match=r"Unknown create_model option 'num_clases'. Did you mean 'num_classes'"):
        segnext.create_model("segnext_t", num_clases=150)  # not "needs num_classes": the typo is named


@pytest.mark.parametrize("num_classes", [0, -1, 1.5, True, "19"])
def test_num_classes_must_be_a_whole_number_of_at_least_one(num_classes):
    with pytest.raises(ValueError, match=f"num_classes must be a whole number of at least 1 .*, got {num_classes!r}"):
        segnext.create_model("segnext_t", num_classes)


@pytest.mark.parametrize("option, message", [
    (dict(depths=(1, 1, 1)), r"depths must be one number per stage, as many as embed_dims has \(4\), got \[1, 1, 1\]"),
    (dict(embed_dims=(32, 0, 160, 256)), "embed_dims must be a list of whole numbers of at least 1"),
    (dict(strip_kernel_sizes=(7, 10)), r"strip_kernel_sizes must be a list of odd whole numbers .*, got \[7, 10\]"),
    (dict(attention_kernel_size=4), "attention_kernel_size must be an odd whole number"),
    (dict(attention_gating="no"), "attention_gating must be true or false, got 'no'"),
    (dict(head_in_stages=(1, 4)), r"head_in_stages must be a list of distinct stage indices from 0 to 3"),
    (dict(head_in_stages=()), "head_in_stages must be a list of distinct stage indices from 0 to 3, at least one"),
    (dict(group_norm_groups=7), r"head_channels must be a multiple of group_norm_groups \(7\)"),
    (dict(nmf_rank=0), "nmf_rank must be a whole number of at least 1, got 0"),
    (dict(nmf_eval_steps=-1), "nmf_eval_steps must be a whole number of at least 0"),
    (dict(drop_path_rate=1.5), "drop_path_rate must be a number from 0 to below 1, got 1.5"),
    (dict(attention="van"), "attention must be one of msca, lka, got 'van'"),
    (dict(decoder="segformer"), "decoder must be one of ham, mlp, got 'segformer'"),
    (dict(attention="lka", strip_kernel_sizes=()), "attention 'lka' has no MSCA, so its options strip_kernel_sizes"),
])
def test_options_that_cannot_make_a_network_are_named_before_one_is_built(option, message):
    """Not an IndexError or a shape mismatch deep in the model's forward: the option and what it needs."""
    with pytest.raises(ValueError, match="SegNeXt option " + message):
        segnext.create_model("segnext_t", 19, **option)


def test_num_classes_from_numpy_or_a_tensor_is_saved_as_an_int():
    import numpy as np

    for count in (np.int64(4), torch.tensor(4)):
        model = segnext.create_model("segnext_t", count)
        assert type(model.config.num_classes) is int and model.num_classes == 4
    # and the architecture's whole numbers: config.json holds Python ints
    config = segnext.create_model("segnext_t", 4, embed_dims=np.array([32, 64, 160, 256]), nmf_rank=torch.tensor(16),
                                  head_channels=np.int64(256)).config
    assert config.embed_dims == (32, 64, 160, 256) and all(type(v) is int for v in config.embed_dims)
    assert type(config.nmf_rank) is int and type(config.head_channels) is int
    json.dumps(config.to_dict())


def test_name_and_classes_needed_without_checkpoint():
    with pytest.raises(ValueError, match="num_classes"):
        segnext.create_model("segnext_t")
