"""Time and memory of a training step with the first encoder stages frozen, each case in a fresh process.

    python benchmarks/bench_frozen_stages.py --out benchmarks/results/frozen_stages.json

The training step of bench_grad_checkpointing.py (forward, cross-entropy, backward, AdamW; channels-last
and the transposed strip-convolution gradients on the CPU) with `freeze_encoder(n)` for each n of
`--frozen-stages` (`model.frozen_stages` in a config): the frozen stages take no gradient, so the
backward pass stops above them. Reported per case: the bytes autograd keeps for the backward pass,
the process's peak memory and the median step time, with the ratios to n = 0. Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from bench_grad_checkpointing import REPO, measure_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["segnext_t", "segnext_b"])
    parser.add_argument("--frozen-stages", nargs="+", type=int, default=[0, 2, 4])
    parser.add_argument("--size", type=int, default=512, help="square crop (default 512, ADE20K's)")
    parser.add_argument("--batch", type=int, default=2, help="images per step (default 2, the official per GPU)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "frozen_stages.json"))
    args = parser.parse_args()
    rows = [{"variant": variant, "frozen_stages": frozen, **measure_step(variant, args, frozen_stages=frozen)}
            for variant in args.variants for frozen in args.frozen_stages]
    print(f"{args.batch} x {args.size}x{args.size} crops, {args.device}, median of {args.steps} steps")
    print(f"{'variant':<11}{'frozen':>7}{'kept for backward':>19}{'peak memory':>13}{'step':>9}"
          f"{'memory':>8}{'time':>7}")
    for row in rows:
        base = next(r for r in rows
                    if r["variant"] == row["variant"] and r["frozen_stages"] == args.frozen_stages[0])
        print(f"{row['variant']:<11}{row['frozen_stages']:>7}{row['saved_mib']:>15.0f} MiB"
              f"{row['peak_mib']:>9.0f} MiB{row['step_s']:>8.2f}s{row['peak_mib'] / base['peak_mib']:>7.2f}x"
              f"{row['step_s'] / base['step_s']:>6.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "device": args.device,
                               "batch": args.batch, "size": args.size, "steps": args.steps, "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
