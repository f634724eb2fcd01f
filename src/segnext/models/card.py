"""The model card (`README.md`) of a model folder: what the model is, its classes, where its
weights came from, how it scored and how to use it. The front matter is the Hugging Face Hub's, so
a folder pushed there is described and tagged."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional

from .configuration import VARIANTS, variant_config

CARD_FILE = "README.md"

_VARIANT_TITLES = {"segnext_t": "SegNeXt-T", "segnext_s": "SegNeXt-S", "segnext_b": "SegNeXt-B",
                   "segnext_l": "SegNeXt-L"}
_MAX_CLASSES_LISTED = 40
# Fields that are not the architecture the weights run through (training-only, or the classes')
_NOT_ARCHITECTURE = {"variant", "num_classes", "class_names", "palette", "test_settings", "drop_path_rate",
                     "dropout_ratio", "nmf_train_steps", "logit_temperature"}
# The card claims no licence of its own: the code is Apache-2.0, but trained weights are bound by
# their data and starting weights, which only their trainer knows (the Hub's `license:` is theirs to add).
TERMS = ("The segnext code that made and reads these weights is under the Apache License 2.0. The weights keep the "
         "terms of the data they were trained on and of any weights they started from; check those before using "
         "or sharing them.")


def model_card(config, parameters: int, source: Optional[str] = None,
               metrics: Optional[Dict[str, Any]] = None) -> str:
    """The card of a model with SegNeXtConfig `config` and `parameters` parameters."""
    title = _VARIANT_TITLES.get(config.variant, config.variant)
    lines = [
        "---",
        "library_name: segnext",
        "pipeline_tag: image-segmentation",
        "tags: [semantic-segmentation, segnext]",
        "---",
        "",
        f"# {title}, {config.num_classes} classes",
        "",
        f"SegNeXt (Guo et al., NeurIPS 2022, *SegNeXt: Rethinking Convolutional Attention Design for Semantic "
        f"Segmentation*): the {title} variant (`{config.variant}`, {parameters / 1e6:.1f} M parameters), an MSCAN "
        f"encoder with the {_DECODER_NAMES.get(config.decoder, config.decoder)} decoder, for {config.num_classes} "
        f"classes.",
        "",
    ]
    changed = architecture_changes(config)
    if changed:
        lines += [f"Its architecture is not the published {title}'s: " + ", ".join(changed) + ".", ""]
    if config.logit_temperature != 1:
        lines += [f"Its logits are divided by a temperature of {config.logit_temperature:.3f} (`logit_temperature`; "
                  f"temperature scaling, Guo et al., ICML 2017), so that its probabilities say how often it is "
                  f"right.", ""]
    lines += ["## Classes", ""]
    if config.class_names:
        shown = ", ".join(f"{i} {name}" for i, name in enumerate(config.class_names[:_MAX_CLASSES_LISTED]))
        more = len(config.class_names) - _MAX_CLASSES_LISTED
        lines.append(shown + (f", ... ({more} more in config.json)" if more > 0 else ""))
    else:
        lines.append(f"Not named (class ids 0 to {config.num_classes - 1}).")
    lines += ["", "## Weights", "", source or "Not recorded.", ""]
    if metrics:
        lines += ["## Evaluation", ""]
        where = " ".join(part for part in (metrics.get("dataset"), f"{metrics['split']} split" if "split" in metrics
                                           else None, f"({metrics['num_images']} images)" if "num_images" in metrics
                                           else None) if part)
        if where and metrics.get("seen_in_training"):
            lines += [f"On {where}, which it was trained on: a check that it learned them, not a measure of how "
                      f"it does on images it has not seen:", ""]
        elif where:
            lines += [f"On {where}:", ""]
        interval = metrics.get("interval") or {}
        if interval:
            level = f"{100 * interval.get('level', 0.95):.0f}%"
            lines += [f"| metric | value | {level} interval |", "|---|---:|---:|"]
            lines += [f"| {key} | {metrics[key]:.2f} | {_bounds(interval.get(key))} |"
                      for key in ("mIoU", "aAcc", "mAcc") if isinstance(metrics.get(key), (int, float))]
            units = "groups of images (video sequences, cities)" if interval.get("unit") == "group" else "images"
            lines += ["", f"The interval: over {interval.get('samples', 1000):,} resamples of the "
                          f"{interval.get('units', '?')} {units} scored (the percentile bootstrap), how far the "
                          f"score would move on another draw of such images"
                          + (f"; {interval['note']}." if interval.get("note") else ".")]
        else:
            lines += ["| metric | value |", "|---|---:|"]
            lines += [f"| {key} | {metrics[key]:.2f} |" for key in ("mIoU", "aAcc", "mAcc")
                      if isinstance(metrics.get(key), (int, float))]
        calibration = metrics.get("calibration") or {}
        if calibration:
            lines += ["", f"Confidence (the probability it gives its label): {calibration['mean_confidence']:.1f}% "
                          f"on average over the {calibration['pixels']:,} labelled pixels, for an accuracy of "
                          f"{calibration['accuracy']:.1f}% (expected calibration error {calibration['ECE']:.2f}%: 0 "
                          f"when the confidence is the accuracy)."]
        lines.append("")
    lines += ["## Test-time settings", ""]
    settings = config.test_settings
    if settings:
        lines.append(", ".join(f"{key} {value}" for key, value in settings.items()))
    else:
        lines.append("Not recorded: the official settings of the model's dataset apply.")
    lines += [
        "",
        "Inputs are RGB images; pixel values 0..255 are normalised as (pixel - mean) / std.",
        "",
        "## Use",
        "",
        "```python",
        "import segnext",
        "",
        'segmenter = segnext.Segmenter.from_checkpoint("THIS_FOLDER")   # or SegNeXt.from_pretrained("owner/name")',
        'labels = segmenter.predict("photo.jpg")                          # (H, W) class ids',
        "```",
        "",
        "Command line: `segnext predict --checkpoint THIS_FOLDER photos/ --overlay`.",
        "",
        "## Terms",
        "",
        TERMS,
        "",
    ]
    return "\n".join(lines)


_DECODER_NAMES = {"ham": "LightHamHead (NMF)", "mlp": "all-MLP (SegFormer's, the paper's ablation)"}


def architecture_changes(config) -> List[str]:
    """'field value (the variant's: value)' for each architecture field that differs from the variant's."""
    if config.variant not in VARIANTS:
        return []
    published = variant_config(config.variant, config.num_classes)
    return [f"`{field.name}` {_plain(getattr(config, field.name))} (the variant's: "
            f"{_plain(getattr(published, field.name))})" for field in dataclasses.fields(config)
            if field.name not in _NOT_ARCHITECTURE and getattr(config, field.name) != getattr(published, field.name)]


def _plain(value) -> str:
    """The value as config.json holds it: [7,11,21], false."""
    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))


def _bounds(bounds) -> str:
    if not bounds or None in bounds:
        return "n/a"
    return f"{bounds[0]:.2f} - {bounds[1]:.2f}"
