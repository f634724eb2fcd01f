"""Memory allocation on CPU: fewer page faults for large tensors (Linux).

Two measured problems and their fixes:

1. Large inference outputs on transparent huge pages (`empty`, `resize_bilinear`).

A SegNeXt forward returns logits at the input size: 150 classes at 512x512 is 157 MB of float32,
allocated anew at every call. glibc serves an allocation that large with a fresh `mmap`, so the
first write to each 4 KiB page traps into the kernel: measured on the development machine, filling
such a buffer costs 35 ms, more than the 10 ms of the bilinear resize that writes it. Backing the
buffer with 2 MiB pages (`madvise(MADV_HUGEPAGE)`, honoured when the kernel's THP mode is
`madvise` or `always`) makes it 512x fewer faults: the whole resize then takes 13 ms instead of 61.
PyTorch can do the same for every allocation with `THP_MEM_ALLOC_ENABLE=1`, but only if set before
`import torch`; this module does it for the outputs that need it, from any process.

Small tensors, other platforms and kernels without THP get a plain `torch.empty`.

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
import mmap
import os
import platform
import sys
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["empty", "resize_bilinear", "reuse_freed_memory"]

HUGE_PAGE_BYTES = 2 << 20
# Below glibc's largest dynamic mmap threshold (32 MiB) freed memory is reused without new faults.
MIN_BYTES = 32 << 20


def _huge_pages_possible() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as mode:
            return "[never]" not in mode.read()
    except OSError:
        return False


HUGE_PAGES = _huge_pages_possible()


def empty(shape: Sequence[int], dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    """An uninitialised CPU tensor, on huge pages when it is large enough to profit.

    The tensor owns its memory like any other (freed with the tensor); it is an ordinary tensor in
    every respect except that its storage cannot grow (`resize_` to a larger size fails).
    """
    shape = [int(size) for size in shape]
    count = 1
    for size in shape:
        count *= size
    itemsize = torch.empty((), dtype=dtype).element_size()
    if not HUGE_PAGES or count * itemsize < MIN_BYTES:
        memory_format = torch.channels_last if channels_last and len(shape) == 4 else torch.contiguous_format
        return torch.empty(shape, dtype=dtype, memory_format=memory_format)
    buffer = mmap.mmap(-1, count * itemsize + HUGE_PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.madvise(mmap.MADV_HUGEPAGE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    offset = -address % HUGE_PAGE_BYTES  # start on a huge-page boundary (the kernel usually already does)
    flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=offset)  # keeps `buffer` alive
    if channels_last and len(shape) == 4:
        batch, channels, height, width = shape
        return flat.view(batch, height, width, channels).permute(0, 3, 1, 2)
    return flat.view(shape)


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """`F.interpolate(x, size, mode="bilinear", align_corners=False)`, bit for bit, written into
    a huge-page buffer on CPU. The result keeps the memory format of `x`."""
    size = [int(s) for s in size]
    if x.device.type != "cpu" or x.dim() != 4 or x.requires_grad or not HUGE_PAGES:
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
