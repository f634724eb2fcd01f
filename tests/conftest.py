"""Shared pytest fixtures: where the shared data and the official-code parity fixtures live.

The shared folder (`../shared` next to the repository, or `$SEGNEXT_SHARED`) holds the
datasets and `fixtures/` (numbers recorded from the authors' code; see fixtures/README.md).
Tests that need the recorded numbers skip, with the path they looked at, when they are absent.
Tests that only need a checkpoint in the official format (`checkpoint_path`, `backbone_path`) get,
where the shared files are absent, files of the same layout written here from weights made from a
seed (`synthetic_weights`), so that a fresh clone runs them too; the parity with MMSegmentation's
SegNeXt from such weights is tests/models/test_mmseg_parity.py.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
from pathlib import Path

import numpy as np
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
def official_format_files(shared_dir: Path, tmp_path_factory) -> dict:
    """{name: path} of the official-format checkpoints: the shared ones, else stand-ins written here."""
    shared = {name: shared_dir / "fixtures" / name for name in (CHECKPOINT_FILE, BACKBONE_FILE)}
    if all(path.is_file() for path in shared.values()):
        return shared
    return _write_official_format_files(tmp_path_factory.mktemp("official_format"))


@pytest.fixture(scope="session")
def checkpoint_path(official_format_files: dict) -> Path:
    return official_format_files[CHECKPOINT_FILE]


@pytest.fixture(scope="session")
def backbone_path(official_format_files: dict) -> Path:
    return official_format_files[BACKBONE_FILE]


def _write_official_format_files(folder: Path) -> dict:
    """SegNeXt-T (150 ADE20K classes) with weights made from a seed, in the layouts of the authors'
    MMSegmentation 0.x checkpoint (meta with CLASSES/PALETTE, state_dict with backbone./decode_head.
    keys, BatchNorm counters of 160k iterations) and of their ImageNet MSCAN file (un-prefixed encoder
    keys plus a 1000-class head.*), the encoder tensors the same in both (as in the shared files)."""
    import segnext
    from segnext.data.datasets import DATASETS
    from synthetic_weights import synthetic_state_dict

    model = segnext.create_model("segnext_t", 150)
    state_dict = synthetic_state_dict(model, seed=2024)
    for name in state_dict:
        if name.endswith("num_batches_tracked"):
            state_dict[name] = torch.tensor(160000, dtype=torch.int64)
    ade20k = DATASETS["ade20k"]
    meta = {"CLASSES": tuple(ade20k.class_names), "PALETTE": [list(c) for c in ade20k.palette],
            "mmseg_version": "0.24.1", "iter": 160000}
    paths = {CHECKPOINT_FILE: folder / CHECKPOINT_FILE, BACKBONE_FILE: folder / BACKBONE_FILE}
    torch.save({"meta": meta, "state_dict": state_dict}, paths[CHECKPOINT_FILE])
    generator = torch.Generator().manual_seed(2025)
    encoder = {name[len("backbone."):]: value for name, value in state_dict.items() if name.startswith("backbone.")}
    encoder["head.weight"] = torch.randn(1000, 256, generator=generator) * 0.02
    encoder["head.bias"] = torch.zeros(1000)
    torch.save({"state_dict": encoder}, paths[BACKBONE_FILE])
    return paths


@pytest.fixture(scope="session")
def io_data(fixtures_dir: Path) -> dict:
    return torch.load(_fixture_file(fixtures_dir, IO_FILE), map_location="cpu", weights_only=True)


_REAL_CUDA_IS_AVAILABLE = torch.cuda.is_available
_CUDA_VISIBLE_DEVICES = os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.fixture(scope="session", autouse=True)
def cpu_unless_marked_cuda():
    """Tests not marked `cuda` run as on a machine without a GPU, on a GPU machine too: in process
    (`torch.cuda.is_available()` is False, so "auto" devices are the CPU) and in the commands they
    start (CUDA_VISIBLE_DEVICES=""). They check the CPU paths and exact CPU numbers (a resumed run
    equal to an uninterrupted one, byte-equal outputs of two paths), which TF32 and CUDA's
    nondeterministic kernels would not give; what only a GPU runs is in the `cuda` tests, which see
    the real device (`cuda_as_it_is`). Applied after collection: the skip conditions of the `cuda`
    tests, read while collecting, see the real device, and CUDA is initialised with it."""
    patch = pytest.MonkeyPatch()
    patch.setattr(torch.cuda, "is_available", lambda: False)
    patch.setenv("CUDA_VISIBLE_DEVICES", "")
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def cuda_as_it_is(request, cpu_unless_marked_cuda, monkeypatch):
    """A `cuda` test sees the machine's CUDA devices, in process and in the commands it starts."""
    if request.node.get_closest_marker("cuda") is not None:
        monkeypatch.setattr(torch.cuda, "is_available", _REAL_CUDA_IS_AVAILABLE)
        if _CUDA_VISIBLE_DEVICES is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", _CUDA_VISIBLE_DEVICES)


@pytest.fixture(autouse=True)
def reports_without_charts(request, monkeypatch):
    """Every training run ends with its report, whose charts matplotlib draws in one to two seconds.
    Tests not marked `charts` draw it as an install without matplotlib does (the HTML page, its
    tables and pictures, no charts, no report.png): the same path, the suite minutes shorter. The
    tests of the report, the demo and `segnext report` draw the charts."""
    if request.node.get_closest_marker("charts") is None:
        monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # its import raises ImportError


@pytest.fixture(autouse=True)
def seeded_generators():
    """Every test starts from torch's and NumPy's global generators seeded alike, so that a test of
    random weights or data draws the same numbers on every run and alone or in the suite: one that
    held only for lucky draws would otherwise fail one run in a few, here or in CI."""
    torch.manual_seed(0)
    np.random.seed(0)


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
