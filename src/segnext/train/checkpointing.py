"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A training checkpoint is a dict of tensors and plain Python values written with `torch.save` and read
with `torch.load(weights_only=True)` (nothing in it can run code):

    format, format_version, iteration, elapsed_seconds, best (mIoU, iteration),
    model (state dict), optimizer (state dict), grad_scaler (state dict or None),
    rng: one entry per process rank {torch, cuda, numpy, python}, world_size,
    config (the run's config as plain dicts), meta (CLASSES, PALETTE: class names for create_model)

Files live in WORK_DIR/checkpoints/: `iter_00001000.pt` (the last `keep` of them) and `best.pt` (the
best mIoU so far). Each is written to a temporary file in the same directory and renamed over the
target (`os.replace` is atomic), so a process killed during a save leaves the previous checkpoints
intact; leftover temporary files are removed at the next start.

`segnext.create_model(checkpoint="iter_00001000.pt")` reads the weights of a training checkpoint too.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..checkpoint import _atomic_write

FORMAT = "segnext-train"
FORMAT_VERSION = 1
_ITER_FILE = re.compile(r"^iter_(\d+)\.pt$")


class TrainingCheckpointError(ValueError):
    pass


# --- RNG states as tensors and plain lists (weights_only-loadable) ---------------------------------

def capture_rng_state() -> Dict[str, Any]:
    bit_generator, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": bit_generator, "keys": [int(k) for k in keys], "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["bit_generator"], np.array(numpy_state["keys"], dtype=np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))


# --- files ------------------------------------------------------------------------------------------

def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:08d}.pt"


def save(state: Dict[str, Any], path: Path) -> Path:
    """Write `state` atomically: the file at `path` is either the old one or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load(path: Path) -> Dict[str, Any]:
    path = Path(path)
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
