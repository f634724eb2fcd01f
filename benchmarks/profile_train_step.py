"""Where a training step's time goes, and how close it runs to the machine's matrix-multiply rate.

    python benchmarks/profile_train_step.py                       # the CamVid CPU config's step
    python benchmarks/profile_train_step.py --out benchmarks/results/train_step_profile.json

One step as `segnext train` runs it (channels-last model and input, the strip convolutions' weight
gradients on the transposed image, stride-8 logits, the banded loss over all pixels, AdamW):
SegNeXt-T, 11 classes, batch 4 of 256x256 crops by default (the `camvid/segnext_t_camvid_cpu_60min`
config). Times each phase (forward, loss, backward, optimizer
step) with random images and labels, median of --steps after --warmup, and reports

- the achieved rate of forward + backward in GFLOP/s, counting the usual 3 x forward MACs x 2
  flops (the backward computes two products per forward product: input and weight gradients),
  against this machine's float32 matrix-multiply rate with the same threads;
- the operators that take the time (torch.profiler, self CPU time over --profile-steps steps);
- with --compare-amp: the step with the forward in bfloat16 (`train.amp: true` on a CPU) against
  float32, alternated;
- with --compare-optimizers: the AdamW step of `segnext train` (fused where PyTorch has it) against
  PyTorch's per-parameter loop, alternated;
- with --compile: `torch.compile` of the forward (inductor: fused elementwise chains), the seconds it
  takes to compile, and its step time against the eager step's, the two alternated step by step.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import segnext
from segnext.flops import count_macs, matmul_gflops
from segnext.ops.strip_conv_grad import use_transposed_strip_grads
from segnext.train.config import OptimizerSection
from segnext.train.optim import build_optimizer, parameter_groups
from segnext.train.step import StrideEightLogits


def timed_step(model, images, labels, optimizer, banded: bool, amp_dtype=None):
    """One step (the forward under autocast to `amp_dtype`, as `train.amp` runs it); returns the
    seconds of each phase."""
    times = {}
    start = time.perf_counter()
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model.forward_logits(images)
    times["forward"] = time.perf_counter() - start
    start = time.perf_counter()
    loss = segnext.segmentation_loss(logits, labels, banded=banded)
    times["loss"] = time.perf_counter() - start
    start = time.perf_counter()
    loss.backward()
    times["backward"] = time.perf_counter() - start
    start = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times["optimizer"] = time.perf_counter() - start
    times["step"] = sum(times.values())
    return times


class CompiledForward(torch.nn.Module):
    """`model` with `forward_logits` and `forward` compiled by torch.compile (which compiles a
    module's `forward` only); inductor fuses the elementwise chains (BatchNorm, GELU, the
    attention's sums and gating). Also used by benchmarks/gpu/bench_gpu.py."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.forward_logits = torch.compile(model.forward_logits)
        self.compiled_forward = torch.compile(model.forward)

    def forward(self, images):
        return self.compiled_forward(images)


def alternated(steps_by_name: dict, steps: int, warmup: int):
    """Each of `steps_by_name` (name -> a call returning `timed_step`'s seconds) once a round, for
    `warmup` rounds and then `steps` timed ones: (the step seconds of each, their medians)."""
    seconds = {name: [] for name in steps_by_name}
    for index in range(warmup + steps):
        for name, step in steps_by_name.items():
            took = step()["step"]
            if index >= warmup:
                seconds[name].append(took)
    return seconds, {name: statistics.median(values) for name, values in seconds.items()}


def compare_compiled(model, images, labels, optimizer, banded: bool, steps: int, warmup: int) -> dict:
    """Step seconds of the eager and the compiled forward, alternated, medians and their ratio."""
    compiled = CompiledForward(model)
    start = time.perf_counter()
    timed_step(compiled, images, labels, optimizer, banded)
    compile_seconds = time.perf_counter() - start
    seconds, median = alternated({name: lambda runner=runner: timed_step(runner, images, labels, optimizer, banded)
                                  for name, runner in (("eager", model), ("compiled", compiled))}, steps, warmup)
    ratio = median["compiled"] / median["eager"]
    print(f"torch.compile of the forward: {compile_seconds:.0f} s to compile; step {median['compiled'] * 1e3:.0f} ms "
          f"against eager {median['eager'] * 1e3:.0f} ms (x{ratio:.2f})")
    return dict(compile_seconds=compile_seconds, median_seconds=median, ratio_compiled_to_eager=ratio,
                runs=seconds)


def compare_amp(model, images, labels, optimizer, banded: bool, steps: int, warmup: int) -> dict:
    """Step seconds in float32 and with the forward in bfloat16 (`train.amp: true` on a CPU),
    alternated step by step, medians and their ratio; and whether this CPU has bfloat16 instructions
    (AVX512-BF16 or AMX), without which oneDNN emulates them."""
    native = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    seconds, median = alternated({name: lambda dtype=dtype: timed_step(model, images, labels, optimizer, banded, dtype)
                                  for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16))}, steps, warmup)
    ratio = median["bfloat16"] / median["float32"]
    print(f"bfloat16 autocast (train.amp: true; this CPU {'has' if native else 'lacks'} bfloat16 instructions): "
          f"step {median['bfloat16'] * 1e3:.0f} ms against float32 {median['float32'] * 1e3:.0f} ms (x{ratio:.2f})")
    return dict(native_bf16=native, median_seconds=median, ratio_bf16_to_fp32=ratio, runs=seconds)


