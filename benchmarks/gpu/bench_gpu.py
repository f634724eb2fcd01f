"""segnext vs MMSegmentation 1.2.2's SegNeXt on a CUDA GPU, in one process: inference latency at batch 1,
batched throughput, training steps, and the data loader beside the training step.

    python3 benchmarks/gpu/bench_gpu.py --out gpu_bench.json          # on the GPU machine (device_check.sh)
    python3 benchmarks/gpu/bench_gpu.py --device cpu --quick           # a smoke run of the script itself

Same weights, same NMF bases and the same input on both sides; every time is taken between two
`torch.cuda.synchronize()` calls, the two sides alternate round by round, and the table shows the
median of --runs after --warmup rounds and the ratio to MMSegmentation's median. Without
MMSegmentation installed (benchmarks/mmseg_peer.py says how) only segnext's paths are timed.

What is compared:
- latency, 1 image: MMSegmentation's `encode_decode` (float32) against segnext eager, the folded
  model, its CUDA graphs (float32, fp16 and bf16 autocast; fp16 also channels-last), for T and S
  at 512x512 and 1024x2048;
- throughput, 16 x 512x512: the same paths in images/s, float32 and fp16/bf16 autocast;
- the training step (forward, official loss, backward; fp16 autocast with a gradient scaler on both
  sides): T at 16 x 512x512 and B at 8 x 512x512, segnext in NCHW and channels-last, fp16 and bf16,
  and with the banded loss (the CPU's), with cuDNN autotuning off and on;
- `Segmenter.predict` of a 1024x2048 photo: labels by resize + argmax on the GPU (its default) against
  the label-only upsampling on the CPU (the CPU's default);
- the CamVid loader of the GPU recipe (512x512 crops) with N workers, in images/s, beside the step's;
- with --profile: where T's training step and batched forward spend their device time (torch.profiler);
- with --compile-only (nothing else): torch.compile against eager for T's training step and batched
  forward, alternated, with the compile times: the candidate for fusing the elementwise chains.
Labels of the CUDA graphs are checked against the eager folded model's on every input.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import segnext  # noqa: E402
from profile_train_step import CompiledForward  # noqa: E402
from segnext.cli.benchmark import synchronizer  # noqa: E402
from segnext.cli.benchmark import time_alternately as alternate  # noqa: E402
from segnext.inference.cuda_graph import CudaGraphSegNeXt  # noqa: E402
from segnext.train.config import OptimizerSection  # noqa: E402
from segnext.train.optim import build_optimizer  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def time_alternately(functions: Dict[str, Callable[[], object]], runs: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    return alternate(functions, runs, warmup, synchronizer(device))


def table(title: str, seconds: Dict[str, List[float]], reference: Optional[str], images: int,
          ratio_to: str = "mmseg") -> Dict[str, dict]:
    rows = {}
    base = statistics.median(seconds[reference]) if reference in seconds else None
    print(f"\n{title}")
    print(f"  {'path':<44} {'median ms':>10} {'img/s':>9} {'x ' + ratio_to:>8}")
    for name, values in seconds.items():
        median = statistics.median(values)
        ratio = median / base if base else None
        rows[name] = {"median_s": median, "min_s": min(values), "images_per_s": images / median,
                      f"ratio_to_{ratio_to}": ratio}
        print(f"  {name:<44} {1e3 * median:>10.2f} {images / median:>9.1f} {ratio if ratio else float('nan'):>8.2f}")
    return rows


def mmseg_model(variant: str, ours, device):
    """MMSegmentation's SegNeXt with our weights and NMF bases, or None without MMSegmentation."""
    try:
        from mmseg_peer import import_mmseg, mmseg_config, patch_mmseg_bases, to_mmseg_1x_keys

        models = import_mmseg()
    except ImportError as error:
        print(f"MMSegmentation is not importable ({error}): timing segnext alone")
        return None
    theirs = models.build(mmseg_config(variant, ours.num_classes))
    missing, unexpected = theirs.load_state_dict(to_mmseg_1x_keys(ours.state_dict()), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    patch_mmseg_bases(ours.nmf.seeded_bases(ours.config.ham_channels).to(device))
    return theirs.to(device)


def metas(batch: int, height: int, width: int) -> list:
    return [dict(img_shape=(height, width), pad_shape=(height, width), ori_shape=(height, width))] * batch


@torch.no_grad()
def inference(variant: str, batch: int, height: int, width: int, args, device) -> dict:
    torch.manual_seed(0)
    ours = segnext.create_model(f"segnext_{variant}", 150).eval().to(device)
    theirs = mmseg_model(variant, ours, device)
    folded = copy.deepcopy(ours).reparameterize()
    images = torch.randn(batch, 3, height, width, device=device)
    functions: Dict[str, Callable[[], object]] = {}
    if theirs is not None:
        theirs.eval()
        functions["mmseg encode_decode fp32"] = lambda: theirs.encode_decode(images, metas(batch, height, width))
        functions["mmseg encode_decode fp16 autocast"] = lambda: _autocast(
            device, torch.float16, lambda: theirs.encode_decode(images, metas(batch, height, width)))
    functions["segnext eager fp32"] = lambda: ours(images)
    functions["segnext folded fp32"] = lambda: folded(images)
    checks = {}
    if device.type == "cuda":
        for precision in (None, "fp16", "bf16"):
            graphed = CudaGraphSegNeXt(folded, autocast_dtype=DTYPES.get(precision))
            name = f"segnext cuda_graph {precision or 'fp32'}"
            functions[name] = (lambda g: lambda: g(images))(graphed)
            eager = graphed._eager(images)
            checks[name] = dict(labels_equal_eager=bool(torch.equal(graphed.forward_logits(images).argmax(1),
                                                                    eager.argmax(1))))
        # The same graph over a channels-last model and input (tensor cores read NHWC; cuDNN's
        # depthwise kernels may not): the candidate memory format for inference on a GPU.
        folded_nhwc = copy.deepcopy(folded).to(memory_format=torch.channels_last)
        images_nhwc = images.contiguous(memory_format=torch.channels_last)
        graphed = CudaGraphSegNeXt(folded_nhwc, autocast_dtype=torch.float16)
        functions["segnext cuda_graph fp16 channels-last"] = lambda: graphed(images_nhwc)
        checks["segnext cuda_graph fp16 channels-last"] = dict(labels_equal_eager=bool(torch.equal(
            graphed.forward_logits(images_nhwc).argmax(1), graphed._eager(images_nhwc).argmax(1))))
        if theirs is not None:
            reference = theirs.encode_decode(images, metas(batch, height, width))
            checks["max_abs_logits_eager_vs_mmseg_fp32"] = float((ours(images) - reference).abs().max())
    seconds = time_alternately(functions, args.runs, args.warmup, device)
    title = f"SegNeXt-{variant.upper()} inference, {batch} x 3 x {height} x {width}, {device_name(device)}"
    rows = table(title, seconds, "mmseg encode_decode fp32", batch)
    print(f"  checks: {json.dumps(checks)}")
    return dict(variant=variant, batch=batch, height=height, width=width, timings=rows, checks=checks)


def labels(height: int, width: int, args, device) -> dict:
    """`Segmenter.predict` of one photo (SegNeXt-T, ADE20K's test settings) with labels by the plain
    resize + argmax on the device (the GPU's default) against the memory-efficient label-only
    upsampling (the CPU's default, which runs on the CPU)."""
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 150).eval().to(device)
    photo = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8).numpy()
    plain = segnext.Segmenter(model, memory_efficient=False)
    label_only = segnext.Segmenter(model, memory_efficient=True)
    same = float((plain.predict(photo) == label_only.predict(photo)).mean())
    seconds = time_alternately({"Segmenter, resize + argmax on the device": lambda: plain.predict(photo),
                                "Segmenter, label-only upsampling (CPU)": lambda: label_only.predict(photo)},
                               args.runs, args.warmup, device)
    rows = table(f"SegNeXt-T Segmenter.predict, one {height}x{width} photo, {device_name(device)}; labels equal "
                 f"{100 * same:.3f}%", seconds, "Segmenter, label-only upsampling (CPU)", 1, "label-only")
    return dict(height=height, width=width, labels_equal=same, timings=rows)


