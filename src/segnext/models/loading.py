"""Putting a checkpoint's tensors into a model: strictly, or with a new classifier for fine-tuning.

Loading is strict: a missing or unexpected tensor, or one of another shape, is an error that lists
them all and says what to do, and a failed load changes nothing. The one exception is asked for by
name: `new_classifier=True` (`create_model(..., ignore_mismatched_sizes=True)`, Hugging Face's
name) lets the classifier `decode_head.conv_seg` differ in its number of classes, and leaves it
at its fresh initialisation; everything else must still fit. Where both the model and the
checkpoint name their classes, the classifier rows of the classes they share by name (case and
spacing aside: ADE20K's "car" is CamVid's "Car") are copied, so those classes start where the
checkpoint's training left them (`match_class_names=False`: every row starts anew). The same holds
for a classifier of the checkpoint's size whose classes come in another order: each row is the
checkpoint's row of its class's name, so a dataset that lists CamVid's 11 classes in its own
order does not start with "Car" predicted by the row of "Sky". A class whose name the checkpoint
lacks keeps the checkpoint's row at its index when that row's class is not one of the model's (a
class renamed in place), else starts anew.

Every load returns a `LoadReport` (which tensors came from the file, which are new), so that a
fine-tuning run can say what it starts from: `create_model(..., output_loading_info=True)` returns
them and `segnext train` prints them. Without it, re-initialised tensors are logged as a warning
on the "segnext" logger (timm's and Hugging Face's convention).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..constants import DEFAULT_NMF_SEED, SAVED_NMF_SEED
from .configuration import SegNeXtConfig, variant_config
from .weights import STEM_WEIGHT, Checkpoint, CheckpointError, infer_architecture, infer_variant

logger = logging.getLogger("segnext")

CLASSIFIER_PREFIX = "decode_head.conv_seg."
_PARTS = {"backbone": "the encoder", "decode_head": "the decoder"}


@dataclass
class LoadReport:
    """What one checkpoint gave a model.

    source: the file, folder or published name the tensors came from.
    loaded: names of the model's tensors copied from it.
    new: names of the model's tensors it did not give (they keep their fresh initialisation).
    reinitialised: the part of `new` that the checkpoint has with another shape: the classifier,
        for a model with other classes than the checkpoint's.
    """

    source: str
    loaded: List[str]
    new: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    checkpoint_classes: Optional[int] = None
    model_classes: Optional[int] = None
    kept_classes: List[str] = field(default_factory=list)  # re-initialised classifier rows copied by class name
    # A classifier of the checkpoint's size whose classes come in another order (matched by name):
    moved_classes: List[str] = field(default_factory=list)  # rows taken from another index of the checkpoint's
    new_classes: List[str] = field(default_factory=list)  # rows of classes the checkpoint lacks: fresh
    renamed_classes: List[str] = field(default_factory=list)  # "name (checkpoint's name)": the row at its index
    adapted_channels: Optional[Tuple[int, int]] = None  # the first conv's (checkpoint's, model's) input channels

    def summary(self) -> str:
        """One line for a log: how many tensors were loaded, which are new."""
        total = len(self.loaded) + len(self.new)
        text = f"{self.source}: loaded {len(self.loaded)} of the model's {total} tensors"
        if self.reinitialised:
            text += (f"; re-initialised for {self.model_classes} classes (the checkpoint has "
                     f"{self.checkpoint_classes}): {', '.join(self.reinitialised)}")
        if self.kept_classes:
            text += (f", except the rows of the {len(self.kept_classes)} classes the checkpoint has too, copied "
                     f"from it: {', '.join(self.kept_classes)}")
        for classes, template in (
                (self.moved_classes, "classifier rows put in the model's class order by name ({count} from another "
                                     "index of the checkpoint's: {names})"),
                (self.renamed_classes, "classifier rows kept at their index for {count} that the checkpoint names "
                                       "otherwise: {names}"),
                (self.new_classes, "classifier rows started anew for {count} that the checkpoint does not name: "
                                   "{names}")):
            if classes:
                text += "; " + template.format(count=_classes(classes), names=", ".join(classes))
        if self.adapted_channels:
            given, channels = self.adapted_channels
            how = "summed" if channels == 1 else f"repeated, scaled by {given}/{channels}"
            text += f"; the first convolution's weights for {given} input channels adapted to {channels} ({how})"
        others = [name for name in self.new if name not in self.reinitialised]
        if others:
            groups: Dict[str, int] = {}
            for name in others:
                part = name.split(".")[0]
                groups[part] = groups.get(part, 0) + 1
            described = ", ".join(f"{_PARTS.get(part, part)} ({count} tensors, {part}.*)"
                                  for part, count in groups.items())
            text += f"; new, from random initialisation: {described}"
        return text

    def warn(self) -> None:
        """Log the re-initialised tensors as a warning (the model must be trained before use)."""
        if self.reinitialised:
            kept = (f" (but for the rows of {', '.join(self.kept_classes)}, copied from it by class name)"
                    if self.kept_classes else "")
            logger.warning(f"Re-initialised {', '.join(self.reinitialised)} for {self.model_classes} classes{kept}: "
                           f"{self.source} was trained for {self.checkpoint_classes}. Train the model on the new "
                           f"classes before using its predictions.")
        elif self.new_classes:
            logger.warning(f"Re-initialised the classifier rows of {', '.join(self.new_classes)}: {self.source} does "
                           f"not name these classes. Train the model on them before using its predictions.")


def adapt_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """The weights of a convolution over RGB images (O, 3, kh, kw) for `channels` input channels: their
    sum over the three for one channel (a grey image then gives what its RGB copy gave), else the
    three repeated over the channels and scaled by 3 / channels (where the channels are a multiple of
    three, the RGB image repeated over them gives what it gave), as timm and
    segmentation_models_pytorch adapt pretrained stems."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-channels // 3)
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (3.0 / channels)


