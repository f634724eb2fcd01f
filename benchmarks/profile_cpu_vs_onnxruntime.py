"""Where the CPU's time goes: the optimized path (oneDNN) against onnxruntime float32, kind of
operator by kind of operator, for one image of a size.

    python benchmarks/profile_cpu_vs_onnxruntime.py --checkpoint camvid --sizes 360x480 512x512 \
        --out benchmarks/results/profile_cpu_vs_onnxruntime.json

The model is exported to ONNX (as `segnext export`), then for each --sizes HxW: onnxruntime's own
profile (its session's node times) of --runs calls, the session closed, then torch.profiler's of the
optimized path's --runs calls (onnxruntime first: idle OpenMP threads of PyTorch would spin while it
runs). Both are grouped into the same kinds: each convolution by its kernel (1x1, depthwise 3x3 with
the GELU after it, which oneDNN fuses and onnxruntime runs as a node of its own, the 5x5 and strip
depthwise convolutions, dense 3x3), the NMF's matrix products, resizes, normalisations, and the rest
(elementwise operators, copies, layout changes). Each kind's milliseconds per call and their ratio
show which operators make a gap between the two; the wall-clock medians (outside the profilers,
after two warm-up calls) say how large it is. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import segnext
from segnext.inference import export_onnx, optimize_for_inference

KINDS = ("1x1 convolution", "depthwise 3x3 + GELU", "depthwise 5x5", "strip convolutions", "dense 3x3 convolution",
         "matrix products (NMF)", "resize", "normalisation", "other")


def kernel_kind(weight_shape) -> str:
    out_channels, in_per_group, kernel_h, kernel_w = weight_shape
    if kernel_h == kernel_w == 1:
        return "1x1 convolution"
    if in_per_group != 1:
        return "dense 3x3 convolution"
    if kernel_h != kernel_w:
        return "strip convolutions"
    return "depthwise 3x3 + GELU" if kernel_h == 3 else "depthwise 5x5"


def operator_kind(name: str) -> str:
    name = name.lower().split("::")[-1]
    if name in ("bmm", "mm", "matmul", "fusedmatmul", "gemm", "addmm", "baddbmm"):
        return "matrix products (NMF)"
    if "upsample" in name or name == "resize":
        return "resize"
    if "norm" in name:
        return "normalisation"
    if name == "gelu":
        return "depthwise 3x3 + GELU"  # onnxruntime's node of its own; oneDNN's post-op of the convolution
    return "other"


def median_ms(function, runs: int) -> float:
    for _ in range(2):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def onnxruntime_profile(path: Path, images: np.ndarray, runs: int, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    plain = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {plain.get_inputs()[0].name: images}
    wall = median_ms(lambda: plain.run(None, feed), runs)
    plain = None  # its threads stop with it
    options.enable_profiling = True
    options.profile_file_prefix = str(path.parent / "onnxruntime_profile")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(2 + runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    del session
    calls = sorted(event["ts"] + event["dur"] for event in events if event.get("name") == "model_run")
    measured_from = calls[1]  # the end of the second call: the two warm-up calls are left out
    times = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time") or event["ts"] < measured_from:
            continue
        details = event["args"]
        if details["op_name"] == "Conv":
            kind = kernel_kind(next(iter(details["input_type_shape"][1].values())))
        else:
            kind = operator_kind(details["op_name"])
        times[kind] += event["dur"] / 1000 / runs
    return wall, times


def torch_profile(model, images: torch.Tensor, runs: int):
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        wall = median_ms(lambda: model(images), runs)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
            for _ in range(runs):
                model(images)
    times = collections.Counter()
    for event in profiler.key_averages(group_by_input_shape=True):
        if "convolution" in event.key:  # oneDNN's fused call, with or without a second (binary) operand
            shapes = [shape for shape in event.input_shapes if len(shape) == 4]  # input, [other], weight
            kind = kernel_kind(shapes[-1])
        else:
            kind = operator_kind(event.key)
        times[kind] += event.self_cpu_time_total / 1000 / runs
    return wall, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="camvid", help="any checkpoint create_model reads (default camvid)")
    parser.add_argument("--sizes", nargs="+", default=["360x480", "512x512"], metavar="HxW")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    model = segnext.create_model(checkpoint=args.checkpoint).eval()
    optimized = optimize_for_inference(model)
    threads = torch.get_num_threads()
    folder = tempfile.TemporaryDirectory()
    path = export_onnx(model, Path(folder.name) / "model.onnx")
    results = []
    print(f"{args.checkpoint}: 1 image, {threads} threads, {args.runs} profiled calls each")
    for size in args.sizes:
        height, width = (int(side) for side in size.lower().split("x"))
        images = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        onnx_wall, onnx_times = onnxruntime_profile(path, images.numpy(), args.runs, threads)
        torch_wall, torch_times = torch_profile(optimized, images.contiguous(memory_format=torch.channels_last),
                                                args.runs)
        print(f"\n{size}: wall clock, median of {args.runs}: optimized {torch_wall:.1f} ms, onnxruntime "
              f"{onnx_wall:.1f} ms ({torch_wall / onnx_wall:.2f}x)")
        print(f"{'kind':>24} {'optimized ms':>13} {'onnxruntime ms':>15} {'ratio':>6}")
        rows = []
        for kind in KINDS:
            ours, theirs = torch_times.get(kind, 0.0), onnx_times.get(kind, 0.0)
            rows.append({"kind": kind, "optimized_ms": ours, "onnxruntime_ms": theirs})
            ratio = f"{ours / theirs:6.2f}" if theirs else f"{'-':>6}"
            print(f"{kind:>24} {ours:13.2f} {theirs:15.2f} {ratio}")
        total_ours, total_theirs = sum(torch_times.values()), sum(onnx_times.values())
        print(f"{'profiled total':>24} {total_ours:13.2f} {total_theirs:15.2f} {total_ours / total_theirs:6.2f}")
        results.append({"height": height, "width": width, "optimized_wall_ms": torch_wall,
                        "onnxruntime_wall_ms": onnx_wall, "kinds": rows})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": args.checkpoint, "threads": threads, "torch": torch.__version__,
                                        "machine": platform.processor() or platform.machine(), "runs": args.runs,
                                        "sizes": results}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