def _autocast(device, dtype, function):
    with torch.autocast(device.type, dtype=dtype):
        return function()


def our_step(model, images, labels, dtype, device, banded: bool = False) -> Callable[[], None]:
    """One training step of segnext (forward, official loss, backward, AdamW) under autocast on CUDA;
    banded: the loss in bands of label rows (`loss.banded`, the CPU's choice)."""
    optimizer = build_optimizer(model, OptimizerSection())  # as segnext train builds it
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            logits = model.forward_logits(images)
        loss = segnext.segmentation_loss(logits, labels, banded=banded)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def training_inputs(batch: int, size: int, device):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, 150, (batch, size, size), generator=generator).to(device)
    return images, labels


def training(variant: str, batch: int, size: int, args, device) -> dict:
    torch.manual_seed(0)
    ours = segnext.create_model(f"segnext_{variant}", 150).to(device).train()
    theirs = mmseg_model(variant, ours, device)
    images, labels = training_inputs(batch, size, device)
    functions: Dict[str, Callable[[], object]] = {}

    if theirs is not None:
        from mmseg_peer import data_samples

        theirs.train()
        samples = data_samples(labels)
        optimizer = torch.optim.AdamW(theirs.parameters(), lr=1e-6)
        scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

        def their_step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                loss = theirs.loss(images, samples)["decode.loss_ce"]
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        functions["mmseg fp16 autocast"] = their_step
    nchw = ours
    nhwc = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    images_nhwc = images.contiguous(memory_format=torch.channels_last)
    for precision in ("fp16", "bf16"):
        functions[f"segnext NCHW {precision}"] = our_step(nchw, images, labels, DTYPES[precision], device)
        functions[f"segnext channels-last {precision}"] = our_step(nhwc, images_nhwc, labels, DTYPES[precision],
                                                                   device)
    functions["segnext NCHW fp16, banded loss"] = our_step(nchw, images, labels, torch.float16, device, banded=True)
    results = {}
    for benchmark in (False, True) if device.type == "cuda" else (False,):
        torch.backends.cudnn.benchmark = benchmark
        seconds = time_alternately(functions, args.runs, args.warmup, device)
        title = (f"SegNeXt-{variant.upper()} training step, {batch} x {size} x {size}, {device_name(device)}, "
                 f"cudnn.benchmark={benchmark}")
        results[f"cudnn_benchmark_{benchmark}"] = table(title, seconds, "mmseg fp16 autocast", batch)
    torch.backends.cudnn.benchmark = False
    return dict(variant=variant, batch=batch, size=size, timings=results)


