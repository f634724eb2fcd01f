"""Large CPU outputs from a small pool of reusable buffers (part of `optimize_for_inference`).

A SegNeXt forward returns logits at the input size: 150 classes at 512x512 is 157 MB of float32,
allocated anew at every call. glibc serves an allocation that large with a fresh `mmap`, so the
first write to each 4 KiB page traps into the kernel, which costs several times the resize itself
(BENCHMARKS.md). `empty` hands out large buffers from a pool: a buffer returns to the pool when no
tensor, view or NumPy array uses it any more, and the next call writes into memory that is
already mapped. The pool keeps at most `POOL_BYTES` of idle buffers and never keeps one larger
than `POOL_MAX_BUFFER_BYTES` (those are freed with their tensor); `release_pool()` drops the idle
ones.
"""

from __future__ import annotations

import threading
import weakref
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["empty", "resize_bilinear", "release_pool"]

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
