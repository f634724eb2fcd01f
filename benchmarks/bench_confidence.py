"""What each pixel's confidence costs next to the labels alone, and the two ways to compute it.

    python benchmarks/bench_confidence.py --out benchmarks/results/confidence_cost.json

`Segmenter.predict_with_confidence` (`segnext predict --confidence`, the server's
`?output=confidence` and `?confidence=true`) runs `segnext.inference.segment_group_confidence`. Timed
here, in one process, alternating, median of `--rounds` rounds of `--calls` calls after a warm-up, for
a randomly initialised SegNeXt-T in its optimized CPU form (the CPU's default backend) at the single
scale of each dataset's official test:
- `labels`: `Segmenter.predict_group` (label-only upsampling, the CPU's default);
- `bands`: the confidence from bands of rows (`memory_efficient=True`, the CPU's default);
- `full`: the confidence from full-size class scores (`memory_efficient=False`).
Prints a table (milliseconds per image, and each as a ratio to `labels`) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import segnext
from segnext.inference import TestConfig, segment_group_confidence

CASES = {  # name: (classes, image (height, width), test settings)
    "camvid_480x360": (11, (360, 480), TestConfig(img_scale=None)),
    "ade20k_640x480": (150, (480, 640), TestConfig(img_scale=(2048, 512), size_divisor=32)),
    "ade20k_1920x1080": (150, (1080, 1920), TestConfig(img_scale=(2048, 512), size_divisor=32)),
}


def blocky_image(height: int, width: int) -> np.ndarray:
    blocks = np.random.default_rng(0).integers(0, 255, (height // 20 + 1, width // 20 + 1, 3))
    return np.kron(blocks, np.ones((20, 20, 1))).astype(np.uint8)[:height, :width]


def time_case(classes: int, size, config: TestConfig, rounds: int, calls: int) -> dict:
    """Median milliseconds per image of each way, timed in alternation after one warm-up call each."""
    model = segnext.optimize_for_inference(segnext.create_model("segnext_t", classes).eval())
    segmenter = segnext.Segmenter(model, config)
    group = [segmenter.prepare(blocky_image(*size))]
    ways = {"labels": lambda: segmenter.predict_group(group),
            "bands": lambda: segment_group_confidence(model, group, config, memory_efficient=True),
            "full": lambda: segment_group_confidence(model, group, config, memory_efficient=False)}
    times = {way: [] for way in ways}
    for call in ways.values():
        call()
    for _ in range(rounds):
        for way, call in ways.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[way].append(1000 * (time.perf_counter() - start) / calls)
    return {way: statistics.median(values) for way, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{'case':<18} {'labels ms':>10} {'bands ms':>9} {'full ms':>8} {'bands/labels':>13} {'full/labels':>12}")
    rows = []
    for name in args.cases:
        medians = time_case(*CASES[name], rounds=args.rounds, calls=args.calls)
        classes, size, _ = CASES[name]
        rows.append(dict(case=name, classes=classes, image=list(size),
                         **{f"{way}_ms": round(ms, 1) for way, ms in medians.items()},
                         bands_vs_labels=round(medians["bands"] / medians["labels"], 2),
                         full_vs_labels=round(medians["full"] / medians["labels"], 2)))
        print(f"{name:<18} {medians['labels']:10.1f} {medians['bands']:9.1f} {medians['full']:8.1f} "
              f"{rows[-1]['bands_vs_labels']:13.2f} {rows[-1]['full_vs_labels']:12.2f}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M"), torch=torch.__version__,
                                            threads=torch.get_num_threads(), machine=platform.machine(),
                                            rounds=args.rounds, calls=args.calls, results=rows), indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