def profile(variant: str, batch: int, size: int, device, steps: int = 3) -> dict:
    """Where segnext's time goes, for choosing what to fuse: torch.profiler over `steps` training steps
    (NCHW, fp16 autocast on CUDA) and `steps` batched forwards of the folded model, after warm-up.
    Returns the top operators and kernels by their own device time (the CPU's on a CPU), and the
    host's time beside the step's: a host busy for most of the step means launch-bound."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.manual_seed(0)
    model = segnext.create_model(f"segnext_{variant}", 150).to(device).train()
    images, labels = training_inputs(batch, size, device)
    folded = copy.deepcopy(model).eval().reparameterize()
    precision = "fp16" if device.type == "cuda" else "fp32"  # our_step autocasts on CUDA only

    @torch.no_grad()
    def forward():
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            folded(images)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    own_time = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    sync = synchronizer(device)
    result = {}
    for name, function in ((f"training step NCHW {precision}", our_step(model, images, labels, torch.float16, device)),
                           (f"folded forward {precision}", forward)):
        for _ in range(2):
            function()
        sync()
        start = time.perf_counter()
        with torch_profile(activities=activities) as recorded:
            for _ in range(steps):
                function()
            sync()
        wall = (time.perf_counter() - start) / steps
        events = recorded.key_averages()
        total = sum(getattr(event, own_time) for event in events) / steps / 1e6
        host = sum(event.self_cpu_time_total for event in events) / steps / 1e6
        top = sorted(events, key=lambda event: getattr(event, own_time), reverse=True)[:30]
        rows = [dict(name=event.key[:120], calls=event.count // steps, ms=getattr(event, own_time) / steps / 1e3,
                     share=getattr(event, own_time) / steps / 1e6 / total if total else None) for event in top]
        title = f"SegNeXt-{variant.upper()} {name}, {batch} x {size} x {size}, {device_name(device)}"
        print(f"\nprofile: {title}: {1e3 * wall:.1f} ms a step under the profiler, device busy {1e3 * total:.1f} ms, "
              f"host {1e3 * host:.1f} ms")
        for row in rows[:20]:
            print(f"  {row['ms']:8.2f} ms {100 * (row['share'] or 0):5.1f}% x{row['calls']:<5} {row['name'][:90]}")
        result[name] = dict(wall_ms=1e3 * wall, device_ms=1e3 * total, host_ms=1e3 * host, top=rows)
    return result


def compiled(variant: str, batch: int, size: int, args, device) -> dict:
    """torch.compile against eager, alternated: T's training step (NCHW, fp16 autocast) and the folded
    model's batched forward (fp16 autocast), with the seconds each takes to compile."""
    torch.manual_seed(0)
    model = segnext.create_model(f"segnext_{variant}", 150).to(device).train()
    images, labels = training_inputs(batch, size, device)
    eager_step = our_step(model, images, labels, torch.float16, device)
    start = time.perf_counter()
    compiled_step = our_step(CompiledForward(model), images, labels, torch.float16, device)
    compiled_step()
    synchronizer(device)()
    result = dict(variant=variant, batch=batch, size=size, training_compile_s=time.perf_counter() - start)
    seconds = time_alternately({"segnext NCHW fp16 eager": eager_step, "segnext NCHW fp16 compiled": compiled_step},
                               args.runs, args.warmup, device)
    title = (f"SegNeXt-{variant.upper()} training step, {batch} x {size} x {size}, torch.compile (compiled in "
             f"{result['training_compile_s']:.0f} s)")
    result["training"] = table(title, seconds, "segnext NCHW fp16 eager", batch, "eager")
    folded = copy.deepcopy(model).eval().reparameterize()
    fast = CompiledForward(folded)

    @torch.no_grad()
    def forward(runner):
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            return runner(images)
    start = time.perf_counter()
    labels_equal = bool(torch.equal(forward(fast).argmax(1), forward(folded).argmax(1)))
    synchronizer(device)()
    result["inference_compile_s"] = time.perf_counter() - start
    seconds = time_alternately({"segnext folded fp16 eager": lambda: forward(folded),
                                "segnext folded fp16 compiled": lambda: forward(fast)}, args.runs, args.warmup, device)
    result["inference"] = table(f"SegNeXt-{variant.upper()} folded forward, {batch} x 3 x {size} x {size}, "
                                f"torch.compile (compiled in {result['inference_compile_s']:.0f} s, labels equal "
                                f"eager: {labels_equal})", seconds, "segnext folded fp16 eager", batch, "eager")
    result["labels_equal_eager"] = labels_equal
    return result


