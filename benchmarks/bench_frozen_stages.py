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
import sys

from bench_grad_checkpointing import add_step_arguments, measure_step, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser, "frozen_stages.json")
    parser.add_argument("--frozen-stages", nargs="+", type=int, default=[0, 2, 4])
    args = parser.parse_args()
    rows = [{"variant": variant, "frozen_stages": frozen, **measure_step(variant, args, frozen_stages=frozen)}
            for variant in args.variants for frozen in args.frozen_stages]
    report(rows, args, "frozen_stages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
