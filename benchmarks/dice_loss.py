#!/usr/bin/env python3
"""Does `loss.dice_weight` help a class of few, thin pixels? Cross-entropy against cross-entropy +
Dice (and against the class-weighted cross-entropy `segnext data check` suggests), on a dataset made
here: textured images with thin dark cracks (1-3 pixels wide, about 2% of the pixels), trained from
scratch with the same seed, iterations and everything else, scored on other images of the same kind.

    python benchmarks/dice_loss.py --iterations 400 --out benchmarks/results/dice_loss_cracks.json
    python benchmarks/dice_loss.py --iterations 400 --seed 1 --losses ce dice --out dice_loss_seed1.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from segnext.data import write_image, write_label
from segnext.train.config import load_config
from segnext.train.loop import train

SIZE = 256


def crack_image(rng: np.random.Generator):
    """A textured surface and its cracks: (rgb uint8 (H, W, 3), label uint8 (H, W): 1 on a crack)."""
    base = rng.uniform(90, 170)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), (0, 0), rng.uniform(1, 4))
    shade = np.linspace(-1, 1, SIZE, dtype=np.float32)[None, :] * rng.uniform(-25, 25)
    grey = base + 18 * noise / (noise.std() + 1e-6) + shade
    label = np.zeros((SIZE, SIZE), np.uint8)
    for _ in range(rng.integers(1, 4)):  # a crack: a random walk of short segments
        point = rng.uniform(0, SIZE, 2)
        angle = rng.uniform(0, 2 * np.pi)
        points = [point.copy()]
        for _ in range(rng.integers(8, 20)):
            angle += rng.normal(0, 0.5)
            point = point + rng.uniform(6, 16) * np.array([np.cos(angle), np.sin(angle)])
            points.append(point.copy())
        cv2.polylines(label, [np.round(points).astype(np.int32)], False, 1, int(rng.integers(1, 4)))
    grey = np.where(label == 1, grey - rng.uniform(35, 60), grey)
    rgb = np.clip(np.stack([grey, grey * 0.97, grey * 0.92], -1), 0, 255).astype(np.uint8)
    return rgb, label


def make_dataset(root: Path, train_images: int, val_images: int) -> float:
    """ROOT/images/{train,val}, ROOT/labels/{train,val}, classes.json; the share of crack pixels."""
    cracks = []
    for split, count, seed in (("train", train_images, 0), ("val", val_images, 1)):
        rng = np.random.default_rng(seed)
        for index in range(count):
            rgb, label = crack_image(rng)
            write_image(root / "images" / split / f"{index:04d}.png", rgb)
            write_label(root / "labels" / split / f"{index:04d}.png", label)
            cracks.append(label.mean())
    (root / "classes.json").write_text(json.dumps({"classes": ["surface", "crack"], "groups": ".+"}))
    return float(np.mean(cracks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--work-dir", default="runs/dice_loss")
    parser.add_argument("--out", default="dice_loss.json")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (the images are the same)")
    parser.add_argument("--losses", nargs="+", choices=("ce", "weighted", "dice"), default=("ce", "weighted", "dice"))
    args = parser.parse_args()
    work = Path(args.work_dir)
    share = make_dataset(work / "cracks", 96, 48)
    print(f"dataset: 96 train / 48 val images of {SIZE}x{SIZE}, {100 * share:.1f}% crack pixels")
    common = ["model.num_classes=null", f"data.root={work / 'cracks'}", "data.dataset=folder",
              f"data.crop_size=[{SIZE},{SIZE}]", f"data.img_scale=[{SIZE},{SIZE}]", "data.ratio_range=[0.75,1.5]",
              "data.copy_paste_classes=[]",
              "data.num_workers=1", "schedule.by_time=false", f"train.max_iters={args.iterations}",
              "train.max_time_minutes=null", "train.batch_size=8", "train.micro_batch_size=8",
              "train.eval_interval=0", f"train.checkpoint_interval={args.iterations}", f"train.seed={args.seed}",
              f"evaluation.img_scale=[{SIZE},{SIZE}]", "evaluation.scales=[1.0]", "evaluation.flip=false",
              "evaluation.max_images=null"]
    variants = {"ce": ("cross-entropy", ["loss.class_weight=null"]),
                "weighted": ("class-weighted cross-entropy", ["loss.class_weight=[0.5,5.0]"]),
                "dice": ("cross-entropy + Dice", ["loss.class_weight=null", "loss.dice_weight=1.0"])}
    rows = []
    for name, overrides in (variants[key] for key in args.losses):
        config = load_config("camvid/segnext_t_camvid_cpu_60min", common + overrides)
        start = time.perf_counter()
        run_dir = work / f"{name.replace(' ', '_').replace('+', 'plus')}_seed{args.seed}"
        result = train(config, run_dir, resume=False, progress=False)
        seconds = time.perf_counter() - start
        iou = result.results["IoU"]
        rows.append({"loss": name, "crack_IoU": iou[1], "surface_IoU": iou[0], "mIoU": result.results["mIoU"],
                     "crack_Acc": result.results["Acc"][1], "seconds": round(seconds, 1),
                     "iterations": args.iterations, "seed": args.seed})
        print(f"{name:30s} crack IoU {iou[1]:6.2f}  surface IoU {iou[0]:6.2f}  mIoU {result.results['mIoU']:6.2f}  "
              f"crack recall {result.results['Acc'][1]:6.2f}  ({seconds:.0f} s)", flush=True)
    Path(args.out).write_text(json.dumps({"crack_pixel_share": share, "torch": torch.__version__, "runs": rows},
                                         indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
