"""Small helpers every layer uses: a "did you mean" for error messages, an atomic file writer, a
JSON cleaner, optional dependencies with an install hint, and device names. Nothing here imports
torch at module level."""

from __future__ import annotations

import difflib
import importlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" Did you mean 'x'?" for the choice closest to `name`, or "" when none is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def atomic_write(path: Union[str, os.PathLike], write: Callable[[Path], Any]) -> Path:
    """Call `write(temporary_path)` and rename the result to `path`.

    The temporary file sits in the same folder, so the rename is atomic: a process killed while
    writing leaves the previous file (or none), never a half-written one. The file gets the
    permissions the umask gives new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def json_safe(value: Any) -> Any:
    """`value` with tuples as lists and NaN/infinity as None, so that `json.dumps` writes valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


class MissingDependency(ValueError):
    """An optional package a feature needs is not installed; the message says how to get it."""


def require(module: str, extra: str, purpose: str, package: Optional[str] = None):
    """Import and return `module`, or raise MissingDependency naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{purpose} needs the {package or module} package: pip install 'segnext[{extra}]' "
                                f"(or pip install {package or module})") from None


def resolve_device(name: Optional[str] = "auto", index: int = 0):
    """A torch.device from a user's name: "auto" picks CUDA, then Apple's MPS, then the CPU; an
    unavailable one is an error that says what this PyTorch build offers."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", index)
        return torch.device("mps") if mps_ok else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if mps_ok else [])
    if device.type == "cuda" and not torch.cuda.is_available():
        built = f"this PyTorch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None else \
            f"this PyTorch ({torch.__version__}, CUDA {torch.version.cuda}) sees no CUDA device"
        raise ValueError(f"device {name!r}: {built}; available here: {', '.join(available)}. Use --device auto, or "
                         f"install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/).")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not mps_ok:
        raise ValueError(f"device {name!r}: Apple's MPS is not available here; available: {', '.join(available)}")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", index)
    return device
