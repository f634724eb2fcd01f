"""Data loading throughput of the SegNeXt training pipeline, next to the training step rate.

Generates ADE20K-like data (JPEG images ~683x512 with coloured blobs, label PNGs with blobs of
ADE20K ids) in a temporary folder, runs it through build_dataset("ade20k") + TrainTransform at
crop 512 (resize to (2048, 512) x U(0.5, 2), cat-max-ratio crop, flip, photometric distortion,
normalise, pad) with DataLoader num_workers 0, 1 and 2, and reports images per second (median of
several full passes, after a warm-up pass). Then times SegNeXt-T training steps (batch 2,
512x512, forward + cross-entropy + backward) on the same machine. The loader should deliver at
least 3x the images a training step consumes.

    python benchmarks/bench_dataloader.py                  # writes benchmarks/results/dataloader.json
    python benchmarks/bench_dataloader.py --out other.json --runs 5 --train-steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from segnext.data import TrainTransform, build_dataset, seed_worker

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 3.0


def make_ade20k_like(root: Path, count: int, seed: int = 0) -> Path:
    """`count` image/label pairs in the ADE20K layout; sizes around 683x512 like ADE20K's."""
    rng = np.random.default_rng(seed)
    image_dir, label_dir = root / "images/training", root / "annotations/training"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for index in range(count):
        width, height = (683, 512) if index % 2 == 0 else (int(rng.integers(480, 800)), int(rng.integers(360, 600)))
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:] = rng.integers(0, 256, 3)
        label = np.full((height, width), rng.integers(1, 151), dtype=np.uint8)
        for _ in range(12):  # blobs: ellipses with a colour and an ADE20K id (0 = "other")
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, center, axes, angle, 0, 360, [int(v) for v in rng.integers(0, 256, 3)], -1)
            cv2.ellipse(label, center, axes, angle, 0, 360, int(rng.integers(0, 151)), -1)
        noise = rng.normal(0, 12, image.shape)  # texture, so the JPEGs are not trivially small
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(image_dir / f"ADE_train_{index:08d}.jpg", quality=90)
        Image.fromarray(label).save(label_dir / f"ADE_train_{index:08d}.png")
    return root


def loader_images_per_second(dataset, workers: int, batch_size: int, runs: int) -> dict:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, worker_init_fn=seed_worker,
        persistent_workers=workers > 0, drop_last=True, generator=torch.Generator().manual_seed(0))
    images_per_pass = (len(dataset) // batch_size) * batch_size
    rates = []
    for run in range(runs + 1):  # pass 0 is the warm-up (worker start, page cache)
        dataset.set_epoch(run)
        start = time.perf_counter()
        for batch in loader:
            assert batch["image"].shape[1:] == (3, 512, 512)
        elapsed = time.perf_counter() - start
        if run > 0:
            rates.append(images_per_pass / elapsed)
    del loader
    return dict(num_workers=workers, images_per_second=statistics.median(rates), runs=[round(r, 2) for r in rates])


def training_step_rate(steps: int, batch_size: int = 2, size: int = 512) -> dict:
    from segnext import create_model

    torch.manual_seed(0)
    model = create_model("segnext_t", 150)
    model.train()
    images = torch.randn(batch_size, 3, size, size)
    labels = torch.randint(0, 150, (batch_size, size, size))
    labels[:, :16] = 255
    durations = []
    for step in range(steps + 1):  # step 0 is the warm-up
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255, reduction="sum") / labels.numel()
        loss.backward()
        elapsed = time.perf_counter() - start
        if step > 0:
            durations.append(elapsed)
    seconds = statistics.median(durations)
    return dict(model="segnext_t", num_classes=150, batch_size=batch_size, crop=size, seconds_per_step=seconds,
                images_per_second=batch_size / seconds, steps=[round(d, 3) for d in durations],
                torch_threads=torch.get_num_threads())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="generated images (default 64)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per worker count (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="num_workers values")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps, 0 to skip (default 3)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/dataloader.json")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    transform = TrainTransform(crop_size=(512, 512), img_scale=(2048, 512), ratio_range=(0.5, 2.0))
    with tempfile.TemporaryDirectory(prefix="segnext_bench_") as folder:
        print(f"generating {args.images} ADE20K-like images ...", flush=True)
        root = make_ade20k_like(Path(folder) / "ADEChallengeData2016", args.images)
        dataset = build_dataset("ade20k", root, "training", transform=transform, seed=0)
        loaders = []
        for workers in args.workers:
            result = loader_images_per_second(dataset, workers, args.batch_size, args.runs)
            print(f"  num_workers={workers}: {result['images_per_second']:.1f} images/s (runs {result['runs']})",
                  flush=True)
            loaders.append(result)

    training = None
    if args.train_steps > 0:
        print("timing SegNeXt-T training steps ...", flush=True)
        training = training_step_rate(args.train_steps)

    print()
    print(f"{'what':<42} {'images/s':>9} {'x training':>11}")
    for result in loaders:
        ratio = f"{result['images_per_second'] / training['images_per_second']:.1f}" if training else "-"
        result["ratio_to_training"] = float(ratio) if training else None
        print(f"{'loader, num_workers=' + str(result['num_workers']):<42} {result['images_per_second']:>9.1f} "
              f"{ratio:>11}")
    if training:
        print(f"{'SegNeXt-T train step (batch 2, 512x512)':<42} {training['images_per_second']:>9.2f} "
              f"{'1.0':>11}   ({training['seconds_per_step']:.2f} s/step)")
        best = max(r["images_per_second"] for r in loaders)
        met = best >= GOAL_RATIO * training['images_per_second']
        print(f"goal: loader >= {GOAL_RATIO:.0f}x training: {'met' if met else 'NOT met'}"
              f" (best {best / training['images_per_second']:.1f}x)")

    report = dict(
        benchmark="dataloader",
        command=" ".join(["python", "benchmarks/bench_dataloader.py"] + list(sys.argv[1:] if argv is None else argv)),
        pipeline=repr(transform), images=args.images, image_size="683x512 (half), 480-800 x 360-600 (half), JPEG q90",
        batch_size=args.batch_size, loaders=loaders, training_step=training, goal_ratio=GOAL_RATIO,
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count(),
                     torch=torch.__version__, opencv=cv2.__version__, numpy=np.__version__,
                     load_average_before=[round(v, 2) for v in load_before],
                     load_average_after=[round(v, 2) for v in os.getloadavg()]),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if max(load_before[0], os.getloadavg()[0]) > (os.cpu_count() or 1):
        print(f"warning: other processes were running (load average {load_before[0]:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores): the rates are low")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
