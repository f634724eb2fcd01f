"""benchmarks/gpu/camvid_gpu.sh, the GPU recipe's device call, tried on the CPU on a tiny CamVid.

A session with a GPU has minutes of it: the script must not fail there on something the CPU could
have shown (a renamed option, a missing file, a packaging step). Here it runs whole, on the CPU, in
both modes, with overrides that make the training a few iterations long. Marked slow (half a minute):
benchmarks/gpu/prepare.sh, the step before any device call, runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

import segnext

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "camvid_gpu.sh"
PACKAGE = SCRIPT.parents[1] / "package_camvid.py"

pytestmark = pytest.mark.slow
# A few iterations on the CPU instead of 8 minutes on a GPU; everything else as the recipe has it.
CPU_TRIAL = ["train.device=cpu", "train.amp=false", "train.max_iters=2", "train.batch_size=2",
             "train.micro_batch_size=2", "data.num_workers=0", "data.crop_size=[32,32]", "evaluation.img_scale=null"]


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    """CamVid's layout, with file names that start with their drive as the real ones (0006R0 is held out)."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.default_rng(0)
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (root / kind / split).mkdir(parents=True)
    drives = {"train": {"0001TP": 2, "0006R0": 2, "0016E5": 2}, "val": {"0016E5": 2}}
    for split, frames_of in drives.items():
        for drive, frames in frames_of.items():
            for frame in range(frames):
                stem = f"{drive}_{frame + (100 if split == 'val' else 0):06d}"  # unique, as in CamVid
                Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(
                    root / "images" / split / f"{stem}.png")
                Image.fromarray(rng.integers(0, 11, (36, 48), dtype=np.uint8)).save(
                    root / "labels" / split / f"{stem}.png")
    return root


def run_script(mode: str, camvid: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    # python3 on the PATH is this interpreter, as in a device call's environment
    env = {**os.environ, "OUT": str(tmp_path / "out"), "CAMVID": str(camvid), "SCRATCH": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", str(SCRIPT), mode, *CPU_TRIAL, *overrides], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_heldout_mode_trains_without_the_drive_and_scores_it_and_val(camvid, tmp_path):
    done = run_script("heldout", camvid, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    results = json.loads((out / "results_heldout.json").read_text())
    assert results["num_images"] == 2 and results["iteration"] == 2  # the two frames of drive 0006R0
    assert json.loads((out / "eval_heldout_model_on_val.json").read_text())["num_images"] == 2
    assert (out / "device.txt").read_text().strip()  # nvidia-smi's GPU, else the CPU
    assert "train wall seconds" in (out / "train.log").read_text()
    # packaged, a model that did not train on the frames it is scored on carries their interval on its card
    packaged = tmp_path / "packaged"
    done = subprocess.run([sys.executable, str(PACKAGE), str(tmp_path / "camvid-run"), str(packaged),
                           "--command", "camvid_gpu.sh heldout", "--device", "CPU"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    card = (packaged / "README.md").read_text()
    assert "split 'train_fit'" in card and "frames of a drive whose other frames it trained on" in card
    interval = json.loads((packaged / "config.json").read_text())["metrics"]["interval"]
    assert interval["units"] == 2 and interval["mIoU"][0] <= results["mIoU"] <= interval["mIoU"][1]
    assert "95% interval |" in card and "over 1,000 resamples of the 2 images scored" in card


def test_final_mode_trains_on_train_and_val_and_writes_the_model_folder(camvid, tmp_path):
    done = run_script("final", camvid, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = tmp_path / "out" / "segnext_t_camvid"
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "camvid_gpu.sh final train.device=cpu" in card and "(8 training images)" in card  # train + val
    assert "split 'train+val'" in card and "Scores on CamVid val (frames it trained on" in card
    with safe_open(folder / "model.safetensors", framework="pt") as weights:  # shipped as float16
        names = weights.keys()
        dtypes = {weights.get_slice(name).get_dtype() for name in names}
    assert dtypes - {"I64"} == {"F16"}  # BatchNorm's num_batches_tracked stays an integer
    assert segnext.create_model(checkpoint=folder).num_classes == 11
    trained_on = json.loads((folder / "config.json").read_text())["training_data"]
    assert trained_on["dataset"] == "camvid" and trained_on["split"] == "train+val"


def test_a_failed_training_is_the_calls_exit_status(camvid, tmp_path):
    done = run_script("final", camvid, tmp_path, "train.no_such_key=1")
    assert done.returncode != 0 and "training failed" in done.stdout
