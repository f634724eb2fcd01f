"""DistributedDataParallel on CPU (gloo, 2 processes through torchrun) trains exactly like one process
with the same global batch.

The comparison is 2 processes x 1 image against 1 process x 1 image x 2 accumulation steps: both
put one image through each forward, so BatchNorm's batch statistics are the same (2 x 1 against a
single process x 2 images would differ there, as BN normalises over the images of one forward).
The samples, their augmentation and the model's random draws (drop path, NMF bases) are functions
of the sample position, so both runs see the same; DDP averages the two gradients, accumulation
sums the two halves. What may differ is float rounding of that sum, amplified a little by Adam:
the parameters must agree to 1e-5 after 4 steps. BatchNorm running statistics are not compared: in
DDP each process tracks only its own images (rank 0's are broadcast), as in the official code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from train_helpers import REPO_ROOT, SUBPROCESS_ENV, run_cli, tiny_config, write_config

import segnext
from segnext.train import state as checkpointing

STEPS = 4


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_match_one_process_with_accumulation(tmp_path, scenes):
    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    raw = tiny_config(scenes, train={"max_iters": STEPS, "batch_size": 2, "micro_batch_size": 1,
                                     "checkpoint_interval": STEPS, "eval_interval": 0, "device": "cpu"})
    config = write_config(tmp_path / "tiny.yaml", raw)
    ddp = subprocess.run(command + ["--standalone", "--nproc_per_node", "2", "-m", "segnext.cli.main", "train",
                                    str(config), "--work-dir", str(tmp_path / "ddp"), "--no-progress"],
                         env=SUBPROCESS_ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert "2 process(es) x 1 images x 1 accumulation" in ddp.stdout
    single = run_cli("train", str(config), "--work-dir", str(tmp_path / "single"), "--no-progress")
    assert single.returncode == 0, single.stdout + single.stderr
    assert "1 process(es) x 1 images x 2 accumulation" in single.stdout

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

    def losses(directory):
        records = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in records if r["type"] == "train"]
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), abs=1e-5)
    # The final evaluation was sharded over both processes and covers the whole val set.
    assert json.loads((tmp_path / "ddp" / "results.json").read_text())["num_images"] == 8
