"""Training checkpoint files: atomic writes, RNG states, which checkpoint to resume from."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from train_helpers import SUBPROCESS_ENV, tiny_config, write_config

from segnext.train import state as checkpointing


def test_latest_prune_and_foreign_files(tmp_path):
    for iteration in (2, 4, 6):
        checkpointing.save({"format": checkpointing.FORMAT, "iteration": iteration},
                           tmp_path / checkpointing.checkpoint_name(iteration))
    checkpointing.save({"format": checkpointing.FORMAT, "iteration": 99}, tmp_path / "best.pt")
    (tmp_path / checkpointing.checkpoint_name(8)).write_bytes(b"garbage")  # e.g. copied in truncated
    assert checkpointing.latest_checkpoint(tmp_path).name == "iter_00000006.pt"
    checkpointing.prune(tmp_path, keep=2)
    assert [p.name for p in checkpointing.iteration_checkpoints(tmp_path)] == ["iter_00000006.pt", "iter_00000008.pt"]
    assert (tmp_path / "best.pt").exists()
    torch.save({"state_dict": {}}, tmp_path / "model.pth")
    with pytest.raises(checkpointing.TrainingCheckpointError, match="model.checkpoint"):
        checkpointing.load(tmp_path / "model.pth")
    with pytest.raises(FileNotFoundError):
        checkpointing.load(tmp_path / "missing.pt")


def test_a_kill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    """SIGKILL a process in the middle of writing a checkpoint over an existing one."""
    path, ready = tmp_path / "iter_00000004.pt", tmp_path / "writing"
    script = textwrap.dedent(f"""
        import time, torch
        from segnext.train import state as checkpointing
        checkpointing.save({{"format": "{checkpointing.FORMAT}", "iteration": 2, "w": torch.zeros(1000)}}, r"{path}")
        def slow_save(obj, file):  # writes half a file, then hangs: the kill comes mid-write
            file.write(b"PK" + bytes(100000))
            file.flush()
            open(r"{ready}", "w").close()
            time.sleep(120)
        torch.save = slow_save
        checkpointing.save({{"format": "{checkpointing.FORMAT}", "iteration": 4, "w": torch.ones(1000)}}, r"{path}")
    """)
    process = subprocess.Popen([sys.executable, "-c", script], env=SUBPROCESS_ENV)
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert process.poll() is None and time.time() < deadline, "the writer did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    state = checkpointing.load(path)
    assert state["iteration"] == 2 and torch.equal(state["w"], torch.zeros(1000))
    leftovers = list(tmp_path.glob(".*.tmp"))
    assert leftovers, "the half-written temporary file should be next to the checkpoint"
    checkpointing.remove_stale_temporaries(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    assert checkpointing.latest_checkpoint(tmp_path) == path


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full (a device that is always full) here")
def test_torch_save_reports_a_full_disk_only_through_a_file_object():
    """Why `save` hands torch.save an open file: given a path, torch reports a full disk as a bare
    RuntimeError without errno; through a Python file it is OSError(ENOSPC)."""
    with pytest.raises(OSError) as error, open("/dev/full", "wb") as file:
        torch.save({"weights": torch.zeros(100_000)}, file)
    assert error.value.errno == errno.ENOSPC


def test_a_full_disk_during_a_checkpoint_names_it_and_keeps_the_previous_one(tmp_path, scenes, full_disk,
                                                                             monkeypatch):
    from segnext.train import load_config, train
    from segnext.utils import DiskFullError

    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))))
    checkpoints = tmp_path / "run" / "checkpoints"
    made = checkpointing.training_state

    def disk_fills_before_the_second_checkpoint(*args, **kwargs):
        if checkpointing.iteration_checkpoints(checkpoints):
            full_disk(checkpoints, free=1_000_000)  # a megabyte left: the write fails part-way
        return made(*args, **kwargs)

    monkeypatch.setattr(checkpointing, "training_state", disk_fills_before_the_second_checkpoint)
    with pytest.raises(DiskFullError) as error:
        train(config, tmp_path / "run", progress=False)
    message = str(error.value)
    first = checkpoints / checkpointing.checkpoint_name(2)
    size_mb = first.stat().st_size / 2**20
    needed = float(re.search(r"needs ([\d.]+) MB", message).group(1))
    assert f"{checkpoints / checkpointing.checkpoint_name(4)}: no space left on the device" in message
    assert abs(needed - size_mb) < 0.05 * size_mb, (needed, size_mb)  # the size of what was being written
    assert f"The last complete checkpoint, {first}, is intact" in message
    assert [p.name for p in checkpoints.iterdir()] == [first.name]  # no partial file, no temporary
    assert checkpointing.load(first)["iteration"] == 2
