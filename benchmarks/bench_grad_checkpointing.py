"""Memory and time of a training step with and without gradient checkpointing, each case in a fresh process.

    python benchmarks/bench_grad_checkpointing.py --out benchmarks/results/grad_checkpointing.json

A training step as `segnext train` takes it (forward, cross-entropy, backward, AdamW; channels-last and
the transposed strip-convolution gradients on the CPU), on random images and labels, for each variant
with `set_grad_checkpointing(False)` and `(True)`. Reported per case: the bytes autograd keeps for the
backward pass of one step (exact, from saved-tensor hooks), the process's peak memory (maxrss: it
includes the interpreter, torch, the weights and AdamW's state) and the median step time after
`--warmup` steps. On a GPU (`--device cuda`) the peak is torch.cuda.max_memory_allocated. Prints a
table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, statistics, time, torch, torch.nn.functional as F, segnext
from segnext.ops.strip_conv_grad import use_transposed_strip_grads
device = torch.device({device!r})
torch.manual_seed(0)
model = segnext.create_model({variant!r}, 150).set_grad_checkpointing({checkpointing}).freeze_encoder({frozen})
layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
model.to(device, memory_format=layout).train()
if device.type == "cpu":
    use_transposed_strip_grads(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=6e-5)
x = torch.randn({batch}, 3, {size}, {size}, device=device).contiguous(memory_format=layout)
y = torch.randint(0, 150, ({batch}, {size}, {size}), device=device)
saved = []

def pack(tensor):
    saved.append(tensor.numel() * tensor.element_size())
    return tensor

def step(count_saved=False):
    optimizer.zero_grad(set_to_none=True)
    if count_saved:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = F.cross_entropy(model(x), y)
    else:
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()

step(count_saved=True)
for _ in range({warmup} - 1):
    step()
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
times = []
for _ in range({steps}):
    start = time.perf_counter(); step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(sum(saved), peak, statistics.median(times))
"""


def measure_step(variant: str, args, checkpointing: bool = False, frozen_stages: int = 0) -> dict:
    """{saved_mib, peak_mib, step_s} of one case, in a fresh process (args: device, batch, size, warmup, steps)."""
    script = SCRIPT.format(device=args.device, variant=variant, checkpointing=checkpointing, frozen=frozen_stages,
                           batch=args.batch, size=args.size, warmup=max(1, args.warmup), steps=args.steps)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(result.stderr)
    saved, peak, seconds = result.stdout.split()
    return {"saved_mib": int(saved) / 2**20, "peak_mib": int(peak) / 2**20, "step_s": float(seconds)}


def add_step_arguments(parser: argparse.ArgumentParser, results_name: str) -> None:
    """The options of a training-step benchmark; --out defaults to benchmarks/results/RESULTS_NAME."""
    parser.add_argument("--variants", nargs="+", default=["segnext_t", "segnext_b"])
    parser.add_argument("--size", type=int, default=512, help="square crop (default 512, ADE20K's)")
    parser.add_argument("--batch", type=int, default=2, help="images per step (default 2, the official per GPU)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / results_name))


def report(rows: list, args, option: str) -> None:
    """Print the table of `rows` (one per variant and value of `option`, the first of each variant the
    base of its ratios) and write them as JSON to args.out."""
    print(f"{args.batch} x {args.size}x{args.size} crops, {args.device}, median of {args.steps} steps")
    print(f"{'variant':<11}{option:>19}{'kept for backward':>19}{'peak memory':>13}{'step':>9}{'memory':>8}{'time':>7}")
    for row in rows:
        base = next(r for r in rows if r["variant"] == row["variant"])
        print(f"{row['variant']:<11}{str(row[option]):>19}{row['saved_mib']:>15.0f} MiB"
              f"{row['peak_mib']:>9.0f} MiB{row['step_s']:>8.2f}s{row['peak_mib'] / base['peak_mib']:>7.2f}x"
              f"{row['step_s'] / base['step_s']:>6.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "device": args.device,
                               "batch": args.batch, "size": args.size, "steps": args.steps, "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser, "grad_checkpointing.json")
    args = parser.parse_args()
    rows = [{"variant": variant, "grad_checkpointing": checkpointing, **measure_step(variant, args, checkpointing)}
            for variant in args.variants for checkpointing in (False, True)]
    report(rows, args, "grad_checkpointing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
