"""`create_model`: the single way to build a SegNeXt, optionally from weights."""

from __future__ import annotations

from typing import Optional

import torch

from ..constants import DEFAULT_NMF_SEED
from .configuration import SegNeXtConfig, variant_config
from .segnext import SegNeXt
from .weights import CheckpointError, infer_architecture, infer_variant, load_into, read_checkpoint


def create_model(name: Optional[str] = None, num_classes: Optional[int] = None, checkpoint=None,
                 backbone_checkpoint=None, nmf_seed: Optional[int] = DEFAULT_NMF_SEED, **overrides) -> SegNeXt:
    """Build SegNeXt variant `name` ("segnext_t/s/b/l") for `num_classes` classes.

    checkpoint: official MMSegmentation 0.x/1.x file or a directory written by `segnext.save_model`;
        `name` and `num_classes` may then be left out (they are read from the file).
    backbone_checkpoint: an ImageNet MSCAN file (its 1000-class `head.*` is dropped).
    nmf_seed: None for the official random NMF bases at every forward, an int for fixed bases.
    overrides: any field of `SegNeXtConfig` (e.g. drop_path_rate=0.0, nmf_eval_steps=7).
    """
    loaded = read_checkpoint(checkpoint) if checkpoint is not None else None
    if loaded is not None and loaded.kind == "backbone":
        raise CheckpointError(
            f"{checkpoint} holds only an encoder (ImageNet MSCAN weights, no decode_head). "
            f"Pass it as backbone_checkpoint= instead of checkpoint=."
        )
    if loaded is not None and loaded.kind == "project":
        config = _project_config(loaded.config, name, num_classes, overrides, checkpoint)
    else:
        if loaded is not None:
            arch = infer_architecture(loaded.state_dict)
            name = name or infer_variant(loaded.state_dict)
            num_classes = num_classes if num_classes is not None else arch.get("num_classes")
            if name is None:
                raise CheckpointError(f"Cannot tell which SegNeXt variant {checkpoint} holds; pass name=.")
        if name is None or num_classes is None:
            raise ValueError("create_model needs a model name and num_classes (or a checkpoint to read them from).")
        config = variant_config(name, num_classes, **overrides)
        if loaded is not None and loaded.class_names and len(loaded.class_names) == num_classes:
            config.class_names = list(loaded.class_names)
            if loaded.palette and len(loaded.palette) == num_classes:
                config.palette = [list(c) for c in loaded.palette]
    if loaded is None:
        model = SegNeXt(config, nmf_seed=nmf_seed)  # random init, from torch's global RNG
    else:
        with torch.random.fork_rng(devices=[]):  # every weight is overwritten: leave the caller's RNG alone
            model = SegNeXt(config, nmf_seed=nmf_seed)
    if backbone_checkpoint is not None:
        backbone = read_checkpoint(backbone_checkpoint)
        if backbone.kind == "segmentor":  # a full segmentation file is fine too: take its encoder
            backbone.state_dict = {k: v for k, v in backbone.state_dict.items() if k.startswith("backbone.")}
        load_into(model, backbone, prefix_filter="backbone.")
    if loaded is not None:
        load_into(model, loaded)
    return model


def _project_config(saved: dict, name, num_classes, overrides, checkpoint) -> SegNeXtConfig:
    config = SegNeXtConfig.from_dict(saved)
    if name is not None and name != config.variant:
        raise CheckpointError(
            f"{checkpoint} holds {config.variant}, not {name}. Leave name out to use the saved variant."
        )
    if num_classes is not None and num_classes != config.num_classes:
        raise CheckpointError(
            f"{checkpoint} was trained for {config.num_classes} classes but num_classes={num_classes} was asked. "
            f"Leave num_classes out, or load the encoder only with backbone_checkpoint= to fine-tune."
        )
    for key, value in overrides.items():
        if not hasattr(config, key):
            variant_config(config.variant, config.num_classes, **{key: value})  # raises the helpful error
        setattr(config, key, tuple(value) if isinstance(value, list) else value)
    return config
