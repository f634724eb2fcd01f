"""The four SegNeXt variants, declared as data.

Every architectural number lives in `SegNeXtConfig`; `VARIANTS` holds the values of the paper and of
the official configs (`local_configs/segnext/{tiny,small,base,large}`). A variant is built by
`segnext.create_model(name, num_classes, **overrides)`, where overrides are fields of this dataclass.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..utils import did_you_mean


@dataclass
class SegNeXtConfig:
    """The architecture of one SegNeXt model (and the class metadata saved with its weights).

    Args:
        variant: the variant it was built from ("segnext_t", "segnext_s", "segnext_b", "segnext_l").
        num_classes: outputs of the classifier.
        in_channels: channels of the input images (3: RGB, as the paper; 4 for RGB + near infrared,
            1 for grey, ...). Published weights load into any: the first convolution's RGB weights
            are summed for 1 channel and repeated for more (`segnext.models.loading.adapt_input_channels`).
        embed_dims: channels of the four MSCAN stages (strides 4, 8, 16, 32).
        depths: blocks per stage.
        mlp_ratios: hidden width of each stage's MLP, as a multiple of the stage width.
        drop_path_rate: stochastic depth at the last block; it grows linearly from 0 over all blocks.
        attention_kernel_size: the square depthwise conv every MSCA branch starts from (5).
        strip_kernel_sizes: the 1xk + kx1 strip-conv branches of MSCA (7, 11, 21); () keeps the
            square conv alone (the paper's ablation without the multi-scale branches).
        attention_channel_mixing: MSCA's 1x1 conv over the summed branches (False: the paper's
            ablation without it).
        attention_gating: MSCA's product of the attention map with its input (False: the paper's
            ablation without it; the map is then the output).
        attention: "msca", or "lka": VAN's large kernel attention instead of MSCA (the paper's
            comparison of the two; the four options above are MSCA's and stay at their defaults).
        decoder: "ham", the LightHamHead (the Hamburger's NMF over the squeezed stages), or "mlp": the
            all-MLP decoder of SegFormer instead (the paper's ablation of the decoder, over stages 0-3;
            `ham_channels` and the `nmf_*` fields are then unused).
        head_in_stages: the stages the decoder reads (indices into the four; 1, 2, 3 = strides 8, 16, 32;
            the paper's ablations: 0, 1, 2, 3 with the first stage, 3 for the last stage alone).
        head_channels: width after the decoder's align conv (the official head's `channels`; the
            all-MLP decoder's width).
        ham_channels: width of the Hamburger (squeeze output, NMF input).
        nmf_rank: rank R of the matrix decomposition (the official `MD_R`).
        nmf_train_steps: multiplicative-update steps in training (6).
        nmf_eval_steps: multiplicative-update steps in evaluation (7).
        group_norm_groups: groups of the decoder's GroupNorms (32).
        dropout_ratio: Dropout2d before the classifier (0.1).
        logit_temperature: the logits are divided by it (1.0: as trained). Temperature scaling (Guo et
            al., ICML 2017): `segnext calibrate` fits it so that the softmax probabilities say how
            often the model is right; the labels of a single-view test do not change.
        class_names: names of the classes, carried with the weights (None when unknown).
        palette: one [r, g, b] per class for colour maps (None when unknown).
        test_settings: how the model is tested, as plain data: the fields of
            `segnext.TestConfig` (normalisation mean/std of RGB pixels, resize scale, whole or
            slide, window and stride, scales, flip). Set by training and by `segnext convert`;
            None when unknown (then the official settings of the model's dataset apply).
    """

    variant: str
    num_classes: int = 150
    in_channels: int = 3
    embed_dims: Tuple[int, ...] = (32, 64, 160, 256)
    depths: Tuple[int, ...] = (3, 3, 5, 2)
    mlp_ratios: Tuple[int, ...] = (8, 8, 4, 4)
    drop_path_rate: float = 0.1
    attention_kernel_size: int = 5
    strip_kernel_sizes: Tuple[int, ...] = (7, 11, 21)
    attention_channel_mixing: bool = True
    attention_gating: bool = True
    attention: str = "msca"
    decoder: str = "ham"
    head_in_stages: Tuple[int, ...] = (1, 2, 3)
    head_channels: int = 256
    ham_channels: int = 256
    nmf_rank: int = 16
    nmf_train_steps: int = 6
    nmf_eval_steps: int = 7
    group_norm_groups: int = 32
    dropout_ratio: float = 0.1
    logit_temperature: float = 1.0
    class_names: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None
    test_settings: Optional[Dict[str, Any]] = None

    def __post_init__(self):
        try:
            count = None if isinstance(self.num_classes, bool) else operator.index(self.num_classes)
        except TypeError:
            count = None
        if count is None or count < 1:
            raise ValueError(f"num_classes must be a whole number of at least 1 (the classifier's outputs), got "
                             f"{self.num_classes!r}")
        self.num_classes = int(count)  # also from NumPy or tensor integers: the config is saved as JSON
        for field in _INT_FIELDS:  # the same for the architecture's whole numbers
            value = getattr(self, field)
            is_list = isinstance(value, (tuple, list))
            setattr(self, field, tuple(_as_int(v) for v in value) if is_list else _as_int(value))
        self._check_architecture()

    def _check_architecture(self) -> None:
        """A ValueError naming the field, where the numbers cannot make a network (before any is built)."""
        def whole(value, least: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= least

        def fail(field: str, needed: str) -> None:
            value = getattr(self, field)
            raise ValueError(f"SegNeXt option {field} must be {needed}, got "
                             f"{list(value) if isinstance(value, tuple) else value!r}")

        if not whole(self.in_channels, 1):
            fail("in_channels", "a whole number of at least 1 (3 for RGB images)")
        stages = len(self.embed_dims) if isinstance(self.embed_dims, (tuple, list)) else 0
        for field in ("embed_dims", "depths", "mlp_ratios"):
            values = getattr(self, field)
            if not isinstance(values, (tuple, list)) or not values or not all(whole(v, 1) for v in values):
                fail(field, "a list of whole numbers of at least 1, one per stage")
            if len(values) != stages:
                fail(field, f"one number per stage, as many as embed_dims has ({stages})")
        if not whole(self.attention_kernel_size, 1) or self.attention_kernel_size % 2 == 0:
            fail("attention_kernel_size", "an odd whole number (its 'same' padding needs one)")
        if not isinstance(self.strip_kernel_sizes, (tuple, list)) or \
                not all(whole(k, 1) and k % 2 for k in self.strip_kernel_sizes):
            fail("strip_kernel_sizes", "a list of odd whole numbers (their 'same' padding needs them), [] for none")
        for field in ("attention_channel_mixing", "attention_gating"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "true or false")
        if self.attention not in ATTENTIONS:
            fail("attention", f"one of {', '.join(ATTENTIONS)}")
        if self.attention != "msca":
            msca = {name: getattr(self, name) for name in _MSCA_FIELDS
                    if getattr(self, name) != getattr(SegNeXtConfig, name)}
            if msca:
                raise ValueError(f"SegNeXt option attention {self.attention!r} has no MSCA, so its options "
                                 f"{', '.join(msca)} do not apply: leave them out")
        if self.decoder not in DECODERS:
            fail("decoder", f"one of {', '.join(DECODERS)}")
        in_stages = self.head_in_stages
        if not isinstance(in_stages, (tuple, list)) or not in_stages or \
                not all(whole(i, 0) and i < stages for i in in_stages) or len(set(in_stages)) != len(in_stages):
            fail("head_in_stages", f"a list of distinct stage indices from 0 to {stages - 1}, at least one")
        for field in ("head_channels", "ham_channels", "nmf_rank", "group_norm_groups"):
            if not whole(getattr(self, field), 1):
                fail(field, "a whole number of at least 1")
        for field in ("head_channels", "ham_channels"):
            if getattr(self, field) % self.group_norm_groups:
                fail(field, f"a multiple of group_norm_groups ({self.group_norm_groups}), the GroupNorms' groups")
        for field in ("nmf_train_steps", "nmf_eval_steps"):
            if not whole(getattr(self, field), 0):
                fail(field, "a whole number of at least 0")
        temperature = self.logit_temperature
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0 < temperature < float("inf"):
            fail("logit_temperature", "a positive number (1.0: the logits as trained)")
        for field in ("drop_path_rate", "dropout_ratio"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                fail(field, "a number from 0 to below 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_saved_dict(self) -> dict:
        """`to_dict()` for config.json: the fields of `FIELDS_ADDED_LATER` only where they differ from
        their default, so that a model folder of the paper's architecture reads in earlier releases too."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in FIELDS_ADDED_LATER}
        return {k: v for k, v in self.to_dict().items() if k not in defaults or v != defaults[k]}

    @classmethod
    def from_dict(cls, data: dict) -> SegNeXtConfig:
        check_fields(data.keys(), where="config")
        return cls(**_with_tuples(data))


VARIANTS = {
    "segnext_t": dict(embed_dims=(32, 64, 160, 256), depths=(3, 3, 5, 2), drop_path_rate=0.1,
                      head_channels=256, ham_channels=256, nmf_rank=16),
    "segnext_s": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 4, 2), drop_path_rate=0.1,
                      head_channels=256, ham_channels=256, nmf_rank=16),
    "segnext_b": dict(embed_dims=(64, 128, 320, 512), depths=(3, 3, 12, 3), drop_path_rate=0.1,
                      head_channels=512, ham_channels=512, nmf_rank=64),
    "segnext_l": dict(embed_dims=(64, 128, 320, 512), depths=(3, 5, 27, 3), drop_path_rate=0.3,
                      head_channels=1024, ham_channels=1024, nmf_rank=64),
}

FIELDS = [f.name for f in dataclasses.fields(SegNeXtConfig)]
# Fields added after model folders were first written, each with a default that keeps the model of
# earlier releases; an earlier release refuses a field it does not know, so config.json names them
# only where they change the model (add every new field here).
FIELDS_ADDED_LATER = ("in_channels", "attention_channel_mixing", "attention_gating", "attention", "logit_temperature",
                      "decoder")
ATTENTIONS = ("msca", "lka")  # SegNeXt's multi-scale convolutional attention; VAN's large kernel attention
DECODERS = ("ham", "mlp")  # SegNeXt's LightHamHead; SegFormer's all-MLP decoder
_MSCA_FIELDS = ("attention_kernel_size", "strip_kernel_sizes", "attention_channel_mixing", "attention_gating")
_TUPLE_FIELDS = ("embed_dims", "depths", "mlp_ratios", "strip_kernel_sizes", "head_in_stages")
_INT_FIELDS = _TUPLE_FIELDS + ("in_channels", "attention_kernel_size", "head_channels", "ham_channels", "nmf_rank",
                               "nmf_train_steps", "nmf_eval_steps", "group_norm_groups")


def _as_int(value):
    """A NumPy or tensor integer as a Python int (what config.json can hold); anything else as it is."""
    if isinstance(value, int) or not hasattr(value, "__index__"):  # bool is an int: kept, refused later
        return value
    try:
        return operator.index(value)
    except TypeError:  # a tensor of floats, of several elements
        return value


def list_models() -> List[str]:
    return list(VARIANTS)


def check_fields(keys, where: str) -> None:
    """Raise a ValueError naming any key that is not a SegNeXtConfig field, with the closest one."""
    for key in keys:
        if key not in FIELDS:
            raise ValueError(f"Unknown {where} option {key!r}.{did_you_mean(key, FIELDS)} "
                             f"Valid options: {', '.join(FIELDS)}.")


def check_variant(name: str) -> None:
    """Raise a ValueError when `name` is not one of the four variants, with the closest one."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown model {name!r}.{did_you_mean(str(name), VARIANTS)} Available: "
                         f"{', '.join(VARIANTS)}.")


def variant_config(name: str, num_classes: int, **overrides: Any) -> SegNeXtConfig:
    """The config of variant `name` with `num_classes` classes and any field overridden."""
    check_variant(name)
    check_fields(overrides, where="model")
    return SegNeXtConfig(**_with_tuples({**VARIANTS[name], **overrides, "variant": name, "num_classes": num_classes}))


def _with_tuples(values: dict) -> dict:
    """JSON and YAML give lists; the config holds tuples."""
    return {k: tuple(v) if k in _TUPLE_FIELDS and v is not None else v for k, v in values.items()}
