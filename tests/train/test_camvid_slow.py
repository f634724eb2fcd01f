"""Real learning on real data, judged on a drive the model has not seen (slow: several minutes on 2 CPU
cores): SegNeXt-T from scratch for a few hundred iterations on CamVid's train frames of sequences
0001TP and 0016E5, evaluated on all 101 frames of sequence 0006R0, which training never sees. CamVid's
own val split (more frames of 0016E5) would reward remembering the training drive. What it printed
is in BENCHMARKS.md (about 23 mIoU against 3.4 for always predicting the most frequent class)."""

from __future__ import annotations

import json

import pytest

from segnext.data.datasets import get_spec, list_split
from segnext.data.splits import hold_out, write_split
from segnext.train import load_config, train

HELD_OUT_SEQUENCE = "0006R0"


@pytest.fixture
def camvid_held_out(shared_dir, tmp_path):
    """A CamVid root in tmp_path (links to the shared splits) with splits train_fit and heldout."""
    shared = shared_dir / "datasets" / "camvid"
    if not (shared / "classes.json").is_file():
        message = f"CamVid not found at {shared} (set SEGNEXT_SHARED to the folder that holds datasets/camvid)"
        print(message)
        pytest.skip(message)
    root = tmp_path / "camvid"
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            (root / kind / split).symlink_to(shared / kind / split)
    (root / "classes.json").write_text((shared / "classes.json").read_text())
    listing = list_split(get_spec("camvid", root), root, "train")
    fit, held = hold_out(listing, [HELD_OUT_SEQUENCE])
    write_split(listing, fit, "train_fit")
    write_split(listing, held, "heldout")
    return root, len(fit), len(held)


@pytest.mark.slow
def test_a_few_hundred_iterations_on_camvid_learn_what_holds_on_an_unseen_drive(camvid_held_out, tmp_path):
    root, fit_count, held_count = camvid_held_out
    assert (fit_count, held_count) == (266, 101)
    config = load_config("camvid/segnext_t_camvid_cpu_60min", [
        f"data.root={root}", "data.train_split=train_fit", "data.val_split=heldout", "train.max_iters=400",
        "train.max_time_minutes=null", "schedule.by_time=false", "train.eval_interval=0",
        "train.checkpoint_interval=400", "evaluation.num_overlays=2"])
    result = train(config, tmp_path / "run", progress=False)
    metrics = result.results
    print(f"CamVid after 400 iterations, held-out drive {HELD_OUT_SEQUENCE}: mIoU {metrics['mIoU']:.1f} "
          f"(most frequent class: {metrics['majority_class_mIoU']:.1f}), aAcc {metrics['aAcc']:.1f}; per class "
          + json.dumps({name: round(iou, 1) for name, iou in zip(result.results["class_names"], metrics["IoU"])}))
    assert metrics["num_images"] == held_count
    assert metrics["majority_class_mIoU"] < 5.0
    assert metrics["mIoU"] > 12.0 and metrics["aAcc"] > 50.0  # several times the trivial baseline