def compare_optimizers(model, steps: int, warmup: int) -> dict:
    """Seconds of one AdamW step over the model's gradients: `build_optimizer`'s (fused where PyTorch
    has it) against PyTorch's per-parameter loop, alternated step by step on copies of the model."""
    copies = {name: copy.deepcopy(model) for name in ("build_optimizer (fused)", "per-parameter loop")}
    generator = torch.Generator().manual_seed(0)
    for parameters in zip(*(one.parameters() for one in copies.values())):
        gradient = torch.randn(parameters[0].shape, generator=generator) * 1e-3
        for parameter in parameters:
            parameter.grad = gradient.clone()
    optimizers = {"build_optimizer (fused)": build_optimizer(copies["build_optimizer (fused)"], OptimizerSection()),
                  "per-parameter loop": torch.optim.AdamW(parameter_groups(copies["per-parameter loop"],
                                                                           OptimizerSection()), foreach=False)}
    seconds = {name: [] for name in optimizers}
    for index in range(warmup + steps):
        for name, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            if index >= warmup:
                seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"AdamW step over {sum(p.numel() for p in model.parameters()):,} parameters: " + ", ".join(
        f"{name} {1e3 * value:.1f} ms" for name, value in median.items())
          + f" (x{median['build_optimizer (fused)'] / median['per-parameter loop']:.2f})")
    return dict(median_seconds=median, runs=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="segnext_t")
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--plain-loss", action="store_true", help="interpolate + cross-entropy, not banded")
    parser.add_argument("--plain-strip-grads", action="store_true",
                        help="PyTorch's own strip-convolution gradients (train.transposed_strip_grads=false)")
    parser.add_argument("--top", type=int, default=12, help="operators listed")
    parser.add_argument("--compare-optimizers", action="store_true",
                        help="also time the AdamW step: build_optimizer's (fused) against the per-parameter loop")
    parser.add_argument("--compare-amp", action="store_true",
                        help="also time the step with the forward in bfloat16 (train.amp: true), alternated")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with torch.compile of the forward, alternated with the eager one")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    height, width = args.crop
    memory_format = torch.contiguous_format if args.no_channels_last else torch.channels_last
    model = segnext.create_model(args.variant, num_classes=args.classes).train().to(memory_format=memory_format)
    if not args.plain_strip_grads:
        use_transposed_strip_grads(model)
    optimizer = build_optimizer(model, OptimizerSection())  # as segnext train: fused where PyTorch has it
    images = torch.randn(args.batch, 3, height, width).contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.classes, (args.batch, height, width))
    banded = not args.plain_loss

    forward_macs, by_kind = count_macs(StrideEightLogits(model), height, width, args.batch)
    fwd_bwd_gflop = 3 * 2 * forward_macs / 1e9
    matmul_rate = matmul_gflops()
    load_before = os.getloadavg()

    for _ in range(args.warmup):
        timed_step(model, images, labels, optimizer, banded)
    runs = [timed_step(model, images, labels, optimizer, banded) for _ in range(args.steps)]
    median = {phase: statistics.median(run[phase] for run in runs) for phase in runs[0]}

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.profile_steps):
            timed_step(model, images, labels, optimizer, banded)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total_self = sum(event.self_cpu_time_total for event in events) or 1.0
    top = [{"op": event.key, "self_ms_per_step": event.self_cpu_time_total / 1e3 / args.profile_steps,
            "share": event.self_cpu_time_total / total_self, "calls_per_step": event.count / args.profile_steps}
           for event in events[:args.top]]

    fwd_bwd_seconds = median["forward"] + median["backward"]
    result = {
        "variant": args.variant, "classes": args.classes, "batch": args.batch, "crop": [height, width],
        "channels_last": not args.no_channels_last, "banded_loss": banded,
        "transposed_strip_grads": not args.plain_strip_grads, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "median_seconds": median, "runs": runs,
        "forward_gmacs": forward_macs / 1e9, "forward_gmacs_by_kind": {k: v / 1e9 for k, v in by_kind.items()},
        "fwd_bwd_gflop": fwd_bwd_gflop, "fwd_bwd_gflops_per_s": fwd_bwd_gflop / fwd_bwd_seconds,
        "step_gflops_per_s": fwd_bwd_gflop / median["step"], "matmul_gflops_per_s": matmul_rate,
        "crops_per_second": args.batch / median["step"], "top_operators": top,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }

    print(f"{args.variant}, {args.classes} classes, batch {args.batch} of {height}x{width}, "
          f"{'NCHW' if args.no_channels_last else 'channels-last'}, {'banded' if banded else 'plain'} loss, "
          f"{'PyTorch' if args.plain_strip_grads else 'transposed'} strip gradients, "
          f"{torch.get_num_threads()} threads; load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"  {'phase':<10} {'median ms':>10} {'share':>7}")
    for phase in ("forward", "loss", "backward", "optimizer", "step"):
        print(f"  {phase:<10} {median[phase] * 1e3:>10.1f} {median[phase] / median['step']:>7.1%}")
    print(f"forward {forward_macs / 1e9:.2f} GMACs ({', '.join(f'{k} {v / 1e9:.2f}' for k, v in by_kind.items())}); "
          f"forward + backward {fwd_bwd_gflop:.1f} GFLOP in {fwd_bwd_seconds * 1e3:.0f} ms = "
          f"{result['fwd_bwd_gflops_per_s']:.0f} GFLOP/s vs float32 matmul {matmul_rate:.0f} GFLOP/s "
          f"({result['fwd_bwd_gflops_per_s'] / matmul_rate:.0%}); {result['crops_per_second']:.2f} crops/s")
    print(f"  {'operator (self CPU time)':<44} {'ms/step':>8} {'share':>7} {'calls':>6}")
    for row in top:
        print(f"  {row['op'][:44]:<44} {row['self_ms_per_step']:>8.1f} {row['share']:>7.1%} "
              f"{row['calls_per_step']:>6.0f}")
    if args.compare_optimizers:
        result["optimizers"] = compare_optimizers(model, args.steps, args.warmup)
    if args.compare_amp:
        result["amp"] = compare_amp(model, images, labels, optimizer, banded, args.steps, args.warmup)
    if args.compile:
        result["compile"] = compare_compiled(model, images, labels, optimizer, banded, args.steps, args.warmup)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
