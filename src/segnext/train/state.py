"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A training checkpoint is a dict of tensors and plain Python values written with `torch.save` and read
with `torch.load(weights_only=True)` (nothing in it can run code):

    format, format_version, iteration, elapsed_seconds, best (mIoU, iteration),
    model (state dict), optimizer (state dict), grad_scaler (state dict or None), world_size,
    config (the run's config as plain dicts), meta (CLASSES, PALETTE: class names for create_model),
    unreadable_files ([dataset index, error] of the training files skipped so far, data.on_unreadable),
    evaluation_due (the periodic evaluation of this iteration was stopped before its end: the resumed
    run does it first)

No random-number state is needed: every random draw of a step (samples, augmentation, drop path,
NMF bases, dropout) is seeded from the run's seed and the step's position in the sample stream.

Files live in WORK_DIR/checkpoints/: `iter_00001000.pt` (the last `keep` of them) and `best.pt` (the
best mIoU so far). Each is written to a temporary file in the same directory and renamed over the
target (`os.replace` is atomic), so a process killed during a save leaves the previous checkpoints
intact; leftover temporary files are removed at the next start.

`segnext.create_model(checkpoint="iter_00001000.pt")` reads the weights of a training checkpoint too.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..utils import DiskFullError, atomic_write, json_safe
from .loggers import flatten

FORMAT = "segnext-train"
FORMAT_VERSION = 1
_ITER_FILE = re.compile(r"^iter_(\d+)\.pt$")


class TrainingCheckpointError(ValueError):
    pass


# --- files ------------------------------------------------------------------------------------------

def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:08d}.pt"


def training_state(model: nn.Module, optimizer: torch.optim.Optimizer, scaler, iteration: int, elapsed: float,
                   best: Dict[str, Any], world_size: int, config: dict,
                   unreadable_files: Sequence[Tuple[int, str]] = (), evaluation_due: bool = False) -> Dict[str, Any]:
    """The dict a training checkpoint holds (see the module docstring)."""
    names, palette = model.config.class_names, model.config.palette
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "iteration": iteration, "elapsed_seconds": elapsed,
        "best": dict(best), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "world_size": world_size, "config": config,
        "meta": {"CLASSES": list(names or []), "PALETTE": list(palette or [])},
        "unreadable_files": [[int(index), str(message)] for index, message in unreadable_files],
        "evaluation_due": bool(evaluation_due),
    }


def save(state: Dict[str, Any], path: Path) -> Path:
    """Write `state` atomically: the file at `path` is either the old one or the complete new one.
    On a full disk, DiskFullError names the file, its size and the last complete checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        # Through a Python file: torch.save given a path reports a full disk as a bare RuntimeError
        # ("unexpected pos ..."), through a file object as OSError(ENOSPC).
        with open(temporary, "wb") as file:
            torch.save(state, file)

    try:
        atomic_write(path, write, size=tensor_bytes(state))
    except DiskFullError as error:
        kept = latest_checkpoint(path.parent)
        raise DiskFullError(f"{error} The last complete checkpoint, {kept or 'none yet'}, is intact: training resumes "
                            f"from it.") from None
    return path


def tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a nest of dicts and lists: about the size of its checkpoint."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(item) for item in value)
    return 0


def load(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            raise TrainingCheckpointError(
                f"{path} is a model folder (weights only), not a training checkpoint: it cannot resume a run. To "
                f"start a new run from these weights set model.checkpoint={path}; to resume, pass a file of a run's "
                f"checkpoints/ folder (iter_*.pt, best.pt).")
        latest = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        hint = f"pass {latest}" if latest else "it holds no iter_*.pt or best.pt"
        raise TrainingCheckpointError(f"{path} is a folder, not a training checkpoint file: {hint}.")
    if not path.is_file():
        raise FileNotFoundError(f"Training checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign files: say which and what to do
        raise TrainingCheckpointError(
            f"Cannot read training checkpoint {path} ({type(error).__name__}: {str(error).splitlines()[0]}). "
            f"Resume from an earlier checkpoint with --resume PATH."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainingCheckpointError(
            f"{path} is not a segnext training checkpoint (no 'format': '{FORMAT}'). To start training from "
            f"model weights, set model.checkpoint=PATH (or model.backbone_checkpoint=PATH) instead of --resume."
        )
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise TrainingCheckpointError(f"{path} was written by a newer segnext (format version "
                                      f"{state['format_version']}); upgrade segnext to resume from it.")
    return state


def iteration_checkpoints(directory: Path) -> List[Path]:
    """iter_*.pt files in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _ITER_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: Path) -> Optional[Path]:
    """The newest iteration checkpoint that loads (an unreadable file is skipped with a warning)."""
    for path in reversed(iteration_checkpoints(directory)):
        try:
            load(path)
            return path
        except TrainingCheckpointError as error:
            print(f"warning: skipping {path}: {error}")
    return None


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest `keep` iteration checkpoints (best.pt is a separate file)."""
    for path in iteration_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files of a save that was interrupted (the process was killed mid-write)."""
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.glob(".*.tmp"):
            path.unlink(missing_ok=True)


