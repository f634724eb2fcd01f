"""segnext vs MMSegmentation 1.2.2's SegNeXt on this CPU, in one process.

Run it with the interpreter of a separate virtual environment holding both packages:

    python3 -m venv /work/mmseg-venv
    /work/mmseg-venv/bin/pip install torch==2.13.0 mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2 ftfy regex
    /work/mmseg-venv/bin/pip install -e /work/main
    /work/mmseg-venv/bin/python benchmarks/vs_mmseg.py            # writes benchmarks/results/vs_mmseg.json

What it does, in one process, 2 threads:
1. builds MMSegmentation's SegNeXt (EncoderDecoder + MSCAN + LightHamHead) from a config dict, with
   BatchNorm instead of SyncBN, after putting a stand-in for mmcv's compiled ops (`mmcv.ops`, absent
   from mmcv-lite and never called by SegNeXt) into sys.modules;
2. loads the same weights into both (MMSegmentation 1.x key names) and gives both the same NMF
   bases (MMSegmentation's random draw is patched to return segnext's fixed bases);
3. checks that the outputs agree, then times alternately (ours, theirs, ours, ...), median of
   --runs after warm-up (onnxruntime, whose idle threads would slow the PyTorch calls next to it,
   in blocks of its own: `segnext.cli.benchmark.time_in_groups`):
   - inference of one 512x512 image (logits at the input size: `encode_decode` vs `model(x)`;
     also the labels: their argmax vs our label-only resize), for SegNeXt-T and -S, with our eager,
     optimized and onnxruntime paths;
   - a training step of two 512x512 crops of SegNeXt-T (forward, cross-entropy, backward), each
     model in training mode as its library builds it;
4. measures peak memory (maxrss) of each path in its own subprocess;
5. reports GFLOP/s against this machine's float32 matmul rate (torch.mm of 4096^2 matrices);
6. runs steps 3 again after applying `segnext.runtime.reuse_freed_memory()` (glibc malloc keeps
   freed memory, as the `segnext` commands set it): process-wide, so for both sides.

Other processes on the machine slow both sides alike; compare the ratios, which the alternation
keeps fair, more than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

from mmseg_peer import VARIANTS, data_samples, import_mmseg, mmseg_config, patch_mmseg_bases, to_mmseg_1x_keys
from segnext.cli.benchmark import time_alternately, time_in_groups

REPO = Path(__file__).resolve().parents[1]

def build_pair(variant: str, checkpoint=None):
    """(our eager model, MMSegmentation's model), same weights, same NMF bases, eval mode."""
    import segnext

    MODELS = import_mmseg()
    if checkpoint is not None and variant == "t":
        ours = segnext.create_model("segnext_t", 150, checkpoint=checkpoint)
    else:
        torch.manual_seed(0)
        ours = segnext.create_model(VARIANTS[variant]["name"], 150)
    theirs = MODELS.build(mmseg_config(variant))
    missing, unexpected = theirs.load_state_dict(to_mmseg_1x_keys(ours.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit MMSegmentation's model: missing {missing}, unexpected {unexpected}")
    bases = ours.nmf.seeded_bases(ours.config.ham_channels)
    patch_mmseg_bases(bases)
    return ours.eval(), theirs.eval()


def image_metas(batch: int, height: int, width: int) -> List[dict]:
    shape = (height, width)
    return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape) for _ in range(batch)]


# --------------------------------------------------------------------------------------------
# Timing


def summarize(seconds: Dict[str, List[float]], reference: str, flops: float) -> Dict[str, dict]:
    reference_median = statistics.median(seconds[reference])
    return {name: dict(median_s=statistics.median(v), min_s=min(v), runs_s=v,
                       ratio_to_mmseg=statistics.median(v) / reference_median,
                       gflops_per_s=flops / statistics.median(v) / 1e9)
            for name, v in seconds.items()}


def print_table(title: str, rows: Dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"  {'path':<34} {'median ms':>10} {'min ms':>9} {'x mmseg':>8} {'GFLOP/s':>8}")
    for name, r in rows.items():
        print(f"  {name:<34} {1e3 * r['median_s']:>10.1f} {1e3 * r['min_s']:>9.1f} {r['ratio_to_mmseg']:>8.2f} "
              f"{r['gflops_per_s']:>8.1f}")


def matmul_rate(size: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# The comparisons


@torch.no_grad()
def inference(variant: str, args) -> dict:
    import segnext
    from segnext.flops import count_macs
    from segnext.ops.label_upsample import upsampled_argmax

    ours, theirs = build_pair(variant, args.checkpoint)
    optimized = segnext.optimize_for_inference(ours)
    size = (args.size, args.size)
    images = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    metas = image_metas(1, *size)
    flops = 2 * count_macs(ours, *size)[0]

    # outputs agree (same weights, same bases)
    reference = theirs.encode_decode(images, metas)
    check = {name: float((out - reference).abs().max()) for name, out in
             (("eager", ours(images)), ("optimized", optimized(images)))}
    label_agreement = float((upsampled_argmax(optimized.forward_logits(images)[0], [size]) ==
                             reference.argmax(1)[0]).float().mean())

    functions = {
        "mmseg encode_decode (logits)": lambda: theirs.encode_decode(images, metas),
        "segnext eager (logits)": lambda: ours(images),
        "segnext optimized (logits)": lambda: optimized(images),
        "mmseg labels (argmax)": lambda: theirs.encode_decode(images, metas).argmax(1),
        "segnext optimized labels": lambda: upsampled_argmax(optimized.forward_logits(images)[0], [size]),
    }
    onnx_dir, sessions = None, {}
    try:
        import onnxruntime as ort

        onnx_dir = tempfile.TemporaryDirectory()
        path = segnext.export_onnx(ours, Path(onnx_dir.name) / "m.onnx", *size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"images": images.numpy()}
        check["onnxruntime"] = float(abs(session.run(None, feed)[0] - reference.numpy()).max())
        sessions["segnext onnxruntime (logits)"] = lambda: session.run(None, feed)
    except ImportError:
        print("onnxruntime is not installed: its path is skipped")
    # onnxruntime in blocks of its own: its idle threads and PyTorch's slow each other call by call.
    seconds = time_in_groups([functions, sessions] if sessions else [functions], args.runs, args.warmup)
    if onnx_dir is not None:
        onnx_dir.cleanup()
    rows = summarize(seconds, "mmseg encode_decode (logits)", flops)
    for name in ("segnext optimized labels",):
        rows[name]["ratio_to_mmseg"] = rows[name]["median_s"] / rows["mmseg labels (argmax)"]["median_s"]
    print_table(f"SegNeXt-{variant.upper()} inference, 1x3x{args.size}x{args.size}, {torch.get_num_threads()} threads "
                f"({flops / 1e9:.1f} GFLOP); max |ours - mmseg| logits: "
                + ", ".join(f"{k} {v:.1e}" for k, v in check.items())
                + f"; labels agree {100 * label_agreement:.4f}%", rows)
    return dict(max_abs_diff_vs_mmseg=check, label_agreement=label_agreement, gflop=flops / 1e9, timings=rows)


def training_step(args) -> dict:
    from segnext import segmentation_loss
    from segnext.flops import count_macs

    ours, theirs = build_pair("t", args.checkpoint)
    ours.train()
    theirs.train()

    size = (args.size, args.size)
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(2, 3, *size, generator=generator)
    labels = torch.randint(0, 150, (2, *size), generator=generator)
    labels[:, :16] = 255
    samples = data_samples(labels)

    def ours_step():
        ours.zero_grad(set_to_none=True)
        loss = segmentation_loss(ours.forward_logits(images), labels, banded=True)
        loss.backward()
        return loss

    def ours_plain_step():  # what a training loop of one's own gets from create_model and the reference loss
        ours.zero_grad(set_to_none=True)
        loss = segmentation_loss(ours.forward_logits(images), labels)
        loss.backward()
        return loss

    def theirs_step():
        theirs.zero_grad(set_to_none=True)
        losses = theirs.loss(images, samples)
        loss = losses["decode.loss_ce"]
        loss.backward()
        return loss

    # What `segnext train` runs by default on a CPU (train.channels_last, train.transposed_strip_grads):
    # the create_model model and its inputs in channels-last memory (same function; gradients differ
    # from NCHW at rounding level), the strip convolutions' weight gradients on the transposed image.
    import copy

    from segnext.ops.strip_conv_grad import use_transposed_strip_grads

    ours_nhwc = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    ours_default = copy.deepcopy(ours_nhwc)
    use_transposed_strip_grads(ours_default)
    images_nhwc = images.contiguous(memory_format=torch.channels_last)

    def nhwc_step(model):
        def step():
            model.zero_grad(set_to_none=True)
            loss = segmentation_loss(model.forward_logits(images_nhwc), labels, banded=True)
            loss.backward()
            return loss
        return step

    torch.manual_seed(3)
    loss_ours = ours_step().item()
    torch.manual_seed(3)
    loss_theirs = theirs_step().item()
    flops = 3 * 2 * count_macs(ours.eval(), *size, batch_size=2)[0]  # forward + ~2x for backward
    ours.train()
    seconds = time_alternately({"mmseg train step": theirs_step,
                                "segnext, plain loss (interpolate + CE), NCHW": ours_plain_step,
                                "segnext train step": ours_step,
                                "segnext train step, channels_last": nhwc_step(ours_nhwc),
                                "segnext train step, channels_last, transposed strip grads (segnext train default)":
                                    nhwc_step(ours_default)},
                               args.runs, args.warmup)
    rows = summarize(seconds, "mmseg train step", flops)
    print_table(f"SegNeXt-T training step, 2x3x{args.size}x{args.size} (forward + CE + backward), "
                f"{torch.get_num_threads()} threads; loss ours {loss_ours:.6f} vs mmseg {loss_theirs:.6f} "
                f"(same seed; stochastic depth and dropout draw from the RNG)", rows)
    return dict(loss_ours=loss_ours, loss_mmseg=loss_theirs, approx_gflop=flops / 1e9, timings=rows)


# --------------------------------------------------------------------------------------------
# Peak memory, each path in its own process


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: that one survives exec() and
    so reports the parent's size when the parent was larger at fork time."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_probe(kind: str, args) -> dict:
    torch.set_num_threads(args.threads)
    import segnext  # noqa: F401 - imported before the baseline reading, like mmseg below

    size = args.size
    if kind.startswith("infer"):
        _, impl, variant = kind.split(":")
        ours, theirs = build_pair(variant, args.checkpoint)
        images = torch.randn(1, 3, size, size)
        if impl == "mmseg":
            model = theirs
            run = lambda: model.encode_decode(images, image_metas(1, size, size))  # noqa: E731
        elif impl == "optimized":
            model = segnext.optimize_for_inference(ours)
            run = lambda: model(images)  # noqa: E731
        elif impl == "labels":  # optimized, label-only resize: no full-size score maps
            from segnext.ops.label_upsample import upsampled_argmax

            model = segnext.optimize_for_inference(ours)
            run = lambda: upsampled_argmax(model.forward_logits(images)[0], [(size, size)])  # noqa: E731
        else:
            model = ours
            run = lambda: model(images)  # noqa: E731
        ours = theirs = None  # only the model under test stays alive
        before = peak_rss_mb()
        with torch.no_grad():
            run()
            run()
    else:
        _, impl = kind.split(":")
        ours, theirs = build_pair("t", args.checkpoint)
        images = torch.randn(2, 3, size, size)
        labels = torch.randint(0, 150, (2, size, size))
        if impl == "mmseg":
            samples = data_samples(labels)
            model = theirs.train()
            run = lambda: model.loss(images, samples)["decode.loss_ce"].backward()  # noqa: E731
        else:
            from segnext import segmentation_loss

            model = ours.train()
            run = lambda: segmentation_loss(model.forward_logits(images), labels, banded=True).backward()  # noqa: E731
        ours = theirs = None
        before = peak_rss_mb()
        run()
        run()
    peak = peak_rss_mb()
    return dict(kind=kind, rss_before_mb=before, peak_rss_mb=peak, peak_increase_mb=peak - before)


def memory_table(args) -> List[dict]:
    kinds = ["infer:mmseg:t", "infer:eager:t", "infer:optimized:t", "infer:labels:t", "train:mmseg", "train:segnext"]
    results = []
    for kind in kinds:
        command = [sys.executable, __file__, "--memory-probe", kind, "--size", str(args.size),
                   "--threads", str(args.threads)] + (["--checkpoint", str(args.checkpoint)] if args.checkpoint else [])
        output = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if output.returncode != 0:
            print(f"memory probe {kind} failed:\n{output.stderr[-2000:]}")
            continue
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    print("\nPeak memory (maxrss of a fresh process per path; 'increase' = during the two calls)")
    print(f"  {'path':<22} {'peak MB':>9} {'increase MB':>12}")
    for r in results:
        print(f"  {r['kind']:<22} {r['peak_rss_mb']:>9.0f} {r['peak_increase_mb']:>12.0f}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["t", "s"], choices=list(VARIANTS))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--checkpoint", help="SegNeXt-T weights for both (an official-format file; default: random "
                                             "weights, the timing is the same)")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-reuse", action="store_true",
                        help="skip the second round with glibc malloc set to keep freed memory")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vs_mmseg.json"))
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.filterwarnings("ignore", module="mmcv|mmseg|mmengine")  # mmcv-lite / deprecation notices
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args)))
        return 0

    import mmseg

    import segnext

    load_before = os.getloadavg()
    rate = matmul_rate()
    print(f"torch {torch.__version__}, mmseg {mmseg.__version__}, segnext {segnext.__version__}, "
          f"{args.threads} threads; float32 matmul (4096^2): {rate:.0f} GFLOP/s; load average {load_before[0]:.2f}")
    results = dict(torch=torch.__version__, mmseg=mmseg.__version__, threads=args.threads, size=args.size,
                   runs=args.runs, warmup=args.warmup, matmul_gflops_per_s=rate, machine=platform.machine(),
                   omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(default)"),
                   cpu_count=os.cpu_count(), load_average_before=load_before, inference={})
    for variant in [] if args.skip_inference else args.variants:
        results["inference"][variant] = inference(variant, args)
    if not args.skip_train:
        results["training_step_t"] = training_step(args)
    if not args.skip_reuse:
        # `segnext train` and the `segnext` commands set glibc's malloc to keep freed memory for
        # reuse (segnext.runtime.reuse_freed_memory). The setting is process-wide, so from here on
        # MMSegmentation gets it too: the same runs again, both sides with the tuned allocator.
        from segnext.runtime import reuse_freed_memory

        print("\n=== again, with segnext.runtime.reuse_freed_memory() applied to this process (both sides) ===")
        results["reuse_freed_memory"] = dict(applied=reuse_freed_memory(), inference={})
        for variant in [] if args.skip_inference else args.variants:
            results["reuse_freed_memory"]["inference"][variant] = inference(variant, args)
        if not args.skip_train:
            results["reuse_freed_memory"]["training_step_t"] = training_step(args)
    if not args.skip_memory:
        results["memory"] = memory_table(args)
    results["load_average_after"] = os.getloadavg()
    print(f"\nmachine load average before/after: {load_before[0]:.2f} / {results['load_average_after'][0]:.2f} "
          f"(other processes share these cores; the ratios are from alternated runs)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
