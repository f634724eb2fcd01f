"""The commands on a GPU (marked `cuda`; skipped, saying so, without one): a one-process NCCL training
run with mixed precision, then predict and eval on the GPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="no CUDA device here (these tests run on a GPU)")]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_one_nccl_process_trains_and_predict_and_eval_run_on_the_gpu(tmp_path):
    from segnext.data.scenes import make_scene_dataset

    root = make_scene_dataset(tmp_path / "scenes", num_train=8, num_val=4, size=(64, 80), seed=0)
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({
        "model": {"name": "segnext_t"},
        "data": {"dataset": "folder", "root": str(root), "crop_size": [64, 64], "img_scale": [80, 64],
                 "num_workers": 0},
        "train": {"max_iters": 4, "batch_size": 2, "micro_batch_size": 2, "log_interval": 1,
                  "checkpoint_interval": 4, "eval_interval": 0, "device": "cuda", "amp": True},
        "evaluation": {"img_scale": [80, 64], "num_overlays": 0}}))
    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    run = subprocess.run(command + ["--standalone", "--nproc_per_node", "1", "-m", "segnext.cli.main", "train",
                                    str(config), "--work-dir", str(tmp_path / "run"), "--no-progress"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "device cuda" in run.stdout and "amp fp16" in run.stdout
    model = tmp_path / "run" / "final_model"
    image = np.asarray(Image.open(next((root / "images" / "val").iterdir())).convert("RGB"))
    Image.fromarray(image).save(tmp_path / "val.png")
    from segnext.cli.main import main

    for device in ("cuda", "cpu"):
        assert main(["predict", "-c", str(model), str(tmp_path / "val.png"), "--out", str(tmp_path / device),
                     "--device", device, "--no-progress"]) == 0
    on_gpu = np.asarray(Image.open(tmp_path / "cuda" / "val.png"))
    on_cpu = np.asarray(Image.open(tmp_path / "cpu" / "val.png"))
    assert (on_gpu == on_cpu).mean() > 0.999
    assert main(["eval", str(config), "--checkpoint", str(model), "--device", "cuda", "--out",
                 str(tmp_path / "eval.json"), "--no-progress", "--interval"]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["num_images"] == 4 and results["mIoU"] is not None
    # each image's class areas, counted on the GPU, add up to the confusion matrix
    areas = np.zeros((3, len(results["per_class"])), dtype=np.int64)
    for row in results["image_areas"]["areas"]:
        for klass, intersection, labelled, predicted in np.asarray(row, dtype=np.int64).reshape(-1, 4):
            areas[:, klass] += (intersection, labelled, predicted)
    confusion = np.array(results["confusion"])
    assert (areas[0] == np.diag(confusion)).all() and (areas[1] == confusion.sum(1)).all()
    assert results["interval"]["mIoU"][0] <= results["mIoU"] <= results["interval"]["mIoU"][1]
    # batched, with reading workers (eval's default on a GPU): the same pixels nearly everywhere
    assert main(["eval", str(config), "--checkpoint", str(model), "--device", "cuda", "--batch-size", "4",
                 "--workers", "2", "--out", str(tmp_path / "eval_batched.json"), "--no-progress"]) == 0
    batched = np.array(json.loads((tmp_path / "eval_batched.json").read_text())["confusion"])
    assert np.trace(batched) == pytest.approx(np.trace(np.array(results["confusion"])), rel=1e-3)
    # in mixed precision, as `predict --amp` runs it (eager and CUDA graphs): the same labels nearly everywhere
    for backend in ("eager", "cuda_graph"):
        assert main(["eval", str(config), "--checkpoint", str(model), "--device", "cuda", "--amp", "--backend",
                     backend, "--out", str(tmp_path / f"eval_amp_{backend}.json"), "--no-progress"]) == 0
        amp = json.loads((tmp_path / f"eval_amp_{backend}.json").read_text())
        assert amp["test"]["precision"] in ("bfloat16", "float16") and results["test"]["precision"] == "float32"
        assert abs(amp["aAcc"] - results["aAcc"]) < 1.0