def load_into(model: nn.Module, checkpoint: Checkpoint, prefix_filter: Optional[str] = None,
              new_classifier: bool = False, match_class_names: bool = True) -> LoadReport:
    """Copy `checkpoint` into `model` (only the keys under `prefix_filter` when given).

    Strict: every difference is collected first and reported together, with what to do about it,
    and nothing is copied then. new_classifier: the classifier may have another number of classes
    than the checkpoint's; it then keeps its initialisation, but for the rows of the classes both
    name (match_class_names), which are copied.
    """
    everything = model.state_dict()
    expected = {k: v for k, v in everything.items() if not prefix_filter or k.startswith(prefix_filter)}
    given = checkpoint.state_dict
    adapted_channels = None  # RGB weights given to a model of other input channels: (3, its channels)
    if STEM_WEIGHT in given and STEM_WEIGHT in expected and given[STEM_WEIGHT].shape[1] == 3 != \
            expected[STEM_WEIGHT].shape[1] and given[STEM_WEIGHT].shape[0] == expected[STEM_WEIGHT].shape[0]:
        adapted_channels = (3, expected[STEM_WEIGHT].shape[1])
        given = {**given, STEM_WEIGHT: adapt_input_channels(given[STEM_WEIGHT], adapted_channels[1])}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    different = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    reinitialised = [k for k in expected if k in different and new_classifier and k.startswith(CLASSIFIER_PREFIX)]
    wrong_shape = [f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
                   for k in different if k not in reinitialised]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(model, checkpoint, missing, unexpected, wrong_shape))
    loaded = [k for k in expected if k not in reinitialised]
    if not loaded:
        raise CheckpointError(f"Nothing in {checkpoint.path} fits the model: no tensor was loaded.")
    fresh = {key: expected[key].clone() for key in (CLASSIFIER_PREFIX + "weight", CLASSIFIER_PREFIX + "bias")
             if key in expected and key in loaded}
    with torch.no_grad():
        for key in loaded:
            expected[key].copy_(given[key])
    rows = classifier_rows(model, checkpoint) if match_class_names else None
    kept, moved, new_rows, renamed = [], [], [], []
    if rows is not None:
        names, checkpoint_names = model.config.class_names, checkpoint.class_names
        if reinitialised:  # another number of classes: the rows of shared names, the rest stay fresh
            kept = copy_classifier_rows(model, checkpoint, rows, fresh=None)
        elif fresh:
            if rows != list(range(len(rows))):  # the same number in another order
                copy_classifier_rows(model, checkpoint, rows, fresh=fresh)
            moved = [names[row] for row, source in enumerate(rows) if source is not None and source != row]
            new_rows = [names[row] for row, source in enumerate(rows) if source is None]
            renamed = [f"{names[row]} ({checkpoint_names[row].strip()})" for row, source in enumerate(rows)
                       if source == row and _class_key(names[row]) != _class_key(checkpoint_names[row])]
    arch = infer_architecture(given)
    return LoadReport(checkpoint.path, loaded, new=[k for k in everything if k not in loaded],
                      reinitialised=reinitialised, checkpoint_classes=arch.get("num_classes"),
                      model_classes=getattr(getattr(model, "config", None), "num_classes", None), kept_classes=kept,
                      moved_classes=moved, new_classes=new_rows, renamed_classes=renamed,
                      adapted_channels=adapted_channels)


