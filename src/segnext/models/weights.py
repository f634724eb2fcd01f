"""Reading and writing SegNeXt weights.

Formats read (all through `read_checkpoint`):
- the authors' MMSegmentation 0.x files: `{'meta': {CLASSES, PALETTE, ...}, 'state_dict': {backbone.*, decode_head.*}}`;
- MMSegmentation 1.x re-publications: the same with `mlp.dwconv.*` instead of `mlp.dwconv.dwconv.*`,
  and MMEngine's training-log metadata (`message_hub`) next to the weights;
- ImageNet MSCAN backbones (`mscan_t.pth`): un-prefixed backbone keys plus a `head.*` classifier;
- JSeg (Jittor) `.pkl` checkpoints (`segnext.models.jseg`);
- segnext training checkpoints (`iter_*.pt`, `best.pt`), with the run's test settings;
- the project's own format, a model folder: `config.json` (architecture, classes, palette, test
  settings), `model.safetensors` and a `README.md` model card (`save_model`);
- any of the above stored in fp16 (cast to fp32 on load) or wrapped by DataParallel (`module.`).

Pickled files are opened with `torch.load(weights_only=True)` only, `.pkl` files with an unpickler
that admits only arrays and plain containers: a file that would run code is refused before
anything in it runs.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..utils import atomic_write, did_you_mean, json_safe, user_path
from .card import CARD_FILE, model_card
from .configuration import VARIANTS
from .jseg import JSegFileError, jseg_tensors, read_jseg

CONFIG_FILE = "config.json"
STEM_WEIGHT = "backbone.patch_embed1.proj.0.weight"  # the first convolution: the only one that sees the image
WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "segnext"
FORMAT_VERSION = 1
TRAINING_FORMAT = "segnext-train"  # the "format" entry of segnext training checkpoints
INPUT_DESCRIPTION = ("images: RGB, pixel values 0..255 normalised as (pixel - mean) / std with config.test_settings' "
                     "mean and std; output: logits (num_classes, H, W)")


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
    test_settings: Optional[dict] = None  # how it was tested (a training checkpoint's evaluation section)
    notes: List[str] = field(default_factory=list)  # what was changed while reading, for summaries
    nmf_seed: Optional[int] = None  # the seed of the NMF bases it was saved with, when nmf_seed_saved
    nmf_seed_saved: bool = False


# "Unsupported class" is how PyTorch before 2.4 names a refused global.
_CODE_SIGNS = ("GLOBAL", "Unsupported class", "Can only create new object", "Can only build", "call reduce")

# Classes that MMEngine (MMSegmentation 1.x) checkpoints hold beside the weights: the training log's
# `message_hub` keeps HistoryBuffer objects of NumPy arrays. Their contents are never used here, so
# each is unpickled as `_Ignored`, which stores the pickled state and runs nothing.
_TOLERATED_METADATA = ("mmengine.logging.history_buffer.HistoryBuffer",)


class _Ignored:
    """Stands in for a metadata object of a foreign training framework."""

    def __setstate__(self, state):
        self.state = state


def _numpy_globals() -> List[Any]:
    import numpy as np

    dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64)
    return [np.zeros(1).__reduce__()[0], np.float32(0).__reduce__()[0], np.ndarray, np.dtype,
            *{type(np.dtype(d)) for d in dtypes}]


def _torch_load(path: Path) -> object:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            if not _only_tolerated_metadata(path):
                raise
            stand_ins = [(_Ignored, name) for name in _TOLERATED_METADATA]
            with torch.serialization.safe_globals(stand_ins + _numpy_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        # Only these WeightsUnpickler errors mean "the pickle names code to run"; others (e.g.
        # "Unsupported operand") come from bytes that are not a pickle at all.
        if any(sign in text for sign in _CODE_SIGNS):
            newer = ""
            if any(name in text for name in _TOLERATED_METADATA) and not hasattr(torch.serialization, "safe_globals"):
                newer = (f" (Here it is MMEngine's training log, which segnext skips safely with PyTorch 2.5 or "
                         f"newer; this is {torch.__version__}.)")
            raise CheckpointError(
                f"Refused to load {path}: it contains pickled Python objects other than tensors and plain "
                f"containers, which could run code when unpickled. segnext only reads checkpoints with "
                f"torch.load(weights_only=True). If the file comes from a source you trust, re-save just its "
                f"weights (torch.save({{'state_dict': state_dict}}, path)) and load that.{newer}"
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


def _only_tolerated_metadata(path: Path) -> bool:
    """Whether the only globals that torch.load refused are MMEngine metadata and NumPy arrays."""
    try:
        refused = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint, or unreadable: let the first error speak
        return False
    numpy_names = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
                   "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
    return bool(refused) and all(name in _TOLERATED_METADATA or name in numpy_names
                                 or name.startswith("numpy.dtypes.") for name in refused)


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
                f"{directory} is not a segnext model folder: {needed.name} is missing "
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
    notes: List[str] = []
    half = [key for key, value in state_dict.items() if value.is_floating_point() and value.dtype != torch.float32]
    if half:  # saved with save_model(..., half=True)
        state_dict = {key: value.float() if key in half else value for key, value in state_dict.items()}
        notes.append(f"cast {len(half)} tensors from half precision to float32")
    return Checkpoint(state_dict, "project", str(directory), config=config, notes=notes,
                      class_names=config.get("class_names"), palette=config.get("palette"),
                      test_settings=config.get("test_settings"),
                      **_saved_nmf_seed(meta, config_path))


def _saved_nmf_seed(values: dict, where) -> dict:
    """Checkpoint keywords for the `nmf_seed` entry of `values`, when it has one."""
    if "nmf_seed" not in values:
        return {}
    seed = values["nmf_seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise CheckpointError(f"{where}: nmf_seed must be an integer or null, got {seed!r}. Fix the file, or pass "
                              f"nmf_seed= when loading it.")
    return {"nmf_seed": seed, "nmf_seed_saved": True}


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


# What a state dict saved from a wrapped model puts before every key: DistributedDataParallel and
# DataParallel ("module."), torch.compile ("_orig_mod.").
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _normalise_keys(state_dict: Dict[str, torch.Tensor], notes: List[str]) -> Dict[str, torch.Tensor]:
    out = {}
    renamed = cast = 0
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):  # saved from inside DistributedDataParallel or torch.compile
            key = key.split(".", 1)[1]
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


def _read_pickle(path: Path) -> Tuple[Dict[str, torch.Tensor], dict, Optional[dict]]:
    """(tensors, meta, test settings) of a .pth/.pt file or a JSeg .pkl file. The test settings of a
    training checkpoint are its config's evaluation section (with the run's `nmf_seed`)."""
    if path.suffix == ".pkl":
        try:
            contents = read_jseg(path)
            tensors = jseg_tensors(contents, path)
        except JSegFileError as error:
            raise CheckpointError(str(error)) from None
        meta = contents.get("meta") if isinstance(contents, dict) and isinstance(contents.get("meta"), dict) else {}
        return tensors, meta, None
    obj = _torch_load(path)
    tensors, meta = _unwrap(obj, path)
    test_settings = None
    if isinstance(obj, dict) and obj.get("format") == TRAINING_FORMAT:
        evaluation = (obj.get("config") or {}).get("evaluation")
        test_settings = dict(evaluation) if isinstance(evaluation, dict) else None
    return tensors, meta, test_settings


def read_checkpoint(path) -> Checkpoint:
    """Read any supported checkpoint into a state dict with the project's (= official 0.x) key names."""
    given, path = str(path), user_path(path)
    if not path.exists():
        if re.fullmatch(r"[\w.-]+/[\w.-]+", given) and not path.parent.is_dir():
            hint = f" For a model on the Hugging Face Hub, write hf://{given}."
        else:  # a typo beside the file meant, or a reminder of what a checkpoint can be
            nearby = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
            hint = did_you_mean(path.name, nearby) or (
                " Give a model folder, a .pth or .safetensors file, hf://owner/name, or the name of published "
                "weights (segnext models --pretrained lists them).")
        raise FileNotFoundError(f"Checkpoint {path} does not exist.{hint}")
    if path.is_dir():
        return _read_project_dir(path)
    if path.suffix == ".safetensors":
        return _read_project_dir(path.parent)
    tensors, meta, test_settings = _read_pickle(path)
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
                      palette=[list(map(int, c)) for c in palette] if palette else None,
                      test_settings=test_settings, notes=notes, **_saved_nmf_seed(test_settings or {}, path))


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
    if STEM_WEIGHT in state_dict:
        arch["in_channels"] = state_dict[STEM_WEIGHT].shape[1]
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


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside the wrappers a training script holds: DistributedDataParallel, DataParallel,
    torch.compile."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _check_model_folder_to_write(directory: Path) -> None:
    """A ValueError where saving would replace files that are not a model's: a README.md, config.json
    or model.safetensors in a folder that is not a segnext model folder (a project's own README)."""
    if (directory / CONFIG_FILE).is_file():
        try:
            if json.loads((directory / CONFIG_FILE).read_text()).get("format") == FORMAT_NAME:
                return  # a model folder: saved over, as a run saves its final model again
        except (ValueError, AttributeError, OSError):
            pass
    clashing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if (directory / name).exists()]
    if clashing:
        raise ValueError(f"{directory} holds {', '.join(clashing)} but is not a segnext model folder: saving the model "
                         f"there would replace {'them' if len(clashing) > 1 else 'it'}. Save it to a new folder")