def prepare_work_dir(work_dir: Path, config_yaml: str, keep_previous: bool = True) -> None:
    """Create WORK_DIR/checkpoints, drop temporaries of an interrupted save, write config.yaml.
    keep_previous=False (starting over in a used work dir): the earlier run's checkpoints and log
    are moved aside, out of the way of resuming, not deleted."""
    checkpoints = work_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(checkpoints)
    if not keep_previous and iteration_checkpoints(checkpoints):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        checkpoints.rename(work_dir / f"checkpoints_{stamp}")
        checkpoints.mkdir()
        if (work_dir / "log.jsonl").exists():
            (work_dir / "log.jsonl").rename(work_dir / f"log_{stamp}.jsonl")
        print(f"Not resuming: the earlier run's checkpoints and log were moved to {work_dir / f'checkpoints_{stamp}'} "
              f"and log_{stamp}.jsonl.")
    (work_dir / "config.yaml").write_text(config_yaml)


def resume_path(checkpoints: Path, resume, env) -> Optional[Path]:
    """The checkpoint to resume from: `resume` itself when it is a path; with True the newest in
    `checkpoints` (rank 0's choice, for every process); None to start from scratch."""
    from .distributed import broadcast_object

    if resume is False or resume is None:
        return None
    if resume is True:
        found = latest_checkpoint(checkpoints) if env.is_main else None
        found = broadcast_object(str(found) if found else None, env)
        return Path(found) if found else None
    return Path(resume)


def check_resumable(saved: Dict[str, Any], path: Path, model: nn.Module, config, num_classes: int) -> None:
    """A TrainingCheckpointError unless the training checkpoint `saved` (read from `path`) is of the
    same model and classes as this run: another run's work dir given to another config, say."""
    saved_model = saved.get("config", {}).get("model", {})
    classifier = saved.get("model", {}).get("decode_head.conv_seg.bias")
    saved_classes = saved_model.get("num_classes") or (len(classifier) if classifier is not None else None)
    for before, now, what in ((saved_model.get("name"), config.model.name, "{} but this run trains {}"),
                              (saved_classes, num_classes, "{} classes but this run has {}")):
        if before not in (None, now):
            raise TrainingCheckpointError(
                f"Cannot resume from {path}: it trained {what.format(before, now)}. Use a new --work-dir for a "
                f"different run (or --no-resume to start over there: the earlier run's checkpoints and log are "
                f"moved aside).")
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in saved.get("model", {}).items()}
    differ = sorted(key for key in set(expected) | set(found) if expected.get(key) != found.get(key))
    if differ:
        shown = ", ".join(f"{key} {found.get(key, 'absent')} here {expected.get(key, 'absent')}" for key in differ[:3])
        raise TrainingCheckpointError(
            f"Cannot resume from {path}: its model differs from this config's in {len(differ)} tensor(s) ({shown}"
            f"{', ...' if len(differ) > 3 else ''}). Use a new --work-dir for a different run (or --no-resume to "
            f"start over there: the earlier run's checkpoints and log are moved aside).")


def restore(saved: Dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scaler, config) -> dict:
    """Load a training checkpoint (as `load` read it, `check_resumable` passed it) into model, optimizer
    and grad scaler; returns {iteration, elapsed_seconds, best, unreadable_files, evaluation_due,
    changed_settings}.
    Settings other than the model and classes may change (say, a longer train.max_iters)."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if saved.get("grad_scaler"):
        scaler.load_state_dict(saved["grad_scaler"])
    return {"iteration": int(saved["iteration"]), "elapsed_seconds": float(saved.get("elapsed_seconds", 0.0)),
            "best": dict(saved.get("best") or {}), "unreadable_files": list(saved.get("unreadable_files") or []),
            "evaluation_due": bool(saved.get("evaluation_due", False)),
            "changed_settings": changed_settings(saved["config"], config.to_dict()) if saved.get("config") else []}


def changed_settings(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """'key: old -> new' for each setting that differs between two configs (as Config.to_dict gives them)."""
    old, new = (flatten(json.loads(json.dumps(json_safe(config)))) for config in (before, after))
    missing = "(unset)"
    return [f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}" for key in sorted(set(old) | set(new))
            if old.get(key, missing) != new.get(key, missing)]