def _classes(names: List[str]) -> str:
    return f"{len(names)} class" if len(names) == 1 else f"{len(names)} classes"


def _class_key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def classifier_rows(model: nn.Module, checkpoint: Checkpoint) -> Optional[List[Optional[int]]]:
    """For each of the model's classes, the checkpoint's classifier row it starts from: the row of the
    class of the same name (case and spacing aside); else, where both have as many classes, the row
    at the same index when its class is not one of the model's (a class renamed in place); else None
    (a new class). None when either side does not name its classes."""
    names = getattr(getattr(model, "config", None), "class_names", None)
    weight = checkpoint.state_dict.get(CLASSIFIER_PREFIX + "weight")
    if not names or not checkpoint.class_names or weight is None or len(checkpoint.class_names) != len(weight):
        return None
    if len(names) != model.state_dict()[CLASSIFIER_PREFIX + "weight"].shape[0]:
        return None
    row_of: Dict[str, int] = {}
    for row, name in enumerate(checkpoint.class_names):
        row_of.setdefault(_class_key(name), row)
    model_keys = {_class_key(name) for name in names}
    same_size = len(names) == len(checkpoint.class_names)
    rows: List[Optional[int]] = []
    for row, name in enumerate(names):
        source = row_of.get(_class_key(name))
        if source is None and same_size and _class_key(checkpoint.class_names[row]) not in model_keys:
            source = row
        rows.append(source)
    return rows


def copy_classifier_rows(model: nn.Module, checkpoint: Checkpoint, rows: List[Optional[int]],
                         fresh: Optional[Dict[str, torch.Tensor]]) -> List[str]:
    """Set each classifier row (weight and bias) of the model to the checkpoint's row `rows[i]`; a row
    without one (None) to `fresh` (the model's initialisation, when given; else it is left as it is).
    Returns the model's names of the classes whose rows came from the checkpoint."""
    names = model.config.class_names
    state = model.state_dict()
    with torch.no_grad():
        for part in ("weight", "bias"):
            key = CLASSIFIER_PREFIX + part
            source_rows = checkpoint.state_dict[key]
            target = state[key]
            for row, source in enumerate(rows):
                if source is not None:
                    target[row].copy_(source_rows[source])
                elif fresh is not None:
                    target[row].copy_(fresh[key][row])
    return [name for name, source in zip(names, rows) if source is not None]


_DECODER_TITLES = {"ham": "the LightHamHead (Hamburger)", "mlp": "the all-MLP decoder"}


