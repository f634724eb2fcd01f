"""DistributedDataParallel on CPU (gloo, 2 processes through torchrun) trains exactly like one process
with the same global batch.

The comparison is 2 processes x 1 image against 1 process x 1 image x 2 accumulation steps: both
put one image through each forward, so BatchNorm's batch statistics are the same (2 x 1 against a
single process x 2 images would differ there, as BN normalises over the images of one forward).
The samples, their augmentation and the model's random draws (drop path, NMF bases) are functions
of the sample position, so both runs see the same, whatever the number of loader workers (the
default's: fewer per process under torchrun); DDP averages the two gradients, accumulation
sums the two halves. What may differ is float rounding of that sum, amplified a little by Adam:
the parameters must agree to 1e-5 after 4 steps. BatchNorm running statistics are not compared: in
DDP each process tracks only its own images (rank 0's are broadcast), as in the official code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import REPO_ROOT, SUBPROCESS_ENV, tiny_config, write_config

import segnext
from segnext.cli.main import main
from segnext.train import state as checkpointing
from segnext.train.sampler import EpochPermutations, default_num_workers

STEPS = 4


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_match_one_process_with_accumulation(tmp_path, scenes, capsys):
    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    raw = tiny_config(scenes, train={"max_iters": STEPS, "batch_size": 2, "micro_batch_size": 1,
                                     "checkpoint_interval": STEPS, "eval_interval": 0, "device": "cpu"},
                      data={"num_workers": None},  # the default: fewer workers per process under torchrun
                      optimizer={"lr": 1.0e-3, "clip_grad_norm": 0.5})  # clipped alike on both processes
    config = write_config(tmp_path / "tiny.yaml", raw)
    ddp = subprocess.run(command + ["--standalone", "--nproc_per_node", "2", "-m", "segnext.cli.main", "train",
                                    str(config), "--work-dir", str(tmp_path / "ddp"), "--no-progress"],
                         env=SUBPROCESS_ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert "2 process(es) x 1 images x 1 accumulation" in ddp.stdout
    assert f"{default_num_workers(2)} data worker(s) per process" in ddp.stdout
    # The single process runs in this one (one thread, as each of torchrun's): no start-up to pay.
    assert main(["train", str(config), "--work-dir", str(tmp_path / "single"), "--no-progress"]) == 0
    single = capsys.readouterr().out
    assert "1 process(es) x 1 images x 2 accumulation" in single
    assert f"{default_num_workers(1)} data worker(s) per process" in single

    name = checkpointing.checkpoint_name(STEPS)
    ddp_state = checkpointing.load(tmp_path / "ddp" / "checkpoints" / name)
    single_state = checkpointing.load(tmp_path / "single" / "checkpoints" / name)
    assert ddp_state["world_size"] == 2 and "rng" not in ddp_state  # every draw is seeded by position
    torch.manual_seed(0)  # train.seed: the trainer's initial weights
    initial = segnext.create_model("segnext_t", 8)
    parameters = [name for name, _ in initial.named_parameters()]
    worst = max((ddp_state["model"][k] - single_state["model"][k]).abs().max().item() for k in parameters)
    print(f"largest parameter difference DDP 2x1 vs 1x1x2 after {STEPS} steps: {worst:.3g}")
    assert worst <= 1e-5, f"parameters differ by up to {worst}"
    moved = max((ddp_state["model"][k] - initial.state_dict()[k]).abs().max().item() for k in parameters)
    assert moved > 1e-3  # and training did change them (lr 1e-3)

    def logged(directory, key):
        records = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
        return [r[key] for r in records if r["type"] == "train"]
    assert logged(tmp_path / "ddp", "loss") == pytest.approx(logged(tmp_path / "single", "loss"), abs=1e-5)
    # The gradients averaged over the processes are the single process's accumulated ones.
    assert logged(tmp_path / "ddp", "grad_norm") == pytest.approx(logged(tmp_path / "single", "grad_norm"), rel=1e-4)
    # The final evaluation was sharded over both processes and covers the whole val set.
    assert json.loads((tmp_path / "ddp" / "results.json").read_text())["num_images"] == 8
    # `segnext eval --per-image` under torchrun: each process scores its share, the table holds all.
    model = str(tmp_path / "ddp" / "final_model")
    ddp_eval = subprocess.run(command + ["--standalone", "--nproc_per_node", "2", "-m", "segnext.cli.main", "eval",
                                         str(config), "-c", model, "--out", str(tmp_path / "ddp.json"), "--per-image",
                                         "--calibration", "--no-progress"],
                              env=SUBPROCESS_ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert ddp_eval.returncode == 0, ddp_eval.stdout + ddp_eval.stderr
    assert main(["eval", str(config), "-c", model, "--out", str(tmp_path / "one.json"), "--per-image",
                 "--calibration", "--no-progress"]) == 0
    table = (tmp_path / "ddp_per_image.csv").read_text()
    assert table == (tmp_path / "one_per_image.csv").read_text() and len(table.splitlines()) == 1 + 8
    # and --calibration: the pixels counted by confidence, summed over the processes
    ddp_calibration, one_calibration = (json.loads((tmp_path / f"{name}.json").read_text())["calibration"]
                                        for name in ("ddp", "one"))
    assert [row["pixels"] for row in ddp_calibration["bins"]] == [row["pixels"] for row in one_calibration["bins"]]
    assert ddp_calibration["ECE"] == pytest.approx(one_calibration["ECE"], abs=1e-9)


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker of `rank` (its child whose environment says RANK=rank)."""
    for child in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environment:
            return int(child)
    raise AssertionError(f"no worker of rank {rank} under torchrun ({launcher.pid})")


