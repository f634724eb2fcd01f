"""Real learning on real data (slow: about 7 minutes on 2 CPU cores): a few hundred iterations of
SegNeXt-T from scratch on CamVid reach a val mIoU far above chance (measured: 23.8 after 400
iterations, against 2.7 for always predicting the most frequent class)."""

from __future__ import annotations

import pytest
import torch

from segnext.train import load_config, train


@pytest.mark.slow
def test_a_few_hundred_iterations_on_camvid_learn(shared_dir, tmp_path):
    root = shared_dir / "datasets" / "camvid"
    if not (root / "classes.json").is_file():
        message = f"CamVid not found at {root} (set SEGNEXT_SHARED to the shared folder)"
        print(message)
        pytest.skip(message)
    config = load_config("camvid/segnext_t_camvid_cpu_60min", [
        f"data.root={root}", "train.max_iters=400", "train.max_time_minutes=null", "schedule.by_time=false",
        "train.eval_interval=0", "train.checkpoint_interval=400", "evaluation.num_overlays=2"])
    threads = torch.get_num_threads()
    try:
        result = train(config, tmp_path / "camvid", progress=False)
    finally:
        torch.set_num_threads(threads)
    metrics = result.results
    print(f"CamVid after 400 iterations: mIoU {metrics['mIoU']:.1f} (most frequent class: "
          f"{metrics['majority_class_mIoU']:.1f}), aAcc {metrics['aAcc']:.1f}")
    assert metrics["num_images"] == 101
    assert metrics["majority_class_mIoU"] < 3.0  # road on 29% of the val pixels, / 11 classes
    assert metrics["mIoU"] > 15.0 and metrics["aAcc"] > 50.0  # over 5x the trivial baseline