def _decoder_of(state_dict) -> Optional[str]:
    """"ham" or "mlp", as a state dict's decoder tensors name it; None where it holds no decoder."""
    if any(key.startswith("decode_head.hamburger.") for key in state_dict):
        return "ham"
    if any(key.startswith("decode_head.fusion_conv.") for key in state_dict):
        return "mlp"
    return None


def _mismatch_message(model, checkpoint: Checkpoint, missing, unexpected, wrong_shape) -> str:
    lines = [f"Checkpoint {checkpoint.path} does not fit the model."]
    config = getattr(model, "config", None)
    arch = infer_architecture(checkpoint.state_dict)
    if not set(checkpoint.state_dict) & set(model.state_dict()):
        lines.append(f"None of its {len(checkpoint.state_dict)} tensors has a name the model knows: it is not a "
                     f"SegNeXt checkpoint in a layout segnext reads.")
    elif config is not None:
        found = infer_variant(checkpoint.state_dict)
        if arch.get("embed_dims") and (tuple(arch["embed_dims"]) != tuple(config.embed_dims)
                                       or tuple(arch["depths"]) != tuple(config.depths)):
            lines.append(
                f"It holds a different variant ({found or 'unknown'}: widths {arch['embed_dims']}, depths "
                f"{arch['depths']}) from the model ({config.variant}: widths {tuple(config.embed_dims)}, depths "
                f"{tuple(config.depths)}). Create the model as {found or 'the matching variant'}."
            )
        elif _decoder_of(checkpoint.state_dict) not in (None, getattr(config, "decoder", "ham")):
            lines.append(
                f"Its decoder is {_DECODER_TITLES[_decoder_of(checkpoint.state_dict)]} and the model's "
                f"{_DECODER_TITLES[config.decoder]} (decoder={config.decoder!r}): load its encoder alone with "
                f"backbone_checkpoint= (model.backbone_checkpoint in a config), or build the model with its decoder."
            )
        elif "num_classes" in arch and arch["num_classes"] != config.num_classes:
            lines.append(
                f"It was trained for {arch['num_classes']} classes but the model has {config.num_classes}. "
                f"Pass num_classes={arch['num_classes']}, or ignore_mismatched_sizes=True to fine-tune on "
                f"{config.num_classes} classes with a new classifier."
            )
    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
            lines.append(f"{len(keys)} {title}: {shown}")
    return "\n".join(lines)


def checkpoint_config(checkpoint: Checkpoint, name: Optional[str] = None, **overrides) -> SegNeXtConfig:
    """The config a segmentation checkpoint was saved with: read from a model folder, else from its
    weights (variant, classes) and metadata (class names, palette, test settings). `overrides`
    (SegNeXtConfig fields) win."""
    if checkpoint.kind == "project":
        saved = checkpoint.config
        if name is not None and name != saved.get("variant"):
            raise CheckpointError(f"{checkpoint.path} holds {saved.get('variant')}, not {name}. Leave the name out to "
                                  f"use the saved variant.")
        return SegNeXtConfig.from_dict({**saved, **overrides})
    arch = infer_architecture(checkpoint.state_dict)
    name = name or infer_variant(checkpoint.state_dict)
    if name is None:
        raise CheckpointError(f"Cannot tell which SegNeXt variant {checkpoint.path} holds; pass its name "
                              f"(segnext_t, segnext_s, segnext_b or segnext_l).")
    if "num_classes" not in arch:
        raise CheckpointError(f"{checkpoint.path} has no classifier (decode_head.conv_seg): it is not a whole "
                              f"segmentation model.")
    num_classes = arch["num_classes"]
    if "in_channels" not in overrides and arch.get("in_channels", 3) != 3:  # weights of a model of other inputs
        overrides = {**overrides, "in_channels": arch["in_channels"]}
    config = variant_config(name, num_classes, **overrides)
    if "class_names" not in overrides and checkpoint.class_names and len(checkpoint.class_names) == num_classes:
        config.class_names = list(checkpoint.class_names)
        if "palette" not in overrides and checkpoint.palette and len(checkpoint.palette) == num_classes:
            config.palette = [list(c) for c in checkpoint.palette]
    if "test_settings" not in overrides and checkpoint.test_settings:
        config.test_settings = dict(checkpoint.test_settings)
    return config