def save_model(model: nn.Module, directory, *, source: Optional[str] = None,
               metrics: Optional[Dict[str, Any]] = None, training_data: Optional[Dict[str, Any]] = None,
               half: bool = False) -> Path:
    """Save `model` as a model folder: `config.json`, `model.safetensors` and a `README.md` card.

    config.json holds the architecture, the classes (`class_names`, `palette`, and `id2label` /
    `label2id` as Hugging Face names them), the test settings (`model.config.test_settings`:
    normalisation, resize, whole/slide, flip) and the model's `nmf_seed` (the NMF bases it is
    tested with); `segnext.create_model(checkpoint=directory)`,
    `Segmenter.from_checkpoint` and the commands read it back without being told any of it.
    source: where the weights came from, for the card (e.g. "trained with segnext train ...").
    metrics: the evaluation of these weights, for the card and config.json (e.g. results.json's
        mIoU, aAcc, mAcc with `dataset`, `split`, `num_images`; `seen_in_training: True` where the
        split was part of the training data, as for a final model trained on train + val).
    training_data: what the weights were trained on, for `segnext eval` to say when it scores frames
        of it (e.g. {"dataset": "camvid", "split": "train", "groups": {"0001TP": 62, ...}}: the frames
        per video sequence or city, None where the names carry no groups).
    half: store the floating-point tensors in float16 (half the size, for shipping); every reader
        casts them back to float32.
    """
    from safetensors.torch import save_file

    model = _unwrapped(model)
    if getattr(model, "reparameterized", False) or getattr(getattr(model, "model", None), "reparameterized", False):
        raise ValueError("this model was reparameterized for inference (BatchNorm folded): its weights no longer "
                         "follow the official layout. Save the model before optimize_for_inference/reparameterize.")
    if not (hasattr(model, "config") and hasattr(model, "nmf_seed")):
        raise TypeError(f"save_model saves a SegNeXt (segnext.create_model), got {type(model).__name__}")
    directory = user_path(directory)
    _check_model_folder_to_write(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    meta: Dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_saved_dict(),
                            "nmf_seed": model.nmf_seed, "input": INPUT_DESCRIPTION}
    if config.class_names:
        meta["id2label"] = {str(i): name for i, name in enumerate(config.class_names)}
        meta["label2id"] = {name: i for i, name in enumerate(config.class_names)}
    if source:
        meta["source"] = source
    if metrics:
        meta["metrics"] = metrics
    if training_data:
        meta["training_data"] = training_data
    parameters = sum(p.numel() for p in model.parameters())
    card = model_card(config, parameters, source, metrics)
    state_dict = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state_dict = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state_dict, tmp, metadata={"format": FORMAT_NAME}),
                 size=sum(v.numel() * v.element_size() for v in state_dict.values()))
    text = json.dumps(json_safe(meta), indent=2) + "\n"
    atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))
    atomic_write(directory / CARD_FILE, lambda tmp: Path(tmp).write_text(card))
    return directory