def _signal_when(launcher: subprocess.Popen, ready, target, signal_number: int, after: float = 0.0):
    """Once `ready()`, and `after` seconds more, send `signal_number` to the process `target()` names;
    return torchrun's output and how many seconds it ran on after the signal (killed if it hangs)."""
    try:
        _wait_until(launcher, ready)
        time.sleep(after)
        os.kill(target(), signal_number)
        sent = time.time()
        output, _ = launcher.communicate(timeout=120)
        return output, time.time() - sent
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _wait_until(launcher: subprocess.Popen, ready, seconds: float = 240) -> None:
    """Poll `ready()` while torchrun runs; fail with its output if it ends first, or after `seconds`."""
    deadline = time.time() + seconds
    while not ready():
        assert launcher.poll() is None, launcher.stdout.read()
        assert time.time() < deadline, f"not ready after {seconds} s"
        time.sleep(0.05)


@pytest.mark.skipif(not torch.distributed.is_available() or not Path("/proc/self/task").is_dir(),
                    reason="needs torch.distributed and Linux /proc (to find torchrun's workers)")
def test_a_killed_or_failing_process_stops_the_others_naming_it_and_a_restart_resumes(tmp_path, scenes):
    """SIGKILL rank 1 mid-run: rank 0 exits within seconds naming rank 1. Restarted, the run resumes
    from its last checkpoint; then rank 1 meets an unreadable file and raises: rank 0 names it too."""
    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    root = tmp_path / "data"
    shutil.copytree(scenes, root)
    raw = tiny_config(root, train={"max_iters": 200, "batch_size": 2, "micro_batch_size": 1, "checkpoint_interval": 2,
                                   "device": "cpu"})
    config, work_dir = write_config(tmp_path / "tiny.yaml", raw), tmp_path / "run"
    launch = command + ["--standalone", "--nproc_per_node", "2", "-m", "segnext.cli.main", "train", str(config),
                        "--work-dir", str(work_dir), "--no-progress"]

    first = subprocess.Popen(launch, env=SUBPROCESS_ENV, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    second_checkpoint = work_dir / "checkpoints" / checkpointing.checkpoint_name(2)
    output, seconds = _signal_when(first, second_checkpoint.exists, lambda: _worker_pid(first, rank=1), signal.SIGKILL)
    print(f"torchrun exited {seconds:.1f} s after rank 1 was killed")
    assert first.returncode != 0 and seconds < 60, output
    assert "error: rank 1 stopped responding" in output and "This process (rank 0 of 2) stops too" in output, output
    resume_from = checkpointing.latest_checkpoint(work_dir / "checkpoints")
    resumed_at = checkpointing.load(resume_from)["iteration"]

    # The sample rank 1 draws at the second step after the resume cannot be read any more.
    stream = EpochPermutations(16, seed=0)
    index, _ = stream.sample_at((resumed_at + 1) * 2 + 1)  # position = iteration * batch + rank
    broken = sorted((root / "images" / "train").iterdir())[index]
    broken.write_bytes(broken.read_bytes()[:100])
    second = subprocess.run(launch, env=SUBPROCESS_ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert f"Resumed from {resume_from} at iteration {resumed_at}" in output, output
    assert f"error: rank 1 failed with DataError: folder train dataset index {index}: {broken}" in output, output


@pytest.mark.skipif(not torch.distributed.is_available() or not Path("/proc/self/task").is_dir(),
                    reason="needs torch.distributed and Linux /proc (to find torchrun's workers)")
@pytest.mark.slow  # 15 s a variant; the agreement is tests/evaluation's (processes as threads), the stop test_resume's
@pytest.mark.parametrize("signalled", ["rank 1", "torchrun"])
def test_sigterm_during_an_evaluation_stops_every_process_at_its_checkpoint(tmp_path, signalled):
    """SIGTERM to one process during a periodic evaluation: it leaves at its next image, the other at the
    end of its share; they agree, save the checkpoint and exit as stopped by SIGTERM, the evaluation
    dropped. Or to torchrun, which passes it on to every process (and kills them 30 s later): each
    leaves at its next image."""
    from segnext.data.scenes import make_scene_dataset

    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    root = make_scene_dataset(tmp_path / "data", num_train=4, num_val=24, size=(128, 160), seed=0)
    raw = tiny_config(root, train={"max_iters": 50, "batch_size": 2, "micro_batch_size": 1, "eval_interval": 2,
                                   "device": "cpu"},
                      evaluation={"img_scale": [160, 128], "scales": [0.75, 1.0, 1.25], "flip": True})
    config = write_config(tmp_path / "tiny.yaml", raw)
    work_dir = tmp_path / signalled.replace(" ", "")
    launcher = subprocess.Popen(command + ["--standalone", "--nproc_per_node", "2", "-m", "segnext.cli.main",
                                           "train", str(config), "--work-dir", str(work_dir), "--no-progress"],
                                env=SUBPROCESS_ENV, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    log = work_dir / "log.jsonl"

    def records():
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []

    def at_the_evaluation():
        return any(record["type"] == "train" and record["iter"] == 2 for record in records())
    # 0.5 s after: the evaluation at iteration 2 has begun (12 images x 6 passes a process)
    output, seconds = _signal_when(launcher, at_the_evaluation, lambda: launcher.pid if signalled == "torchrun"
                                   else _worker_pid(launcher, rank=1), signal.SIGTERM, after=0.5)
    print(f"SIGTERM to {signalled}: torchrun exited {seconds:.1f} s later")
    assert launcher.returncode != 0, output
    assert "Stopped by SIGTERM at iteration 2; checkpoint saved" in output, output
    assert (work_dir / "checkpoints" / checkpointing.checkpoint_name(2)).exists()
    assert not [record for record in records() if record["type"] == "eval"], "the evaluation should be dropped"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_the_survivor_names_the_rank_that_raised_or_went_silent(monkeypatch):
    """PeerWatch over a real TCPStore, two ranks in this process: an error recorded by rank 1 is named
    by rank 0; a rank whose heartbeat stops is named as silent; this process's own error passes."""
    from segnext.train import distributed

    monkeypatch.setattr(distributed, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(distributed, "SILENCE_SECONDS", 1.0)
    server = torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    watches = [distributed.PeerWatch(rank, 2, "127.0.0.1", server.port) for rank in (0, 1)]
    envs = [distributed.Distributed(rank=rank, world_size=2, watch=watches[rank]) for rank in (0, 1)]
    try:
        own = ValueError("data.root is empty")
        assert distributed.explain_failure(own, envs[1]) is own  # recorded for the others, raised as it is
        lost = RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4242")
        explained = distributed.explain_failure(lost, envs[0], "Resume with the same command.")
        assert isinstance(explained, distributed.PeerFailed)
        assert str(explained) == ("rank 1 failed with ValueError: data.root is empty. This process (rank 0 of 2) "
                                  "stops too. Resume with the same command.")
        server.delete_key(f"{watches[1].prefix}/error/1")
        watches[1].stop()  # rank 1 is killed: its heartbeat stops
        assert "rank 1 stopped responding" in str(distributed.explain_failure(lost, envs[0]))
    finally:
        for watch in watches:
            watch.stop()
