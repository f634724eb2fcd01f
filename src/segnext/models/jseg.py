"""Reading checkpoints of JSeg, the Jittor implementation of SegNeXt (the paper's second official
code, `Jittor/JSeg`), without running anything stored in them.

How JSeg writes a checkpoint (`python/jseg/runner/runner.py: Runner.save` and Jittor's
`jt.save` / `safepickle`): a dict

    {"meta": {jseg_version, epoch, iter, max_iter, max_epoch, save_time, config},
     "model": {name: numpy array}, "scheduler": {...}, "optimizer": {...}}

with every Jittor Var turned into a NumPy array, pickled with protocol 4, followed by the 20-byte
SHA-1 of the pickle and the 8 bytes `HCAJSLHD`. Released encoders may hold the weights alone.

Its SegNeXt (`python/jseg/models/backbones/mscan.py`, `decode_heads/ham_head.py`) uses the official
key names (`backbone.block1.0.attn.spatial_gating_unit.conv0_1.weight`,
`decode_head.squeeze.gn.weight`, ...); Jittor's BatchNorm has no `num_batches_tracked`, which is
added here as 0 (a count that no computation of the model reads).

The pickle is read by a restricted unpickler that admits only NumPy arrays, NumPy dtypes and
scalars and plain containers: a file that names any other class or function (which could run code
when unpickled) is refused before anything in it runs.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

JSEG_SUFFIX = b"HCAJSLHD"
_CHECKSUM_BYTES = 20  # SHA-1


class JSegFileError(ValueError):
    """A .pkl file that is not a readable JSeg checkpoint; the message says why."""


class _Refused(pickle.UnpicklingError):
    """The pickle names something other than arrays and plain containers."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode`, as protocol-2 pickles of bytes call it, limited to the one encoding they use."""
    if encoding != "latin1":
        raise _Refused(f"_codecs.encode with the encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> Dict[tuple, Any]:
    """(module, name) -> object: what a pickle of arrays and plain containers may name."""
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's own array rebuilder, wherever this numpy keeps it
    scalar = np.float32(0).__reduce__()[0]
    allowed = {("collections", "OrderedDict"): OrderedDict, ("_codecs", "encode"): _latin1_encode,
               ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # NumPy 1.x and 2.x names
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _Refused(f"the persistent id {pid!r}")


def read_jseg(path) -> Dict[str, Any]:
    """The unpickled contents of the JSeg file at `path` (arrays and plain containers only)."""
    path = Path(path)
    data = path.read_bytes()
    if data.endswith(JSEG_SUFFIX):
        if len(data) < len(JSEG_SUFFIX) + _CHECKSUM_BYTES:
            raise JSegFileError(f"Cannot read {path}: the file is too short to be a JSeg checkpoint.")
        body = data[:-len(JSEG_SUFFIX) - _CHECKSUM_BYTES]
        checksum = data[-len(JSEG_SUFFIX) - _CHECKSUM_BYTES:-len(JSEG_SUFFIX)]
        if hashlib.sha1(body).digest() != checksum:
            raise JSegFileError(f"Cannot read {path}: its SHA-1 checksum does not match its contents, so the file "
                                f"is corrupt. Download or copy it again.")
    else:
        body = data  # a plain pickle (older Jittor, or the trailer cut off)
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(body)).load()
    except _Refused as error:
        raise JSegFileError(
            f"Refused to load {path}: it names {error}, which is neither a NumPy array nor a plain container, "
            f"and could run code when unpickled. segnext reads .pkl files only when they hold arrays and "
            f"plain containers, as JSeg writes them. Nothing in the file was run."
        ) from None
    except pickle.UnpicklingError as error:
        raise JSegFileError(f"Cannot read {path}: the file is truncated or corrupt, or not a pickle ({error}). Nothing "
                            f"in it was run. Download or copy it again.") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError) as error:
        raise JSegFileError(f"Cannot read {path}: the file is truncated or corrupt ({type(error).__name__}: "
                            f"{error}). Download or copy it again.") from None


def jseg_tensors(contents: Any, path) -> Dict[str, torch.Tensor]:
    """The weights of a JSeg checkpoint as tensors, with the official key names."""
    weights = contents
    if isinstance(contents, dict):
        for key in ("model", "state_dict"):
            if isinstance(contents.get(key), dict):
                weights = contents[key]
                break
    if not isinstance(weights, dict):
        raise JSegFileError(f"{path} holds a {type(weights).__name__}, not a dict of weights.")
    tensors = {str(k): torch.from_numpy(np.array(v)) for k, v in weights.items()
               if isinstance(v, np.ndarray) and v.dtype != object}
    if not tensors:
        raise JSegFileError(f"{path} holds no arrays: it is not a JSeg model checkpoint.")
    for key in [k for k in tensors if k.endswith(".running_mean")]:
        tensors.setdefault(key[:-len("running_mean")] + "num_batches_tracked", torch.tensor(0))
    return tensors
