"""The four SegNeXt variants, declared as data.

Every architectural number lives in `SegNeXtConfig`; `VARIANTS` holds the values of the paper and of
the official configs (`local_configs/segnext/{tiny,small,base,large}`). A variant is built by
`segnext.create_model(name, num_classes, **overrides)`, where overrides are fields of this dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple


@dataclass
class SegNeXtConfig:
    variant: str
    num_classes: int = 150
    # MSCAN encoder
    embed_dims: Tuple[int, ...] = (32, 64, 160, 256)
    depths: Tuple[int, ...] = (3, 3, 5, 2)
    mlp_ratios: Tuple[int, ...] = (8, 8, 4, 4)
    drop_path_rate: float = 0.1
    attention_kernel_size: int = 5  # the depthwise conv every MSCA branch starts from
    strip_kernel_sizes: Tuple[int, ...] = (7, 11, 21)
    # LightHamHead decoder
    head_in_stages: Tuple[int, ...] = (1, 2, 3)  # stages at strides 8, 16, 32
    head_channels: int = 256  # the "channels" of the official head (align conv output)
    ham_channels: int = 256
    nmf_rank: int = 16  # MD_R
    nmf_train_steps: int = 6
    nmf_eval_steps: int = 7
    group_norm_groups: int = 32
    dropout_ratio: float = 0.1
    # Dataset metadata carried with the weights so that a checkpoint is self-describing.
    class_names: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SegNeXtConfig":
        check_keys(data.keys(), cls, where="config")
        data = dict(data)
        for name in TUPLE_FIELDS:
            if name in data and data[name] is not None:
                data[name] = tuple(data[name])
        return cls(**data)


TUPLE_FIELDS = ("embed_dims", "depths", "mlp_ratios", "strip_kernel_sizes", "head_in_stages")

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


def list_models() -> List[str]:
    return list(VARIANTS)


def closest(name: str, choices: Sequence[str]) -> str:
    """A 'did you mean' suffix for error messages, empty when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_keys(keys, cls, where: str) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in valid:
            raise ValueError(
                f"Unknown {where} option {key!r}.{closest(key, valid)} Valid options: {', '.join(valid)}."
            )


def variant_config(name: str, num_classes: int, **overrides: Any) -> SegNeXtConfig:
    if name not in VARIANTS:
        raise ValueError(f"Unknown model {name!r}.{closest(name, VARIANTS)} Available: {', '.join(VARIANTS)}.")
    check_keys(overrides, SegNeXtConfig, where="model")
    values = {**VARIANTS[name], **overrides, "variant": name, "num_classes": num_classes}
    for key in TUPLE_FIELDS:
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return SegNeXtConfig(**values)
