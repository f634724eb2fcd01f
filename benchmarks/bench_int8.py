"""int8 against float32 on this CPU: accuracy on a labelled split and speed, for the choices of
`segnext.inference.quantize` (which convolutions stay float32, the calibration method).

    python benchmarks/bench_int8.py --checkpoint RUN/final_model --config camvid/segnext_t_camvid_cpu_60min \
        data.root=data/camvid --calibration data/camvid/images/train \
        --out benchmarks/results/int8_camvid.json

Accuracy: every image of the config's val split is segmented with the model's saved test settings by
the float32 path `segnext predict` runs on a CPU (`optimize_for_inference`) and by each int8 model
(onnxruntime); the table gives the share of pixels whose label is the same, mIoU of both and the
per-class IoU change. Speed: one image at 512x512 and at --size (default the val images' test input
size) through the float32 optimized path, onnxruntime float32 and each int8 model, at the threads
torch uses (2 here), each model in a process of its own (idle threads of one runtime spin and slow
the other in a shared process), the processes taking turns: median over --passes of the median of
--runs calls after two warm-up calls.

Variants (--variants, any of): "default" (stage 1 with the convolutions around it and the decoder
float32, min/max calibration, as `segnext export --int8`), "all" (every convolution int8),
"stem+decoder" (only those float32), "stem+decoder+mlp" / "+attention_dw" / "+attention_1x1" (one more
group of layers float32: which layers cost labels, and what keeping them float costs in time),
"percentile" (the default's float convolutions, 99.999th-percentile calibration).
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

import numpy as np
import torch

import segnext
from segnext.evaluation import SegmentationMetric
from segnext.inference import OnnxModel, export_onnx, optimize_for_inference, prepare, segment
from segnext.inference.quantize import FLOAT_CONVOLUTIONS, calibration_batches, quantize_onnx
from segnext.inference.settings import test_config_for
from segnext.train import load_config
from segnext.utils import json_safe

STEM_AND_DECODER = (r"^backbone\.patch_embed1\.", r"^decode_head\.")
VARIANTS = {
    "default": dict(float_convolutions=FLOAT_CONVOLUTIONS, method="minmax"),
    "all": dict(float_convolutions=(), method="minmax"),
    "stem+decoder": dict(float_convolutions=STEM_AND_DECODER, method="minmax"),
    "stem+decoder+mlp": dict(float_convolutions=STEM_AND_DECODER + (r"\.mlp\.",), method="minmax"),
    "stem+decoder+attention_dw": dict(float_convolutions=STEM_AND_DECODER + (r"spatial_gating_unit\.conv[0-2]",),
                                      method="minmax"),
    "stem+decoder+attention_1x1": dict(float_convolutions=STEM_AND_DECODER + (r"attn\.proj_",
                                                                             r"spatial_gating_unit\.conv3"),
                                       method="minmax"),
    "percentile": dict(float_convolutions=FLOAT_CONVOLUTIONS, method="percentile"),
}


def cpu_flags() -> list:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
    return [flag for flag in flags.split() if flag in wanted]


def time_in_own_process(path: str, height: int, width: int, runs: int) -> float:
    """Median seconds of one forward of the model at `path` (an ONNX file, else a checkpoint run by
    `optimize_for_inference`), measured in a fresh process after two warm-up calls."""
    code = (f"import statistics, time, torch\n"
            f"torch.set_num_threads({torch.get_num_threads()})\n"
            f"x = torch.randn(1, 3, {height}, {width}, generator=torch.Generator().manual_seed(1))\n"
            f"path = {path!r}\n"
            f"if path.endswith('.onnx'):\n"
            f"    from segnext.inference import OnnxModel\n"
            f"    model = OnnxModel(path, threads=torch.get_num_threads())\n"
            f"else:\n"
            f"    import segnext\n"
            f"    model = segnext.optimize_for_inference(segnext.create_model(checkpoint=path).eval())\n"
            f"with torch.no_grad():\n"
            f"    model(x); model(x)\n"
            f"    seconds = []\n"
            f"    for _ in range({runs}):\n"
            f"        start = time.perf_counter(); model(x); seconds.append(time.perf_counter() - start)\n"
            f"print(statistics.median(seconds))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", required=True, help="the config whose val split is scored")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=...")
    parser.add_argument("--calibration", required=True, help="folder of calibration images (a training split)")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--max-images", type=int, help="score only the first N val images")
    parser.add_argument("--sizes", nargs="+", metavar="HxW", help="timing sizes (default: 512x512 and the first val "
                                                                   "image's test input size)")
    parser.add_argument("--skip-accuracy", action="store_true", help="time only")
    parser.add_argument("--runs", type=int, default=7, help="timed calls per process")
    parser.add_argument("--passes", type=int, default=3, help="processes per model, taking turns")
    parser.add_argument("--out")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = segnext.create_model(checkpoint=args.checkpoint).eval()
    optimized = optimize_for_inference(model)
    config = load_config(args.config, args.overrides)
    dataset = config.data.build(config.data.val_split)
    test_config = test_config_for(model)
    files = sorted(p for p in Path(args.calibration).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    count = min(args.calibration_images, len(files))
    calibration = [files[round(i * (len(files) - 1) / max(count - 1, 1))] for i in range(count)]
    folder = tempfile.TemporaryDirectory()
    float_path = export_onnx(model, Path(folder.name) / "float32.onnx", test_config=test_config)
    models = {"onnxruntime float32": OnnxModel(float_path)}
    quantize_seconds = {}
    for name in args.variants:
        start = time.perf_counter()
        path = quantize_onnx(float_path, Path(folder.name) / f"{name}.onnx",
                             calibration_batches(calibration, test_config), **VARIANTS[name])
        quantize_seconds[name] = time.perf_counter() - start
        models[f"int8 {name}"] = OnnxModel(path)

    # Accuracy against the float32 path of `segnext predict` on a CPU.
    total = 0 if args.skip_accuracy else len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    names = dataset.class_names
    metrics = {"float32 optimized": SegmentationMetric(dataset.num_classes, dataset.ignore_index, names)}
    metrics.update({name: SegmentationMetric(dataset.num_classes, dataset.ignore_index, names) for name in models})
    agree = {name: [0, 0] for name in models}
    for index in range(total):
        sample = dataset[index]
        label = torch.from_numpy(np.asarray(sample["label"]).astype(np.int64))
        reference = segment(optimized, sample["image"], test_config, memory_efficient=True).cpu()
        metrics["float32 optimized"].update(reference, label)
        for name, onnx_model in models.items():
            labels = segment(onnx_model, sample["image"], test_config).cpu()
            metrics[name].update(labels, label)
            agree[name][0] += int((labels == reference).sum())
            agree[name][1] += labels.numel()
    scores = {name: metric.compute() for name, metric in metrics.items()} if total else {}
    base = scores.get("float32 optimized")
    print(f"\n{args.checkpoint} on {config.data.dataset} {config.data.val_split} ({total} images), test "
          f"{test_config.img_scale} scales {test_config.scales} flip {test_config.flip}; calibration: {count} images "
          f"of {args.calibration}")
    print(f"  {'model':<22} {'labels = float32':>17} {'mIoU':>7} {'change':>7}")
    accuracy = {}
    for name, result in scores.items():
        share = agree[name][0] / agree[name][1] if name in agree else 1.0
        change = result["mIoU"] - base["mIoU"]
        per_class = {n: (b - a if a == a and b == b else None) for n, a, b in zip(names, base["IoU"], result["IoU"])}
        accuracy[name] = dict(label_agreement=share, mIoU=result["mIoU"], mIoU_change=change, aAcc=result["aAcc"],
                              IoU=result["IoU"], IoU_change=per_class)
        print(f"  {name:<22} {100 * share:>16.2f}% {result['mIoU']:>7.2f} {change:>+7.2f}")
        if name.startswith("int8"):
            print("    per class: " + ", ".join(f"{n} {d:+.2f}" for n, d in per_class.items() if d is not None))

    # Speed at 512x512 and at the val images' input size, each model in a process of its own: the
    # idle threads of PyTorch (OpenMP) and of onnxruntime spin for a while after each call and would
    # slow whichever runtime runs next in a shared process. The processes take turns, --passes times.
    first = dataset[0]["image"]
    sizes = [tuple(int(v) for v in text.lower().split("x")) for text in args.sizes] if args.sizes else \
        [(512, 512), tuple(prepare(first, test_config).views[0].shape[:2])]
    paths = {"float32 optimized": args.checkpoint}
    paths.update({name: str(onnx_model.path) for name, onnx_model in models.items()})
    speed = {}
    for height, width in sizes:
        seconds: dict = {name: [] for name in paths}
        for _ in range(args.passes):
            for name, path in paths.items():
                seconds[name].append(time_in_own_process(path, height, width, args.runs))
        reference = statistics.median(seconds["float32 optimized"])
        print(f"\n  1 x 3 x {height} x {width}, {torch.get_num_threads()} threads, each model in its own process "
              f"(median of {args.passes} x {args.runs} runs)")
        rows = {}
        for name, values in seconds.items():
            median = statistics.median(values)
            rows[name] = dict(median_s=median, pass_medians_s=values, speedup_vs_float32_optimized=reference / median)
            print(f"    {name:<34} {1e3 * median:>8.1f} ms   {reference / median:>5.2f}x")
        speed[f"{height}x{width}"] = rows
    result = dict(checkpoint=args.checkpoint, dataset=config.data.dataset, split=config.data.val_split, images=total,
                  calibration_images=count, variants={name: {k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in VARIANTS[name].items()}
                                                      for name in args.variants},
                  quantize_seconds=quantize_seconds, accuracy=accuracy, speed=speed, threads=torch.get_num_threads(),
                  cpu=platform.processor() or platform.machine(), cpu_flags=cpu_flags(), cpu_count=os.cpu_count(),
                  torch=torch.__version__, onnxruntime=__import__("onnxruntime").__version__,
                  command=" ".join(sys.argv))
    if args.out:
        Path(args.out).write_text(json.dumps(json_safe(result), indent=2) + "\n")
        print(f"wrote {args.out}")
    folder.cleanup()


if __name__ == "__main__":
    main()
