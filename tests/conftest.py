"""Shared pytest fixtures: where the shared data and the official-code parity fixtures live.

The shared folder (`../shared` next to the repository, or `$SEGNEXT_SHARED`) holds the
datasets and `fixtures/` (numbers recorded from the authors' code; see fixtures/README.md).
Tests that need the fixtures skip, with the path they looked at, when they are absent.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

CHECKPOINT_FILE = "segnext_tiny_ade_random.pth"  # official MMSeg 0.x format, SegNeXt-T, 150 classes
BACKBONE_FILE = "mscan_tiny_imagenet_random.pth"  # ImageNet MSCAN-T format (+ head.* classifier)
IO_FILE = "segnext_tiny_ade_io.pt"  # eval-mode inputs / bases / outputs
TRAIN_FILE = "segnext_tiny_ade_train.pt"  # train-mode loss / gradients / BN statistics


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    override = os.environ.get("SEGNEXT_SHARED")
    if override:
        return Path(override).expanduser().resolve()
    return REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures"
    if not path.is_dir():
        pytest.skip(f"parity fixtures not found at {path}; set SEGNEXT_SHARED")
    return path


def _fixture_file(fixtures_dir: Path, name: str) -> Path:
    path = fixtures_dir / name
    if not path.is_file():
        pytest.skip(f"parity fixture {name} not found at {path}; set SEGNEXT_SHARED")
    return path


@pytest.fixture(scope="session")
def checkpoint_path(fixtures_dir: Path) -> Path:
    return _fixture_file(fixtures_dir, CHECKPOINT_FILE)


@pytest.fixture(scope="session")
def backbone_path(fixtures_dir: Path) -> Path:
    return _fixture_file(fixtures_dir, BACKBONE_FILE)


@pytest.fixture(scope="session")
def io_data(fixtures_dir: Path) -> dict:
    return torch.load(_fixture_file(fixtures_dir, IO_FILE), map_location="cpu", weights_only=True)


@pytest.fixture(autouse=True)
def keep_threads():
    """Give every test torch's thread count back: the command line sets it for its process
    (`segnext.runtime`), and tests run the command line in process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The work dir of `segnext demo --quick` (run once, through the command line): a model trained
    on the demo scenes with its results.json, checkpoints and final_model."""
    from segnext.cli.main import main

    work_dir = tmp_path_factory.mktemp("demo") / "demo"
    threads = torch.get_num_threads()
    try:
        status = main(["demo", "--quick", "--work-dir", str(work_dir), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    return work_dir


@pytest.fixture(scope="session")
def train_data(fixtures_dir: Path) -> dict:
    return torch.load(_fixture_file(fixtures_dir, TRAIN_FILE), map_location="cpu", weights_only=True)


class _FillingFile:
    """A file opened for writing on a disk with `budget["left"]` bytes free: writes fail with ENOSPC
    once they are used up (the part that fits is written first, as a real disk does)."""

    def __init__(self, handle, budget: dict):
        self._handle, self._budget = handle, budget

    def write(self, data):
        if len(data) > self._budget["left"]:
            self._handle.write(data[: self._budget["left"]])
            self._budget["left"] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget["left"] -= len(data)
        return self._handle.write(data)

    def fileno(self):  # no file descriptor: writers (Pillow, NumPy) must come through write()
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.fixture()
def full_disk(monkeypatch):
    """full_disk(folder, free=0): from then on (to the end of the test), files opened for writing
    below `folder` share `free` bytes; a write beyond them fails with OSError(ENOSPC), as on a disk
    that fills up."""
    real_open = builtins.open

    def fill(folder, free: int = 0):
        folder, budget = Path(folder).resolve(), {"left": free}

        def open_on_full_disk(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            writing = any(flag in mode for flag in "wax+")
            inside = isinstance(file, (str, os.PathLike)) and folder in Path(file).resolve().parents
            return _FillingFile(handle, budget) if writing and inside else handle

        monkeypatch.setattr(builtins, "open", open_on_full_disk)
        monkeypatch.setattr(io, "open", open_on_full_disk)  # pathlib opens through io.open

    return fill
