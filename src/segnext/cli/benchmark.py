"""`segnext benchmark NAME`: latency and throughput of the inference backends side by side.

The PyTorch backends are timed alternately (one call of each per round), so load from other
processes affects them alike; onnxruntime's sessions, which have thread pools of their own, each in
a block of consecutive calls (`time_in_groups`); the table shows the median and the fastest of the
rounds after warm-up, and the ratio of medians to eager. Results are also written as JSON (--output).

On a GPU, kernels run asynchronously: the device is synchronised before the clock starts and
before it stops, so each time is the whole call's (`synchronizer`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from .arguments import add_amp, amp_setting, non_negative_int, positive_int, with_examples

BACKENDS = ("eager", "optimized", "cuda_graph", "onnxruntime", "onnxruntime-int8")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="latency/throughput of a variant: eager, optimized, CUDA graphs, onnxruntime",
        description="Time the forward pass (logits at the input size) of a variant at a given size and batch: "
                    "PyTorch eager, optimize_for_inference, CUDA graphs (on a GPU) and onnxruntime (on the CPU); "
                    "PyTorch's call by call in turn, each onnxruntime session in blocks of its own (idle threads "
                    "of one runtime spin and slow the other); median of --runs.",
        **with_examples("segnext benchmark segnext_t --shape 512 512",
                        "segnext benchmark segnext_s --batch 4 --backends eager optimized -o bench.json",
                        "segnext benchmark segnext_b --device cuda --batch 8 --amp"))
    parser.add_argument("name", nargs="?", default="segnext_t", help="variant (default segnext_t)")
    parser.add_argument("--checkpoint", "-c", help="weights to load (default: random weights; timing is the same)")
    parser.add_argument("--num-classes", type=positive_int, default=150,
                        help="classes without a checkpoint (default 150)")
    parser.add_argument("--shape", type=positive_int, nargs=2, default=(512, 512), metavar=("H", "W"),
                        help="input height and width (default 512 512)")
    parser.add_argument("--batch", "--batch-size", type=positive_int, default=1, help="images per call (default 1)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS,
                        help="what to time (default: those that run on the device: eager, optimized, and cuda_graph "
                             "on a GPU, or onnxruntime float32 and int8 on the CPU when installed; int8 is calibrated "
                             "on random inputs here, which changes its accuracy, not its speed)")
    parser.add_argument("--runs", type=positive_int, default=7, help="timed rounds (default 7; the median is reported)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, "
                                                          "mps; onnxruntime is timed on the CPU only")
    add_amp(parser, "time eager and optimized")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    parser.add_argument("--output", "--out", "-o", help="also write the results as JSON to this file")
    parser.set_defaults(func=run)


def time_alternately(functions: Dict[str, Callable[[], object]], runs: int, warmup: int,
                     synchronize: Callable[[], None] = lambda: None) -> Dict[str, List[float]]:
    """Seconds per call of each function, measured round-robin (warm-up rounds discarded).
    synchronize: waits for the device's queued work; called before the clock starts and before it
    stops, so an asynchronous (GPU) call is timed to its end."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    seconds: Dict[str, List[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def time_in_groups(groups: Sequence[Dict[str, Callable[[], object]]], runs: int, warmup: int,
                   synchronize: Callable[[], None] = lambda: None, pause: float = 0.5) -> Dict[str, List[float]]:
    """Seconds per call of each function: within a group alternately (`time_alternately`), the
    groups one after another, in blocks, first in their order and then in reverse (half the runs
    each, so that a steady drift of the machine weighs on every group alike), each block after a
    pause and `warmup` untimed rounds.

    For runtimes with thread pools of their own (PyTorch's OpenMP threads, each onnxruntime
    session's): their idle threads spin for a while after a call and take the cores from whatever
    runs next, so timed call by call each runtime is charged with the other's spinning (on 2 cores,
    PyTorch's optimized SegNeXt-T measured 1.5x slower next to onnxruntime than alone)."""
    seconds: Dict[str, List[float]] = {name: [] for group in groups for name in group}
    first_half = (runs + 1) // 2
    for order, count in ((list(groups), first_half), (list(groups)[::-1], runs - first_half)):
        for group in order:
            if count == 0:
                continue
            time.sleep(pause)  # the previous group's threads stop spinning
            for name, values in time_alternately(group, count, warmup, synchronize).items():
                seconds[name].extend(values)
    return seconds


