"""Fetching published weights (`segnext.models.pretrained`) into a local cache.

Where: `$SEGNEXT_HOME/checkpoints/<official file name>`; SEGNEXT_HOME defaults to
`$XDG_CACHE_HOME/segnext`, that is `~/.cache/segnext`. From where: the official base URL, or the
one in `$SEGNEXT_WEIGHTS_URL` (a mirror with the same layout below it, or a local server).

- A file already in the cache under its official name is used as it is, with no network and no
  re-hash (torch.hub's rule): an offline machine works once the file is copied there.
- A download streams into a temporary file beside its target, with a progress bar; its length and
  the start of its SHA-256 (the suffix of the file name) are checked, and only then is it renamed
  to the official name. A transfer that is killed, cut short or corrupted never leaves a file that
  looks complete. The hidden temporary file of a killed download is removed by the next download of
  the same weights once it has not grown for `STALE_SECONDS` (a live download, in another process,
  writes to its own at least every few seconds, or gives up).
- Every failure (no network, an HTTP error, a truncated transfer, a wrong hash) raises
  `DownloadError`, naming the URL and where to put the file by hand. Connecting and every read
  give up after `TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..utils import atomic_write, progress_bar
from .pretrained import DEFAULT_BASE_URL, PretrainedWeights
from .weights import CheckpointError

HOME_VARIABLE = "SEGNEXT_HOME"
BASE_URL_VARIABLE = "SEGNEXT_WEIGHTS_URL"
TIMEOUT_SECONDS = 10.0
STALE_SECONDS = 3600.0  # a temporary file untouched this long belongs to a dead download
_CHUNK = 1 << 20


class DownloadError(CheckpointError):
    """Published weights that could not be fetched; the message names the URL and the way round."""


def cache_dir() -> Path:
    """Where fetched weights are kept: $SEGNEXT_HOME/checkpoints."""
    home = os.environ.get(HOME_VARIABLE)
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "segnext")
    return Path(home).expanduser() / "checkpoints"


def base_url() -> str:
    return (os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")


def url_of(weights: PretrainedWeights) -> str:
    return f"{base_url()}/{weights.path}"


def bundled_dir() -> Path:
    """Where weights shipped with the package are: segnext/weights/."""
    return Path(__file__).resolve().parents[1] / "weights"


def fetch(weights: PretrainedWeights, progress: bool = True) -> Path:
    """The local path of `weights`: in the package when bundled, else from the cache, else downloaded
    into it and checked."""
    if weights.bundled:
        return _bundled(weights)
    target = cache_dir() / weights.file_name
    if target.is_file():
        return target
    url = url_of(weights)
    by_hand = (f"Without a network, download it elsewhere and copy it to {target} (a file there is used as it is), "
               f"or set {BASE_URL_VARIABLE} to a mirror with the same layout.")
    remove_stale_temporaries(target)
    atomic_write(target, lambda temporary: _download(url, temporary, weights.sha256_prefix, progress, by_hand))
    return target


def _bundled(weights: PretrainedWeights) -> Path:
    """The model folder of bundled weights, once its model.safetensors has the published SHA-256."""
    folder = bundled_dir() / weights.path
    tensors = folder / "model.safetensors"
    if not tensors.is_file():
        raise CheckpointError(f"{weights.name} should ship with segnext at {folder}, but {tensors.name} is not there; "
                              f"reinstall segnext (pip install --force-reinstall segnext).")
    digest = hashlib.sha256()
    with open(tensors, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    if digest.hexdigest() != weights.sha256_prefix:
        raise CheckpointError(f"{tensors} is not the file published as {weights.name}: its SHA-256 is "
                              f"{digest.hexdigest()}, not {weights.sha256_prefix}. Reinstall segnext.")
    return folder


def remove_stale_temporaries(target: Path) -> None:
    """Delete the temporary files of earlier downloads of `target` that were killed: those not
    written to for STALE_SECONDS. Younger ones may belong to a download still running elsewhere."""
    now = time.time()
    for temporary in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if now - temporary.stat().st_mtime > STALE_SECONDS:
                temporary.unlink()
        except FileNotFoundError:  # removed meanwhile by another process
            pass


def _download(url: str, path: Path, sha256_prefix: str, progress: bool, by_hand: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "segnext"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"Cannot download {url}: the server answered HTTP {error.code} ({error.reason}). "
                            f"{by_hand}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Cannot download {url}: {reason}. {by_hand}") from None
    digest, received = hashlib.sha256(), 0
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        with open(path, "wb") as out, progress_bar(expected, enabled=progress, unit="B", unit_scale=True,
                                                   unit_divisor=1024, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.HTTPException, OSError, socket.timeout) as error:
                    raise DownloadError(f"The download of {url} broke off after {received} bytes "
                                        f"({type(error).__name__}: {error}). Try again. {by_hand}") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise DownloadError(f"The download of {url} is truncated: {received} of {expected} bytes arrived. Try "
                            f"again. {by_hand}")
    if not digest.hexdigest().startswith(sha256_prefix):
        raise DownloadError(f"The file downloaded from {url} is not the published one: its SHA-256 starts with "
                            f"{digest.hexdigest()[:len(sha256_prefix)]}, not {sha256_prefix}. It was discarded. "
                            f"{by_hand}")
