"""What differs between the PyTorch releases segnext supports (2.1 and newer), in one place.

Each function uses PyTorch's own API where the installed release has it and its older equivalent
otherwise, so that the rest of the code reads as it would for the newest release.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Optional, Tuple

import torch

MIN_TORCH = (2, 1)


def torch_version() -> Tuple[int, int]:
    """(major, minor) of the installed PyTorch ('2.4.1+cpu' -> (2, 4))."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def is_compiling() -> bool:
    """Whether torch.compile is tracing the code that calls this (torch.compiler.is_compiling, 2.3+)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    dynamo = getattr(torch, "_dynamo", None)
    return bool(dynamo is not None and dynamo.is_compiling())


def is_autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for `device_type` (the argument exists from PyTorch 2.4)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # before 2.4: no argument, CUDA's state; the CPU's has its own function
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def cpu_float16_autocast() -> bool:
    """Whether autocast can run CPU code in float16 (PyTorch 2.4+; bfloat16 works on every release)."""
    return torch_version() >= (2, 4)


def fused_adamw(device_type: str) -> bool:
    """Whether to try torch.optim.AdamW(fused=True) on the device: not on the CPU before PyTorch 2.4,
    which accepts it and then fails at the first step (other devices refuse it when it is built)."""
    return device_type != "cpu" or torch_version() >= (2, 4)


def grad_scaler(device_type: str, enabled: bool):
    """The loss scaler of float16 training: torch.amp.GradScaler(device_type) from 2.3, before that
    CUDA's (disabled, it is a no-op on every device)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    if enabled and device_type != "cuda":
        raise ValueError(f"float16 training on {device_type} needs PyTorch 2.4 or newer (this is {torch.__version__}); "
                         f"use bfloat16 (train.amp_dtype=bf16) or a newer PyTorch")
    return torch.cuda.amp.GradScaler(enabled=enabled)


def dist_error() -> type:
    """torch.distributed.DistError (2.2+), the type of failed collectives; RuntimeError before."""
    return getattr(torch.distributed, "DistError", RuntimeError)


def onnx_export_options() -> dict:
    """The TorchScript-based exporter: `dynamo=False` where torch.onnx.export has the choice (2.5+),
    where the newest releases would otherwise pick the dynamo exporter."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def store_has_key(store, key: str) -> bool:
    """Whether a torch.distributed Store holds `key` (Store.check, 2.2+; before it, a wait that
    returns at once)."""
    if hasattr(store, "check"):
        return store.check([key])
    try:
        store.wait([key], timedelta(milliseconds=1))
    except RuntimeError:  # the wait timed out: no such key
        return False
    return True


def numpy_problem() -> Optional[str]:
    """What to do when this PyTorch cannot exchange arrays with the installed NumPy (a release built
    for NumPy 1, before 2.3, beside NumPy 2: PyTorch says only "Numpy is not available"); None when it can."""
    import numpy

    try:
        torch.from_numpy(numpy.zeros(1))
    except RuntimeError:
        return (f"this PyTorch ({torch.__version__}) cannot exchange arrays with NumPy {numpy.__version__}: PyTorch "
                f"releases before 2.3 were built for NumPy 1. Install NumPy 1 (pip install 'numpy<2') or PyTorch "
                f"2.3 or newer.")
    return None
