"""Process-wide settings for a process that runs segnext's work: the `segnext` command sets them
(`segnext.cli.main`), the library never does. A Python program that wants the same can call
`configure_process()` itself, once, at start-up.

- glibc's malloc keeps large freed blocks for reuse (`reuse_freed_memory`). By default glibc
  returns every allocation above 32 MiB (and, after frees, the top of its heap above twice its
  current mmap threshold) to the kernel at once; a training step of SegNeXt-T allocates dozens of
  such activations and gradients, and the next step page-faults all of them in again
  (BENCHMARKS.md: about a fifth of a CPU training step, and much of MMSegmentation's inference
  time). A malloc setting given in the environment is left as the user set it.
- Pillow's decompression-bomb limit is raised to 400 million pixels, for large aerial images
  (iSAID originals reach about 20000 x 5000).
- The number of torch threads, when given.
- `use_device`: on a GPU, cuDNN's autotuning as `segnext.devices` decides it for CUDA.
- `StopRequests`: SIGINT/SIGTERM ask a training run to save a checkpoint and stop.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
import threading
from typing import Optional

MAX_IMAGE_PIXELS = 400_000_000

# mallopt parameters (malloc.h) and the values chosen: tensors up to 256 MiB come from the heap, and
# up to 512 MiB of freed heap top stays mapped.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 512 << 20
_MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_reuse_done = False


def configure_process(threads: Optional[int] = None) -> None:
    """Apply the settings above to this process (threads: torch CPU threads, None leaves torch's)."""
    from PIL import Image

    reuse_freed_memory()
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    if threads:
        import torch

        torch.set_num_threads(threads)


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep large freed blocks for reuse instead of unmapping them.

    Returns True if the setting was applied (now or by an earlier call); False on platforms
    without glibc or when the environment already configures malloc.
    """
    global _reuse_done
    if _reuse_done:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _MALLOC_ENVIRONMENT):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        applied = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and applied
    except (OSError, AttributeError):
        return False
    _reuse_done = applied
    return applied


def use_device(device) -> None:
    """Process-wide settings for computing on `device` (a name or torch.device; "auto" as
    `segnext.utils.resolve_device`): on CUDA, `torch.backends.cudnn.benchmark` from the device table."""
    from .devices import device_defaults
    from .utils import resolve_device

    device = resolve_device(device)
    if device.type == "cuda":
        import torch

        torch.backends.cudnn.benchmark = device_defaults(device).cudnn_benchmark


class StopRequests:
    """While active, SIGINT and SIGTERM set `signal_name` instead of killing the process; a second
    Ctrl-C stops at once. Pass `requested` to `segnext.train.train(should_stop=...)`."""

    def __init__(self):
        self.signal_name: Optional[str] = None
        self._previous = {}

    def requested(self) -> Optional[str]:
        return self.signal_name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
