"""`create_model`: the single way to build a SegNeXt, optionally from weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional

from ..constants import SAVED_NMF_SEED
from .configuration import check_fields, check_variant, variant_config
from .download import fetch
from .hub import resolve_checkpoint
from .loading import LoadReport, build_from_checkpoint, load_encoder, resolve_nmf_seed
from .pretrained import pretrained_weights, published_model
from .segnext import SegNeXt
from .weights import CONFIG_FILE, CheckpointError, read_checkpoint


def create_model(name: Optional[str] = None, num_classes: Optional[int] = None, checkpoint=None,
                 backbone_checkpoint=None, nmf_seed=SAVED_NMF_SEED, *,
                 pretrained: Optional[str] = None, ignore_mismatched_sizes: bool = False,
                 match_class_names: bool = True, output_loading_info: bool = False, **overrides):
    """Build SegNeXt variant `name` ("segnext_t/s/b/l") for `num_classes` classes.

    pretrained: published weights by name (`segnext.list_pretrained()`), fetched into the cache:
        "ade20k" (the whole model, 150 classes) or "imagenet" (the encoder only; give num_classes).
        With another num_classes than the weights', the classifier is re-initialised (timm's rule).
    checkpoint: a whole model: a model folder (`segnext.save_model`), an official MMSegmentation
        0.x/1.x file, a JSeg .pkl file or a segnext training checkpoint; `name` and `num_classes`
        may then be left out (they are read from it). The name of published weights that is not
        a path ("segnext_t.ade20k", "camvid") loads those, as `pretrained=`.
    ignore_mismatched_sizes: with `checkpoint` and another num_classes than its own, load every
        tensor but the classifier, which starts anew (fine-tuning on new classes). Without it,
        that is an error.
    match_class_names: when the classifier starts anew and `class_names` are given, the rows of the
        classes the checkpoint names too (case and spacing aside) are copied from it, so that they
        start trained; False: every row starts anew.
    backbone_checkpoint: the encoder only: an ImageNet MSCAN file, or the encoder of any whole
        checkpoint above.
    nmf_seed: an int for fixed NMF bases, None for the official random bases at every forward; the
        default, "saved", takes the seed `checkpoint` was saved with (model folders and training
        checkpoints record it), else DEFAULT_NMF_SEED (0).
    output_loading_info: return (model, [LoadReport]): which tensors came from which file and
        which are new. Otherwise re-initialised tensors are logged as a warning.
    overrides: any field of `SegNeXtConfig` (e.g. drop_path_rate=0.0, nmf_eval_steps=7).
    """
    check_fields(overrides, where="create_model")  # a misspelt keyword (num_clases=) is named, not ignored
    if name is not None:
        check_variant(name)
    checkpoint, backbone_checkpoint = resolve_checkpoint(checkpoint), resolve_checkpoint(backbone_checkpoint)
    if isinstance(checkpoint, str) and not os.path.exists(checkpoint):
        published = published_model(checkpoint)
        if published is not None:
            if name is not None and name != published.variant:
                raise ValueError(f"checkpoint={checkpoint!r} is {published.variant}, not {name}.")
            name, pretrained, checkpoint = published.variant, published.tag, None
    if pretrained is not None:
        if checkpoint is not None or backbone_checkpoint is not None:
            raise ValueError("pretrained= names the weights to load: give it alone, without checkpoint= or "
                             "backbone_checkpoint=.")
        if name is None:
            raise ValueError(f"pretrained={pretrained!r} needs the model name too, e.g. "
                             f"create_model('segnext_t', pretrained={pretrained!r}).")
        weights = pretrained_weights(name, pretrained)
        if weights.encoder_only:
            if num_classes is None:
                raise ValueError(f"pretrained={pretrained!r} is the encoder only: give num_classes for the new "
                                 f"decoder, e.g. create_model({name!r}, num_classes=19, pretrained={pretrained!r}).")
            backbone_checkpoint = fetch(weights)
        else:
            checkpoint = fetch(weights)
            ignore_mismatched_sizes = True
    if checkpoint is not None and backbone_checkpoint is not None:
        raise ValueError("give checkpoint= (the whole model) or backbone_checkpoint= (its encoder), not both.")

    reports: List[LoadReport] = []
    if checkpoint is not None:
        model, report = build_from_checkpoint(SegNeXt, _read_local_checkpoint(checkpoint), name=name,
                                              num_classes=num_classes, nmf_seed=nmf_seed,
                                              ignore_mismatched_sizes=ignore_mismatched_sizes,
                                              match_class_names=match_class_names, **overrides)
        reports.append(report)
    else:
        if name is None or num_classes is None:
            raise ValueError("create_model needs a model name and num_classes (or a checkpoint to read them from).")
        model = SegNeXt(variant_config(name, num_classes, **overrides),  # weights from the global RNG
                        nmf_seed=resolve_nmf_seed(nmf_seed))
        if backbone_checkpoint is not None:
            reports.append(load_encoder(model, read_checkpoint(backbone_checkpoint)))
    if pretrained is not None:
        for report in reports:
            report.source = f"{name}.{pretrained} ({report.source})"
    if output_loading_info:
        return model, reports
    for report in reports:
        report.warn()
    return model


def recorded_training_data(checkpoint) -> Optional[dict]:
    """What a model folder (a path, or the name of weights shipped in the package) says it was trained
    on (`save_model`'s training_data: dataset, split, frames per group); None for other checkpoints."""
    return model_record(checkpoint).get("training_data")


def model_record(checkpoint) -> Dict[str, dict]:
    """What a model folder (a path, or the name of weights shipped in the package) records beside its
    weights, as `save_model` wrote it: `training_data`, `metrics` (the dicts among config.json's
    entries); {} for other checkpoints."""
    checkpoint = resolve_checkpoint(checkpoint)
    if isinstance(checkpoint, str) and not os.path.exists(checkpoint):
        try:
            published = published_model(checkpoint)
        except ValueError:
            return {}
        if published is None or not published.bundled:
            return {}
        checkpoint = fetch(published)
    config = Path(checkpoint) / CONFIG_FILE
    if not config.is_file():
        return {}
    try:
        recorded = json.loads(config.read_text())
    except ValueError:
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {key: recorded[key] for key in ("training_data", "metrics") if isinstance(recorded.get(key), dict)}


def _read_local_checkpoint(checkpoint):
    """read_checkpoint; where the path that fails is also the name of published weights ("camvid", a
    folder in the working directory), the error says how to get those instead."""
    try:
        return read_checkpoint(checkpoint)
    except CheckpointError as error:
        try:
            published = published_model(checkpoint) if isinstance(checkpoint, str) else None
        except ValueError:  # a tag of several variants ("ade20k")
            published = None
        if published is None:
            raise
        raise CheckpointError(f"{error} A file or folder named {checkpoint!r} is here, and a path comes before "
                              f"the published weights of that name; for those, pass {published.name!r}.") from None