def synchronizer(device) -> Callable[[], None]:
    """A function that waits until `device` has finished its queued work (nothing to wait for on a CPU)."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def run(args) -> int:
    import torch

    from ..flops import count_macs
    from ..inference.precision import autocast_dtype
    from ..models import create_model
    from ..runtime import use_device
    from ..utils import atomic_write, check_can_write_file, resolve_device

    device = resolve_device(args.device)  # before any work
    if args.output:
        check_can_write_file(args.output, replaces=".json")
    use_device(device)
    dtype = autocast_dtype(device, amp_setting(args))
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or (["eager", "optimized", "cuda_graph"] if device.type == "cuda" else
                                 ["eager", "optimized", "onnxruntime", "onnxruntime-int8"])
    if "cuda_graph" in backends and device.type != "cuda":
        raise ValueError(f"--backends cuda_graph needs a CUDA device, not {device}")
    if args.checkpoint:
        model = create_model(checkpoint=args.checkpoint).eval()
    else:
        model = create_model(args.name, args.num_classes).eval()
    height, width = args.shape
    macs, _ = count_macs(model, height, width, args.batch)
    model = model.to(device)
    images = torch.randn(args.batch, model.config.in_channels, height, width, device=device)
    if amp_setting(args) and dtype is None:
        print("--amp has no effect on the CPU: timing float32")

    with tempfile.TemporaryDirectory() as scratch:
        groups = _pytorch_calls(model, images, backends, dtype)  # one thread pool: timed call by call
        onnx_backends = [name for name in backends if name.startswith("onnxruntime")]
        if onnx_backends and device.type != "cpu":
            print(f"onnxruntime is timed on the CPU only: skipping it on {device} (use --device cpu)")
        elif onnx_backends:
            groups += _onnxruntime_calls(model, images, onnx_backends, Path(scratch))  # each its own pool
        if not groups:
            raise ValueError("nothing to time: none of --backends can run here")
        with torch.no_grad():
            seconds = time_in_groups(groups, args.runs, args.warmup, synchronizer(device))

    rows = []
    eager_median = statistics.median(seconds["eager"]) if "eager" in seconds else None
    for name, values in seconds.items():
        median = statistics.median(values)
        rows.append(dict(backend=name, median_s=median, min_s=min(values), runs=values,
                         images_per_s=args.batch / median, gflops_per_s=2 * macs / median / 1e9,
                         speedup_vs_eager=(eager_median / median) if eager_median else None))
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else _device_name(device)
    precision = f", {str(dtype).replace('torch.', '')} autocast" if dtype is not None else ""
    print(f"{model.config.variant}, {model.num_classes} classes, batch {args.batch} x {height}x{width}, "
          f"{where}{precision}, {2 * macs / 1e9:.1f} GFLOP per call; median of {args.runs} after "
          f"{args.warmup} warm-up rounds, backends alternated")
    print(f"{'backend':<17} {'median ms':>10} {'min ms':>9} {'img/s':>8} {'GFLOP/s':>8} {'vs eager':>9}")
    for r in rows:
        ratio = f"{r['speedup_vs_eager']:.2f}x" if r["speedup_vs_eager"] else "-"
        print(f"{r['backend']:<17} {1e3 * r['median_s']:>10.1f} {1e3 * r['min_s']:>9.1f} {r['images_per_s']:>8.2f} "
              f"{r['gflops_per_s']:>8.1f} {ratio:>9}")
    result = dict(model=model.config.variant, num_classes=model.num_classes, batch=args.batch, height=height,
                  width=width, device=str(device), device_name=_device_name(device),
                  autocast=str(dtype).replace("torch.", "") if dtype is not None else None,
                  threads=torch.get_num_threads(), macs=macs, runs=args.runs, warmup=args.warmup,
                  torch=torch.__version__, machine=platform.machine(), processor=platform.processor(),
                  cpu_count=os.cpu_count(), results=rows)
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, lambda temporary: temporary.write_text(json.dumps(result, indent=2) + "\n"))
        print(f"wrote {output}")
    return 0


def _pytorch_calls(model, images, backends: Sequence[str], dtype) -> List[Dict[str, Callable[[], object]]]:
    """The PyTorch backends as one group of calls (they share PyTorch's thread pool), or none."""
    from ..inference import optimize_for_inference
    from ..inference.backends import inference_model
    from ..inference.precision import AutocastModel

    def as_run(module):
        return module if dtype is None else AutocastModel(module, images.device.type, dtype)

    functions: Dict[str, Callable[[], object]] = {}
    if "eager" in backends:
        eager = as_run(model)
        functions["eager"] = lambda: eager(images)
    if "optimized" in backends:
        optimized = as_run(optimize_for_inference(model))
        functions["optimized"] = lambda: optimized(images)
    if "cuda_graph" in backends:
        graphed = inference_model(model, "cuda_graph", autocast_dtype=dtype)  # records autocast itself
        functions["cuda_graph"] = lambda: graphed(images)
    return [functions] if functions else []


def _onnxruntime_calls(model, images, backends: Sequence[str], scratch: Path) -> List[Dict[str, Callable[[], object]]]:
    """One group per onnxruntime session (float32, int8 calibrated on random inputs), exported into
    `scratch`; none when onnxruntime is not installed."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipping it (pip install 'segnext[onnx]')")
        return []
    from ..inference import export_onnx
    from ..inference.quantize import quantize_onnx

    batch, channels, height, width = images.shape
    paths = {"onnxruntime": export_onnx(model, scratch / "model.onnx", height, width, batch_size=batch)}
    if "onnxruntime-int8" in backends:
        calibration = [torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(i)).numpy()
                       for i in range(2)]
        paths["onnxruntime-int8"] = quantize_onnx(paths["onnxruntime"], scratch / "int8.onnx", calibration)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    feed = {"images": images.cpu().numpy()}
    groups = []
    for name in backends:
        session = ort.InferenceSession(str(paths[name]), options, providers=["CPUExecutionProvider"])
        groups.append({name: (lambda s: lambda: s.run(None, feed))(session)})
    return groups


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return platform.processor() or platform.machine()
    return device.type
