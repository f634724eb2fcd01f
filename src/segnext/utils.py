"""Small helpers every layer uses: a "did you mean" for error messages, an atomic file writer (and
the error it raises on a full disk) and a CSV writer on it, a JSON cleaner, optional dependencies with an install hint,
output-folder checks and device names. Nothing here imports torch at module level."""

from __future__ import annotations

import csv
import difflib
import errno
import importlib
import json
import math
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

# errno values of a write that ran out of room: the disk is full, or the user's quota is used up.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A file could not be written for lack of space; the message names the file, the space it
    needed and what to do. `errno` is ENOSPC."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def user_path(path: Union[str, os.PathLike]) -> Path:
    """`path` with a leading "~" or "~user" expanded, as a shell would: in Python "~/models" is
    otherwise a folder named "~" in the working directory. A "~name" that is no user stays as it is."""
    return Path(os.path.expanduser(path))


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""  # not reached


def disk_full_error(path: Union[str, os.PathLike], needed: Optional[int], written: int = 0) -> DiskFullError:
    """The DiskFullError of a failed write of `path` (`needed`: its size when known, `written`: the bytes
    that made it to disk)."""
    path = Path(path)
    if needed is not None:
        size = f"needs {format_bytes(max(needed, written))}"
    else:
        size = f"needs more than the {format_bytes(written)} written before the disk filled"
    try:
        free = f"{format_bytes(shutil.disk_usage(path.parent).free)} free there now"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{path}: no space left on the device: writing it {size} ({free}). Free some space, "
                         f"or write elsewhere, then run the same command again.")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" Did you mean 'x'?" for the choice closest to `name`, or "" when none is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def count(number: int, noun: str) -> str:
    """"1 pair", "2 pairs": `number` with `noun`, plural ("s") unless it is one."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def atomic_write(path: Union[str, os.PathLike], write: Callable[[Path], Any], size: Optional[int] = None) -> Path:
    """Call `write(temporary_path)` and rename the result to `path`.

    The temporary file sits in the same folder, so the rename is atomic: a process killed while
    writing leaves the previous file (or none), never a half-written one. The file gets the
    permissions the umask gives new files. A full disk (or quota) raises DiskFullError naming `path`
    and `size` (the bytes `write` writes, exact or estimated, when the caller knows them); the
    temporary file is removed and the file at `path`, if any, is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _create_temporary(path)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException as error:
        written = os.path.getsize(temporary) if os.path.exists(temporary) else 0
        if os.path.exists(temporary):
            os.remove(temporary)
        if not isinstance(error, DiskFullError) and _ran_out_of_space(error, path.parent, size, written):
            raise disk_full_error(path, size, written) from error
        raise
    return path


def write_csv(path: Union[str, os.PathLike], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A table as CSV (UTF-8, the header first), written atomically."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            table = csv.writer(file)
            table.writerow(header)
            table.writerows(rows)

    return atomic_write(path, write)


def check_can_make_folder(path: Union[str, os.PathLike]) -> None:
    """Raise the error `Path(path).mkdir(parents=True, exist_ok=True)` would raise, without making
    anything: a command checks its output folder before long work, and one that fails before it
    writes leaves no empty folder behind. FileExistsError when a file has the name, NotADirectoryError
    when a part of the path is a file, PermissionError when the nearest existing folder is read-only."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        error = FileExistsError if existing == path else NotADirectoryError
        code = errno.EEXIST if existing == path else errno.ENOTDIR
        raise error(code, os.strerror(code), str(path))
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


def check_can_write_file(path: Union[str, os.PathLike], replaces: str = "") -> None:
    """`check_can_make_folder` for the folder of a file that will be written, and IsADirectoryError
    when `path` is a folder. replaces: the ending of the files it may replace (".json"); an existing
    file with another (the weights, an image) is a ValueError, as writing would destroy it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if replaces and path.is_file() and path.suffix.lower() != replaces:
        raise ValueError(f"{path}: the file exists and is not a {replaces} file; writing there would replace it. "
                         f"Give a path ending in {replaces}")
    check_can_make_folder(path.parent)


def _create_temporary(path: Path) -> str:
    """A new empty file beside `path`, named `.<name>.<random>.tmp`. Created with mode 0666 so that the
    kernel applies the umask, as for any new file (mkstemp's 0600 would need the umask read back,
    which only os.umask can do, and that changes it process-wide for a moment)."""
    while True:
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temporary
        except FileExistsError:
            continue


def _ran_out_of_space(error: BaseException, folder: Path, size: Optional[int], written: int) -> bool:
    """Whether `error` (or one it was raised from) is a full disk. Writers do not all say so: torch.save,
    finishing its file after a failed write, raises a RuntimeError over the OSError(ENOSPC); safetensors
    raises its own error whose text holds the system's ("No space left on device (os error 28)"); and
    NumPy writes arrays with fwrite and raises OSError("N requested and M written") without errno,
    which counts when the rest of the file does not fit in the space left."""
    cause: Optional[BaseException] = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            return True
        if any(os.strerror(number) in str(cause) for number in DISK_FULL_ERRNOS):
            return True
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, OSError) and error.errno is None and size is not None:
        try:
            return shutil.disk_usage(folder).free < size - written
        except OSError:
            return False
    return False