def loader(root: Path, workers: List[int], seconds: float) -> dict:
    """Images per second of the GPU CamVid recipe's training pipeline (copy-paste included) with each number
    of workers."""
    from segnext.train import load_config
    from segnext.train.sampler import training_loader

    config = load_config("camvid/segnext_t_camvid_gpu_8min", [f"data.root={root}"])
    dataset = config.data.build(config.data.train_split, config.data.train_transform(), config.train.seed)
    paste = config.data.class_paste(dataset.class_names)  # the recipe's copy-paste: a second crop per pasted sample
    rows = {}
    for count in workers:
        batches = training_loader(dataset, 0, config.train.batch_size, config.train.micro_batch_size, count,
                                  paste=paste)
        iterator = iter(batches)
        next(iterator)  # workers started
        start, images = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            images += next(iterator)["image"].shape[0]
        rate = images / (time.perf_counter() - start)
        rows[f"{count} workers"] = rate
        print(f"  CamVid loader, {count:>2} workers: {rate:7.1f} images/s")
        del iterator, batches
    return rows


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a check of the script")
    parser.add_argument("--camvid", help="CamVid root for the loader (default: .device-data/camvid, $SEGNEXT_SHARED)")
    parser.add_argument("--out", help="JSON results")
    parser.add_argument("--profile", action="store_true",
                        help="also profile T's training step and batched forward (top operators and kernels)")
    parser.add_argument("--compile-only", action="store_true",
                        help="only torch.compile against eager: T's training step and batched forward")
    args = parser.parse_args()
    device = torch.device(args.device)
    result: dict = dict(device=device_name(device), torch=torch.__version__, cpu_count=os.cpu_count())

    def section(name: str, function: Callable[[], object]) -> None:
        """Run one part; its result (or its error, so that one failure costs only its own part of the
        device's time) goes into the JSON, written after every part in case the call is cut short."""
        try:
            result[name] = function()
        except Exception as error:  # recorded; the other parts still run
            traceback.print_exc()
            result[name] = dict(error=f"{type(error).__name__}: {error}")
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    if args.compile_only:
        args.runs, args.warmup = (2, 1) if args.quick else (args.runs, args.warmup)
        section("compile", lambda: compiled("t", *((2, 64) if args.quick else (16, 512)), args, device))
        return
    if args.quick:
        args.runs, args.warmup = 2, 1
        plans = dict(latency=[("t", 1, 64, 96)], throughput=[("t", 2, 64, 64)], training=[("t", 2, 64)])
    else:
        plans = dict(latency=[("t", 1, 512, 512), ("t", 1, 1024, 2048), ("s", 1, 512, 512), ("s", 1, 1024, 2048)],
                     throughput=[("t", 16, 512, 512), ("s", 16, 512, 512)],
                     training=[("t", 16, 512), ("b", 8, 512)])
    for kind in ("latency", "throughput"):
        for plan in plans[kind]:
            section(f"{kind} {'_'.join(map(str, plan))}", lambda plan=plan: inference(*plan, args, device))
    section("labels", lambda: labels(*((96, 128) if args.quick else (1024, 2048)), args, device))
    for plan in plans["training"]:
        section(f"training {'_'.join(map(str, plan))}", lambda plan=plan: training(*plan, args, device))
    if args.profile:
        section("profile", lambda: profile(*plans["training"][0], device))
    shared = Path(os.environ.get("SEGNEXT_SHARED", REPO.parent / "shared")) / "datasets" / "camvid"
    camvid = Path(args.camvid) if args.camvid else next((p for p in (REPO / ".device-data" / "camvid", shared)
                                                         if p.is_dir()), None)
    if camvid is not None:
        cores = os.cpu_count() or 1
        counts = [1, 2] if args.quick else sorted({4, 8, max(1, cores - 2)})
        print("\nCamVid training pipeline of camvid/segnext_t_camvid_gpu_8min (512x512 crops)")
        section("loader_images_per_s", lambda: loader(camvid, counts, 2.0 if args.quick else 8.0))
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
