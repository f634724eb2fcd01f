"""Reading and writing SegNeXt weights.

Formats read (all through `read_checkpoint`):
- the authors' MMSegmentation 0.x files: `{'meta': {CLASSES, PALETTE, ...}, 'state_dict': {backbone.*, decode_head.*}}`;
- MMSegmentation 1.x re-publications: the same with `mlp.dwconv.*` instead of `mlp.dwconv.dwconv.*`;
- ImageNet MSCAN backbones (`mscan_t.pth`): un-prefixed backbone keys plus a `head.*` classifier;
- the project's own format: a directory holding `config.json` and `model.safetensors`;
- any of the above stored in fp16 (cast to fp32 on load) or wrapped by DataParallel (`module.`).

Pickled files are opened with `torch.load(weights_only=True)` only: a file that would run code is
refused before anything in it runs.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..utils import atomic_write
from .configuration import VARIANTS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "segnext"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message says what to do."""


@dataclass
class Checkpoint:
    state_dict: Dict[str, torch.Tensor]
    kind: str  # "segmentor", "backbone" or "project"
    path: str
    config: Optional[dict] = None  # the project's config.json "config" entry
    class_names: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None
    notes: List[str] = field(default_factory=list)  # what was changed while reading, for summaries


_CODE_SIGNS = ("GLOBAL", "Can only create new object", "Can only build", "call reduce")


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        # Only these WeightsUnpickler errors mean "the pickle names code to run"; others (e.g.
        # "Unsupported operand") come from bytes that are not a pickle at all.
        if any(sign in text for sign in _CODE_SIGNS):
            raise CheckpointError(
                f"Refused to load {path}: it contains pickled Python objects other than tensors and plain "
                f"containers, which could run code when unpickled. segnext only reads checkpoints with "
                f"torch.load(weights_only=True). If the file comes from a source you trust, re-save just its "
                f"weights (torch.save({{'state_dict': state_dict}}, path)) and load that."
            ) from None
        detail = text.split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if text.strip() else ""
        raise CheckpointError(
            f"Cannot read {path}: the file is corrupt or not a PyTorch checkpoint written by torch.save "
            f"({detail}). Nothing in it was run. Re-save the weights with torch.save and load that."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(
            f"Cannot read {path}: the file is truncated, corrupt or not a PyTorch checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
            f"Download or copy it again and check its size."
        ) from None
    except Exception as error:  # random bytes make the unpickler fail in arbitrary ways (KeyError, ...)
        raise CheckpointError(
            f"Cannot read {path}: it is not a PyTorch checkpoint ({type(error).__name__}: {error})."
        ) from None


def _read_project_dir(directory: Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.exists() and ((directory / "final_model").is_dir() or (directory / "checkpoints").is_dir()):
        found = [str(directory / name) for name in ("final_model", "checkpoints/best.pt")
                 if (directory / name).exists()]
        found += [str(p) for p in sorted((directory / "checkpoints").glob("iter_*.pt"))[-1:]]
        raise CheckpointError(f"{directory} is a training run folder, not a model. Pass one of the models in it: "
                              f"{', '.join(found) or 'none was written yet'}.")
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise CheckpointError(
                f"{directory} is not a segnext checkpoint directory: {needed.name} is missing "
                f"(expected {CONFIG_FILE} and {WEIGHTS_FILE}, as written by segnext.save_model)."
            )
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"Cannot parse {config_path}: {error}. The file is corrupt.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME or "config" not in meta:
        raise CheckpointError(f"{config_path} is not a segnext config (no 'format': 'segnext' and 'config').")
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CheckpointError(f"Cannot read {weights_path}: {error}. The file is truncated or corrupt.") from None
    config = meta["config"]
    return Checkpoint(state_dict, "project", str(directory), config=config,
                      class_names=config.get("class_names"), palette=config.get("palette"))


def _unwrap(obj: object, path: Path) -> Tuple[Dict[str, torch.Tensor], dict]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict or a checkpoint dict.")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors: it is not a model checkpoint.")
    return tensors, meta


def _normalise_keys(state_dict: Dict[str, torch.Tensor], notes: List[str]) -> Dict[str, torch.Tensor]:
    out = {}
    renamed = cast = 0
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        # MMSegmentation 1.x folded DWConv into a plain conv: mlp.dwconv.weight -> mlp.dwconv.dwconv.weight
        new_key = re.sub(r"\.mlp\.dwconv\.(weight|bias)$", r".mlp.dwconv.dwconv.\1", key)
        renamed += new_key != key
        if value.is_floating_point() and value.dtype != torch.float32:
            value = value.float()
            cast += 1
        out[new_key] = value
    if renamed:
        notes.append(f"renamed {renamed} MMSegmentation 1.x keys (mlp.dwconv.* -> mlp.dwconv.dwconv.*)")
    if cast:
        notes.append(f"cast {cast} tensors from half precision to float32")
    return out


def read_checkpoint(path) -> Checkpoint:
    """Read any supported checkpoint into a state dict with the project's (= official 0.x) key names."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    if path.is_dir():
        return _read_project_dir(path)
    if path.suffix == ".safetensors":
        return _read_project_dir(path.parent)
    tensors, meta = _unwrap(_torch_load(path), path)
    notes: List[str] = []
    state_dict = _normalise_keys(tensors, notes)
    if any(k.startswith(("backbone.", "decode_head.")) for k in state_dict):
        kind = "segmentor"
    else:
        kind = "backbone"
        dropped = sorted(k for k in state_dict if k.startswith("head."))
        state_dict = {"backbone." + k: v for k, v in state_dict.items() if not k.startswith("head.")}
        if dropped:
            notes.append(f"dropped the ImageNet classifier ({', '.join(dropped)})")
    dataset_meta = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), dict) else {}
    class_names = meta.get("CLASSES") or dataset_meta.get("classes")
    palette = meta.get("PALETTE") or dataset_meta.get("palette")
    return Checkpoint(state_dict, kind, str(path),
                      class_names=list(class_names) if class_names else None,
                      palette=[list(map(int, c)) for c in palette] if palette else None, notes=notes)


def infer_architecture(state_dict: Dict[str, torch.Tensor]) -> dict:
    """Widths, depths and head sizes read off a state dict (to name the variant a file holds)."""
    arch: dict = {}
    dims, depths = [], []
    stage = 1
    while f"backbone.norm{stage}.weight" in state_dict:
        dims.append(state_dict[f"backbone.norm{stage}.weight"].shape[0])
        prefix = f"backbone.block{stage}."
        depths.append(len({k[len(prefix):].split(".")[0] for k in state_dict if k.startswith(prefix)}))
        stage += 1
    arch["embed_dims"], arch["depths"] = tuple(dims), tuple(depths)
    if "decode_head.conv_seg.weight" in state_dict:
        arch["num_classes"] = state_dict["decode_head.conv_seg.weight"].shape[0]
        arch["head_channels"] = state_dict["decode_head.conv_seg.weight"].shape[1]
    if "decode_head.squeeze.conv.weight" in state_dict:
        arch["ham_channels"] = state_dict["decode_head.squeeze.conv.weight"].shape[0]
    return arch


def infer_variant(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    arch = infer_architecture(state_dict)
    for name, spec in VARIANTS.items():
        same_encoder = tuple(spec["embed_dims"]) == arch["embed_dims"] and tuple(spec["depths"]) == arch["depths"]
        if same_encoder and arch.get("ham_channels", spec["ham_channels"]) == spec["ham_channels"]:
            return name
    return None


def load_into(model: nn.Module, checkpoint: Checkpoint, prefix_filter: Optional[str] = None) -> None:
    """Strictly copy `checkpoint` into `model` (only keys under `prefix_filter` when given).

    Every difference is collected first and reported together, with what to do about it.
    """
    expected = model.state_dict()
    if prefix_filter:
        expected = {k: v for k, v in expected.items() if k.startswith(prefix_filter)}
    given = checkpoint.state_dict
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
        for k in set(given) & set(expected) if given[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(model, checkpoint, missing, unexpected, wrong_shape))
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(given[key])


def _mismatch_message(model, checkpoint: Checkpoint, missing, unexpected, wrong_shape) -> str:
    lines = [f"Checkpoint {checkpoint.path} does not fit the model."]
    config = getattr(model, "config", None)
    arch = infer_architecture(checkpoint.state_dict)
    if config is not None:
        found = infer_variant(checkpoint.state_dict)
        if arch.get("embed_dims") and (tuple(arch["embed_dims"]) != tuple(config.embed_dims)
                                       or tuple(arch["depths"]) != tuple(config.depths)):
            lines.append(
                f"It holds a different variant ({found or 'unknown'}: widths {arch['embed_dims']}, depths "
                f"{arch['depths']}) from the model ({config.variant}: widths {tuple(config.embed_dims)}, depths "
                f"{tuple(config.depths)}). Create the model as {found or 'the matching variant'}."
            )
        elif "num_classes" in arch and arch["num_classes"] != config.num_classes:
            lines.append(
                f"It was trained for {arch['num_classes']} classes but the model has {config.num_classes}. "
                f"Pass num_classes={arch['num_classes']}, or load only the encoder with backbone_checkpoint= "
                f"to fine-tune on {config.num_classes} classes."
            )
    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
            lines.append(f"{len(keys)} {title}: {shown}")
    return "\n".join(lines)


def save_model(model: nn.Module, directory) -> Path:
    """Save `model` as a directory with `config.json` and `model.safetensors`.

    `segnext.create_model(checkpoint=directory)` reads it back without naming the variant.
    """
    from safetensors.torch import save_file

    if getattr(model, "reparameterized", False):
        raise ValueError("this model was reparameterized for inference (BatchNorm folded): its weights no longer "
                         "follow the official layout. Save the model before optimize_for_inference/reparameterize.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": model.config.to_dict()}
    state_dict = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state_dict, tmp, metadata={"format": FORMAT_NAME}))
    atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return directory
