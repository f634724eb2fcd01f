"""Memory allocation on CPU: fewer page faults for large tensors.

Two measured problems and their fixes:

1. Large inference outputs from a small pool of reusable buffers (`empty`, `resize_bilinear`).
A SegNeXt forward returns logits at the input size: 150 classes at 512x512 is 157 MB of float32,
allocated anew at every call. glibc serves an allocation that large with a fresh `mmap`, so the
first write to each 4 KiB page traps into the kernel: measured on the development machine, the
bilinear resize that writes such a buffer takes 60 ms into fresh memory and 9.7 ms into memory
that is already mapped. `empty` hands out large buffers from a pool: a buffer returns to the pool
when no tensor, view or NumPy array uses it any more, and the next call writes into mapped memory.
The pool keeps at most `POOL_BYTES` of idle buffers and never keeps one larger than
`POOL_MAX_BUFFER_BYTES` (those are freed with their tensor); `release_pool()` drops the idle ones.
(Backing the buffers with transparent huge pages was tried: the same 9.7 ms once mapped, but a
fresh 157 MB buffer then took 340 ms instead of 60 ms on this virtual machine, so it is not done.)

2. Freed memory kept for reuse (`reuse_freed_memory`). glibc returns every allocation above
32 MiB (and, after frees, the top of its heap above twice its current mmap threshold) to the
kernel at once; a training step of SegNeXt-T on two 512x512 crops allocates dozens of such
activations and gradients, and page-faulted 180,000 times (700 MB) per step. Raising the two
thresholds keeps that memory in the process for the next step: 1.13 -> 0.89 s per step, with the
same peak memory (1.61 vs 1.64 GB). It is process-wide, so the command-line tool and `train()`
call it, not the library at import; a glibc malloc setting given in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
import weakref
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["empty", "resize_bilinear", "release_pool", "reuse_freed_memory"]

# Smaller tensors are left to the allocator: below glibc's largest dynamic mmap threshold (32 MiB)
# glibc mostly reuses freed memory of that size, and pooling them would fragment the pool.
MIN_BYTES = 32 << 20
POOL_BYTES = 512 << 20
POOL_MAX_BUFFER_BYTES = 256 << 20


class _PooledBuffer:
    """A NumPy buffer and a weak reference to the view of it that is currently handed out.

    Tensors are made with `torch.from_numpy` over that view: every tensor, view or `.numpy()`
    array derived from it keeps the view alive, so the buffer is idle exactly when the weak
    reference is dead.
    """

    def __init__(self, nbytes: int):
        self.storage = np.empty(nbytes, dtype=np.uint8)
        self.user: Optional[weakref.ref] = None

    @property
    def capacity(self) -> int:
        return self.storage.nbytes

    def idle(self) -> bool:
        return self.user is None or self.user() is None

    def take(self, dtype: np.dtype, count: int) -> np.ndarray:
        array = self.storage[:count * dtype.itemsize].view(dtype)
        self.user = weakref.ref(array)
        return array


_pool: List[_PooledBuffer] = []  # least recently used first
_pool_lock = threading.Lock()


def _pooled_array(dtype: np.dtype, count: int) -> np.ndarray:
    nbytes = count * dtype.itemsize
    with _pool_lock:
        for entry in _pool:
            if nbytes <= entry.capacity <= 2 * nbytes and entry.idle():
                _pool.remove(entry)
                _pool.append(entry)
                return entry.take(dtype, count)
        entry = _PooledBuffer(nbytes)
        array = entry.take(dtype, count)
        if entry.capacity <= POOL_MAX_BUFFER_BYTES:  # larger ones are freed with their tensor
            _pool.append(entry)
            total = sum(item.capacity for item in _pool)
            for item in [item for item in _pool if item.idle()]:  # drop idle ones, oldest first
                if total <= POOL_BYTES:
                    break
                _pool.remove(item)
                total -= item.capacity
        return array


def release_pool() -> None:
    """Give the idle pooled buffers back to the system (buffers in use stay with their tensors)."""
    with _pool_lock:
        _pool[:] = [entry for entry in _pool if not entry.idle()]


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
                 torch.int64: np.int64, torch.int32: np.int32, torch.uint8: np.uint8}


def empty(shape: Sequence[int], dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    """An uninitialised CPU tensor; a large one comes from the buffer pool.

    The tensor is an ordinary tensor in every respect except that its storage cannot grow
    (`resize_` to a larger size fails); its buffer goes back to the pool when nothing uses it.
    """
    shape = [int(size) for size in shape]
    count = 1
    for size in shape:
        count *= size
    itemsize = torch.empty((), dtype=dtype).element_size()
    if count * itemsize < MIN_BYTES or dtype not in _NUMPY_DTYPES:
        memory_format = torch.channels_last if channels_last and len(shape) == 4 else torch.contiguous_format
        return torch.empty(shape, dtype=dtype, memory_format=memory_format)
    flat = torch.from_numpy(_pooled_array(np.dtype(_NUMPY_DTYPES[dtype]), count))
    if channels_last and len(shape) == 4:
        batch, channels, height, width = shape
        return flat.view(batch, height, width, channels).permute(0, 3, 1, 2)
    return flat.view(shape)


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """`F.interpolate(x, size, mode="bilinear", align_corners=False)`, bit for bit, written into
    a pooled buffer on CPU. The result keeps the memory format of `x`."""
    size = [int(s) for s in size]
    if x.device.type != "cpu" or x.dim() != 4 or x.requires_grad:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    out = empty((x.shape[0], x.shape[1], *size), dtype=x.dtype, channels_last=channels_last)
    return torch.ops.aten.upsample_bilinear2d.out(x, size, False, None, None, out=out)


# mallopt parameters (malloc.h) and the values chosen: tensors up to 256 MiB come from the heap, and
# up to 512 MiB of freed heap top stays mapped (measured: same step time as 1 GiB / 1 GiB).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 512 << 20
_ENVIRONMENT_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_reuse_done = False


def freed_memory_is_reused() -> bool:
    """Whether `reuse_freed_memory` has tuned this process's malloc."""
    return _reuse_done


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep large freed blocks for reuse instead of unmapping them.

    Returns True if the setting was applied (now or by an earlier call); False on platforms
    without glibc or when the environment already configures malloc (left as the user set it).
    """
    global _reuse_done
    if _reuse_done:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _ENVIRONMENT_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        applied = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and applied
    except (OSError, AttributeError):
        return False
    _reuse_done = applied
    return applied