def build_from_checkpoint(model_class, checkpoint: Checkpoint, *, name: Optional[str] = None,
                          num_classes: Optional[int] = None, nmf_seed=SAVED_NMF_SEED,
                          ignore_mismatched_sizes: bool = False, match_class_names: bool = True,
                          **overrides) -> Tuple[nn.Module, LoadReport]:
    """`model_class(config)` with the weights of the segmentation checkpoint `checkpoint`.

    nmf_seed: an int, None, or "saved" (the checkpoint's own, else DEFAULT_NMF_SEED; `resolve_nmf_seed`).
    num_classes: None keeps the checkpoint's classes. Another number needs
        ignore_mismatched_sizes=True: every tensor is loaded except the classifier, which starts
        anew (fine-tuning on new classes); the class names and palette then come from `overrides`,
        and the rows of the classes the checkpoint names too are copied (match_class_names).
    """
    if checkpoint.kind == "backbone":
        raise CheckpointError(
            f"{checkpoint.path} holds only an encoder (ImageNet MSCAN weights, no decode_head). Pass it as "
            f"backbone_checkpoint= instead of checkpoint= (or use pretrained='imagenet' for the published ones).")
    config = checkpoint_config(checkpoint, name, **overrides)
    if num_classes is not None and num_classes != config.num_classes:
        if not ignore_mismatched_sizes:
            raise CheckpointError(
                f"{checkpoint.path} was trained for {config.num_classes} classes but num_classes={num_classes} was "
                f"asked. To fine-tune it on {num_classes} classes, pass ignore_mismatched_sizes=True: every tensor "
                f"is loaded except the classifier ({CLASSIFIER_PREFIX}weight and bias), which starts anew. To use "
                f"it as it was trained, leave num_classes out.")
        # A temperature fitted to the old classifier (segnext calibrate) says nothing of the new one.
        config = dataclasses.replace(config, num_classes=num_classes, class_names=overrides.get("class_names"),
                                     palette=overrides.get("palette"),
                                     logit_temperature=overrides.get("logit_temperature", 1.0))
    with torch.random.fork_rng(devices=[]):  # the weights are overwritten: leave the caller's RNG alone
        model = model_class(config, nmf_seed=resolve_nmf_seed(nmf_seed, checkpoint))
    return model, load_into(model, checkpoint, new_classifier=ignore_mismatched_sizes,
                            match_class_names=match_class_names)


def resolve_nmf_seed(nmf_seed, checkpoint: Optional[Checkpoint] = None) -> Optional[int]:
    """The seed a model gets: `nmf_seed` itself (an int, or None for the official random bases), or for
    "saved" the seed `checkpoint` was saved with, else DEFAULT_NMF_SEED."""
    if nmf_seed == SAVED_NMF_SEED:
        return checkpoint.nmf_seed if checkpoint is not None and checkpoint.nmf_seed_saved else DEFAULT_NMF_SEED
    if nmf_seed is not None and (isinstance(nmf_seed, bool) or not isinstance(nmf_seed, int)):
        raise TypeError(f"nmf_seed must be an int, None or {SAVED_NMF_SEED!r}, got {nmf_seed!r}")
    return nmf_seed


def load_encoder(model: nn.Module, checkpoint: Checkpoint) -> LoadReport:
    """Load the encoder of `checkpoint` (an ImageNet MSCAN file, or the `backbone.*` part of a whole
    segmentation checkpoint) into `model`; its decoder keeps its initialisation."""
    if checkpoint.kind != "backbone":
        checkpoint = dataclasses.replace(checkpoint, state_dict={k: v for k, v in checkpoint.state_dict.items()
                                                                 if k.startswith("backbone.")})
    return load_into(model, checkpoint, prefix_filter="backbone.")
