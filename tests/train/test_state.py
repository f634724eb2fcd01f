"""Training checkpoint files: atomic writes, RNG states, which checkpoint to resume from."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from train_helpers import SUBPROCESS_ENV

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
        def slow_save(obj, target):  # writes half a file, then hangs: the kill comes mid-write
            with open(target, "wb") as handle:
                handle.write(b"PK" + bytes(100000))
                handle.flush()
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
