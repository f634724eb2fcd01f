"""Tiny configs (SegNeXt-T, 64x64 crops) so that a training run takes seconds on 2 CPU cores, and a
way to run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# Passive OpenMP waiting and one thread per process: on a busy 2-core machine, spinning OpenMP
# threads of parallel processes starve each other (a step can become 10x slower). No GPU: these runs
# check the CPU's exact numbers on any machine (see conftest.cpu_unless_marked_cuda).
SUBPROCESS_ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                  "CUDA_VISIBLE_DEVICES": ""}


def tiny_config(root: Path, **sections) -> dict:
    """A raw config dict for a few-second run; `sections` update its sections key by key."""
    config = {
        "model": {"name": "segnext_t"},
        "data": {"dataset": "folder", "root": str(root), "crop_size": [64, 64], "img_scale": [80, 64],
                 "num_workers": 0},
        "optimizer": {"lr": 1.0e-3},
        "schedule": {"warmup_iters": 3},
        "train": {"max_iters": 6, "batch_size": 2, "micro_batch_size": 2, "log_interval": 1,
                  "checkpoint_interval": 2, "keep_checkpoints": 50, "eval_interval": 0, "threads": 1},
        "evaluation": {"img_scale": [80, 64], "num_overlays": 0},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segnext.cli.main", *args], env=SUBPROCESS_ENV, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, **popen)
