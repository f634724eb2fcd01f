"""Three small helpers every layer uses: a "did you mean" for error messages, an atomic file
writer, and a JSON cleaner. Nothing here imports torch."""

from __future__ import annotations

import difflib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Union


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