def json_safe(value: Any) -> Any:
    """`value` with tuples as lists and NaN/infinity as None, so that `json.dumps` writes valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_text(value: Any, indent: int = 2) -> str:
    """`json.dumps(value, indent=indent)`, but with each list of numbers (or nulls) on one line: a
    confusion matrix reads as a row per class, not a number per line."""

    def flat(item: Any) -> bool:
        return isinstance(item, (list, tuple)) and all(
            element is None or (isinstance(element, (int, float)) and not isinstance(element, bool))
            for element in item)

    def write(item: Any, depth: int) -> str:
        inner, outer = " " * (indent * (depth + 1)), " " * (indent * depth)
        if isinstance(item, dict) and item:
            return "{\n" + ",\n".join(f"{inner}{json.dumps(str(key))}: {write(element, depth + 1)}"
                                       for key, element in item.items()) + f"\n{outer}}}"
        if isinstance(item, (list, tuple)) and item and not flat(item):
            return "[\n" + ",\n".join(f"{inner}{write(element, depth + 1)}" for element in item) + f"\n{outer}]"
        return json.dumps(item)

    return write(value, 0)


LOG_PROGRESS_SECONDS = 60.0  # where stderr is not a terminal: one progress line a minute at most


def progress_bar(total: Optional[int] = None, *, enabled: bool = True, **options):
    """A tqdm progress bar on stderr (`options` are tqdm's): redrawn in place on a terminal; where
    stderr is not one (a log file, a batch job's output), a plain line at most every
    LOG_PROGRESS_SECONDS and at the end, instead of a bar redrawn with carriage returns on one
    endless line; none when not `enabled`."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, file=sys.stderr, **options)
    options.update(file=_ProgressLines(sys.stderr), mininterval=LOG_PROGRESS_SECONDS, dynamic_ncols=False, leave=True)
    return tqdm(total=total, **options)


class _ProgressLines:
    """A file for tqdm that turns each redraw into a line of its own and drops the erasures, and a
    line that reports the same count as the one before it (the last update and the close, a moment
    apart, differ only in the rate)."""

    def __init__(self, stream):
        self.stream = stream
        self.last_count = None

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        count = line.split("[", 1)[0]  # "eval: 100%|##########| 3/3 ": up to the times and the rate
        if line and count != self.last_count:
            self.stream.write(line + "\n")
            self.last_count = count

    def flush(self) -> None:
        self.stream.flush()


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
        raise ValueError(f"device {name!r}: {built}; available here: {', '.join(available)}. Choose one of those "
                         f"(or auto: the best there is), or install a CUDA build of PyTorch "
                         f"(https://pytorch.org/get-started/locally/).")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not mps_ok:
        raise ValueError(f"device {name!r}: Apple's MPS is not available here; available: {', '.join(available)}")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", index)
    return device
