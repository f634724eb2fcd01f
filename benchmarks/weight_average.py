#!/usr/bin/env python3
"""Would an exponential moving average (EMA) of the weights help the CamVid CPU recipe?

Runs `camvid/segnext_t_camvid_cpu_60min` through `segnext.train` (shortened by --minutes, trained
on drives 0001TP and 0016E5, evaluated on the held-out drive 0006R0), keeping EMAs of the weights
and BatchNorm statistics at several decays beside the run (the run itself is untouched: the EMAs
are updated after each of its steps with the usual warm-up, a decay of min(decay, (1 + n) / (10 + n))
at step n, so that a decay above 0.997 is capped below it for the first 3,000 steps), then scores
each EMA on the held-out drive with the run's own test settings. The comparison is paired: the same
training trajectory, so seed noise does not enter it.

    segnext data split camvid data/camvid --hold-out 0006R0
    python benchmarks/weight_average.py --root data/camvid --minutes 20 --work-dir runs/ema20 \
        --out benchmarks/results/camvid_weight_average_20min.json
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

import segnext
import segnext.train.loop as loop_module
from segnext.evaluation import evaluate
from segnext.train.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CamVid with the splits train_fit and train_heldout")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--work-dir", default="runs/weight_average")
    parser.add_argument("--decays", type=float, nargs="+", default=[0.99, 0.998, 0.9995])
    parser.add_argument("--out", default="weight_average.json")
    args = parser.parse_args()

    config = load_config("camvid/segnext_t_camvid_cpu_60min", [
        f"data.root={args.root}", "data.train_split=train_fit", "data.val_split=train_heldout",
        f"train.max_time_minutes={args.minutes}", "train.eval_interval=0", "evaluation.max_images=null"])
    averages, steps = {}, [0]
    train_step = loop_module.train_step

    def train_step_and_average(forward, *step_args, **step_kwargs):
        out = train_step(forward, *step_args, **step_kwargs)
        state = [t.detach() for t in forward.model.state_dict().values() if t.is_floating_point()]
        if not averages:
            averages.update({decay: [t.clone() for t in state] for decay in args.decays})
        steps[0] += 1
        for decay, kept in averages.items():
            torch._foreach_lerp_(kept, state, 1 - min(decay, (1 + steps[0]) / (10 + steps[0])))
        return out

    loop_module.train_step = train_step_and_average
    result = loop_module.train(config, args.work_dir, resume=False, progress=False)
    trained = segnext.create_model(checkpoint=Path(args.work_dir) / "final_model").eval()
    heldout = config.data.build(config.data.val_split)
    rows = {"trained weights": result.results}
    for decay, kept in averages.items():
        averaged = copy.deepcopy(trained)
        for target, value in zip([t for t in averaged.state_dict().values() if t.is_floating_point()], kept):
            target.copy_(value)
        rows[f"EMA {decay}"] = evaluate(averaged, heldout, config.evaluation, num_classes=trained.num_classes)
    names = heldout.class_names
    print(f"{result.iteration} iterations in {args.minutes:g} min; held-out drive 0006R0, "
          f"{config.evaluation.describe()}")
    print(f"{'weights':<16} {'mIoU':>6}  " + " ".join(f"{name[:8]:>8}" for name in names))
    for name, scores in rows.items():
        print(f"{name:<16} {scores['mIoU']:6.2f}  " + " ".join(f"{iou:8.1f}" for iou in scores["IoU"]))
    Path(args.out).write_text(json.dumps({
        "command": "benchmarks/weight_average.py", "minutes": args.minutes, "iterations": result.iteration,
        "classes": names, **{name: {"mIoU": scores["mIoU"], "IoU": scores["IoU"]} for name, scores in rows.items()},
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
