"""What a forward costs per megapixel at input sizes near a dataset's, eager and optimized, on this CPU.

    python benchmarks/bench_input_sizes.py --checkpoint camvid --out benchmarks/results/input_sizes.json

For each --sizes HxW (one image, channels-last, at the threads torch uses), the model's own forward
(eager) and `optimize_for_inference`'s, alternated size by size after two warm-up calls each: the
median of --runs calls, and the optimized path's milliseconds per megapixel. A path whose cost per
pixel jumps at some sizes (feature maps of odd sides at the deeper stages) shows here. Prints a table
and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import segnext
from segnext.inference import optimize_for_inference


def median_ms(model, images: torch.Tensor, runs: int) -> float:
    with torch.inference_mode():
        for _ in range(2):
            model(images)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="camvid", help="any checkpoint create_model reads (default camvid)")
    parser.add_argument("--sizes", nargs="+", default=["360x480", "352x480", "368x480", "384x480", "360x512",
                                                       "384x512", "512x512"], metavar="HxW")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    model = segnext.create_model(checkpoint=args.checkpoint).eval()
    optimized = optimize_for_inference(model)
    rows = []
    print(f"{args.checkpoint}: 1 image, {torch.get_num_threads()} threads, median of {args.runs} calls")
    print(f"{'input':>10} {'eager ms':>9} {'optimized ms':>13} {'optimized ms/Mpx':>17}")
    for size in args.sizes:
        height, width = (int(side) for side in size.lower().split("x"))
        images = torch.randn(1, 3, height, width).contiguous(memory_format=torch.channels_last)
        eager, fast = median_ms(model, images, args.runs), median_ms(optimized, images, args.runs)
        per_megapixel = fast / (height * width / 1e6)
        rows.append({"height": height, "width": width, "eager_ms": eager, "optimized_ms": fast,
                     "optimized_ms_per_megapixel": per_megapixel})
        print(f"{size:>10} {eager:9.1f} {fast:13.1f} {per_megapixel:17.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": args.checkpoint, "threads": torch.get_num_threads(),
                                        "torch": torch.__version__, "machine": platform.processor() or
                                        platform.machine(), "runs": args.runs, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
