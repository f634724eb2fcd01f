"""What `segnext.inference.evaluation_mode` costs per prediction, next to a SegNeXt-T forward.

    python benchmarks/bench_evaluation_mode.py --out benchmarks/results/evaluation_mode.json

Every prediction (Segmenter, segment, evaluate, the server) enters `evaluation_mode`, which puts a
model in training mode into eval mode for the call and shares that switch between threads. Timed
here, median of `--repeats` rounds of `--calls` entries and exits, for the model kinds a prediction
meets: a plain SegNeXt in eval mode (Segmenter.from_checkpoint on a GPU), in training mode (a model
straight from create_model), the same inside the mixed-precision wrapper, and the optimized model
(the CPU's default backend). Beside it, the single-threaded version it replaced (the modes of all
modules listed, model.eval(), every flag put back), and one SegNeXt-T forward at 256x256 on this
machine for scale. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import timeit
from pathlib import Path

import torch

import segnext
from segnext.inference import evaluation_mode, optimize_for_inference
from segnext.inference.precision import AutocastModel


@contextlib.contextmanager
def single_threaded_evaluation_mode(model):
    """The version before threads were considered: correct alone, not when calls overlap."""
    modes = [(module, module.training) for module in model.modules()]
    if not any(training for _, training in modes):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def microseconds_per_call(context, model, calls: int, repeats: int) -> float:
    def enter_and_exit():
        with context(model):
            pass
    return 1e6 * statistics.median(timeit.repeat(enter_and_exit, number=calls, repeat=repeats)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    torch.manual_seed(0)
    eval_model = segnext.create_model("segnext_t", num_classes=150).eval()
    training_model = segnext.create_model("segnext_t", num_classes=150)
    models = {
        "SegNeXt-T, eval mode": eval_model,
        "SegNeXt-T, training mode": training_model,
        "SegNeXt-T in AutocastModel (amp)": AutocastModel(eval_model, "cpu", torch.bfloat16),
        "optimize_for_inference(SegNeXt-T)": optimize_for_inference(eval_model),
    }
    images = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        for _ in range(2):
            eval_model(images)
        forward_ms = 1e3 * statistics.median(timeit.repeat(lambda: eval_model(images), number=1, repeat=5))

    rows = []
    for name, model in models.items():
        now = microseconds_per_call(evaluation_mode, model, args.calls, args.repeats)
        before = microseconds_per_call(single_threaded_evaluation_mode, model, args.calls, args.repeats)
        rows.append({"model": name, "evaluation_mode_us": round(now, 1), "single_threaded_us": round(before, 1),
                     "share_of_forward_256": round(now / (1e3 * forward_ms), 5)})

    print(f"evaluation_mode per prediction (median of {args.repeats} x {args.calls} calls); one SegNeXt-T "
          f"forward at 256x256: {forward_ms:.1f} ms, {torch.get_num_threads()} threads")
    print(f"{'model':<36} {'now us':>9} {'before us':>10} {'of a forward':>13}")
    for row in rows:
        print(f"{row['model']:<36} {row['evaluation_mode_us']:>9.1f} {row['single_threaded_us']:>10.1f} "
              f"{100 * row['share_of_forward_256']:>12.2f}%")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                        "torch": torch.__version__, "forward_256_ms": round(forward_ms, 2),
                                        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
