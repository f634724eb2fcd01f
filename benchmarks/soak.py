"""Memory soak: train the demo config for 1,000 iterations, then predict 2,000 images, in one process,
sampling the resident memory (RSS) after every training step and every image.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/soak.py --out benchmarks/results/soak.json

The process is set up as the `segnext` commands set theirs (`segnext.runtime.configure_process()`).
Training is `segnext demo`'s config (SegNeXt-T, the synthetic street scenes, 128x128 crops, batch 8,
an evaluation every 125 iterations, a checkpoint every 100) without its 4-minute guard; prediction is
`Segmenter.predict` on the scene images, read from disk, each label map written as a PNG, as
`segnext predict` does.

For each phase the table gives the RSS at the end of its warm-up (the first 20%: the allocator's
pools, the first checkpoint and evaluation), at the end and at its highest after warm-up, the growth
from warm-up to end, and the slope of a least-squares line through the samples after warm-up
(MB per 1,000 steps or images), which a steady leak shows even when the end point happens to be low.
Goal: growth under 5%. Between the phases RSS steps up once: the predictor's own model comes on top
of the training run's freed memory, which glibc's malloc keeps for reuse (`segnext.runtime`); the
script reports that step, and that no tensor of the training run is left alive after it returns.
Prints the table and writes every sample to JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WARMUP_FRACTION = 0.2


def rss_mb() -> float:
    """The resident set size of this process (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarize(phase: str, samples: list) -> dict:
    """Warm-up, end, peak, growth and slope of one phase's samples (a list of MB, one per step)."""
    warm = max(1, int(len(samples) * WARMUP_FRACTION))
    after = np.asarray(samples[warm - 1:], dtype=float)
    slope = np.polyfit(np.arange(len(after)), after, 1)[0] * 1000 if len(after) > 1 else 0.0
    return {"phase": phase, "steps": len(samples), "warmup_steps": warm, "warmup_mb": round(after[0], 1),
            "end_mb": round(after[-1], 1), "peak_after_warmup_mb": round(after.max(), 1),
            "growth_percent": round(100 * (after[-1] - after[0]) / after[0], 2),
            "peak_growth_percent": round(100 * (after.max() - after[0]) / after[0], 2),
            "slope_mb_per_1000": round(float(slope), 2)}


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1000, help="training iterations (default 1000)")
    parser.add_argument("--images", type=int, default=2000, help="images to predict (default 2000)")
    parser.add_argument("--work-dir", help="where the run goes (default: a temporary folder, removed)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "soak.json"))
    args = parser.parse_args()

    import torch

    from segnext.data.io import write_label
    from segnext.data.scenes import make_scene_dataset
    from segnext.inference import Segmenter
    from segnext.runtime import configure_process
    from segnext.train import load_config, train

    configure_process()
    temporary = None if args.work_dir else tempfile.TemporaryDirectory(prefix="segnext-soak-")
    work_dir = Path(args.work_dir or temporary.name)
    started, load_before = time.strftime("%Y-%m-%d %H:%M"), load_average()
    start = time.perf_counter()
    data_dir = make_scene_dataset(work_dir / "data", num_train=160, num_val=40, size=(128, 160), seed=0)
    config = load_config("demo/segnext_t_scenes", [f"data.root={data_dir}", f"train.max_iters={args.iters}",
                                                   "train.max_time_minutes=null"])
    samples = {"start_mb": rss_mb(), "train": [], "predict": []}

    def sample_after_step():  # train() calls it after every optimizer step
        samples["train"].append(rss_mb())
        if len(samples["train"]) % 100 == 0:
            print(f"  train step {len(samples['train'])}: RSS {samples['train'][-1]:.0f} MB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        return None

    result = train(config, work_dir / "run", resume=False, progress=False, should_stop=sample_after_step)
    train_seconds = time.perf_counter() - start
    gc.collect()
    left_alive = sum(t.numel() * t.element_size() for t in gc.get_objects() if torch.is_tensor(t)) / 2**20

    segmenter = Segmenter.from_checkpoint(work_dir / "run" / "final_model")
    images = sorted((data_dir / "images").rglob("*.png"))
    output = work_dir / "predictions"
    for index in range(args.images):
        path = images[index % len(images)]
        write_label(output / f"{index:05d}.png", segmenter.predict(path), segmenter.palette)
        samples["predict"].append(rss_mb())
        if (index + 1) % 250 == 0:
            print(f"  predicted {index + 1}: RSS {samples['predict'][-1]:.0f} MB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    total_seconds = time.perf_counter() - start

    rows = [summarize("train (per step)", samples["train"]), summarize("predict (per image)", samples["predict"])]
    switch = {"train_end_mb": round(samples["train"][-1], 1), "predict_warmup_mb": rows[1]["warmup_mb"],
              "tensors_alive_after_train_mb": round(left_alive, 3)}
    print(f"\nsoak: {len(samples['train'])} training steps (val mIoU {result.results['mIoU']:.1f}) in "
          f"{train_seconds:.0f} s, then {len(samples['predict'])} predictions, {total_seconds:.0f} s in all; "
          f"RSS at start {samples['start_mb']:.0f} MB; load average {load_before} before, {load_average()} after")
    print(f"between the phases: {switch['train_end_mb']:.0f} MB at the end of training -> "
          f"{switch['predict_warmup_mb']:.0f} MB after the predictor's warm-up; tensors left alive by train(): "
          f"{left_alive:.3f} MB")
    header = (f"{'phase':<20} {'steps':>6} {'warm-up MB':>11} {'end MB':>8} {'peak MB':>8} {'growth':>8} "
              f"{'peak growth':>12} {'MB/1000':>8}")
    print(header)
    for row in rows:
        print(f"{row['phase']:<20} {row['steps']:>6} {row['warmup_mb']:>11.0f} {row['end_mb']:>8.0f} "
              f"{row['peak_after_warmup_mb']:>8.0f} {row['growth_percent']:>7.1f}% "
              f"{row['peak_growth_percent']:>11.1f}% {row['slope_mb_per_1000']:>8.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": started, "python": platform.python_version(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_before": load_before, "load_average_after": load_average(),
        "iterations": args.iters, "images": args.images, "train_seconds": round(train_seconds, 1),
        "total_seconds": round(total_seconds, 1), "val_mIoU": result.results["mIoU"], "summary": rows,
        "between_phases": switch,
        "rss_mb": {key: [round(v, 1) for v in value] if isinstance(value, list) else round(value, 1)
                   for key, value in samples.items()},
    }, indent=1) + "\n")
    print(f"wrote {out}")
    if temporary is not None:
        temporary.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
