"""bfloat16 inference on this CPU against the float32 path `segnext predict` runs there.

    python benchmarks/bench_cpu_bf16.py --out benchmarks/results/cpu_bf16.json
    python benchmarks/bench_cpu_bf16.py --checkpoint RUN/final_model --image street.png --size 512 512

`Segmenter(..., amp=True)` (`segnext predict --amp`) runs a GPU model in reduced precision and
leaves a CPU model in float32. This measures whether bfloat16 would pay on this CPU: one image
through the model at --size, 2 threads (torch's), the paths alternated call by call, median of --runs
after --warmup:

- "optimized float32": `optimize_for_inference` (folded, channels-last, oneDNN-fused), the CPU default;
- "eager bfloat16 autocast": the model in channels-last under `torch.autocast("cpu", torch.bfloat16)`;
- "optimized bfloat16 weights": the optimized model cast to bfloat16 (its fused convolutions then
  run in bfloat16).

For each, the share of pixels whose label (argmax of the logits) equals the float32 path's, and the
largest logit difference. Whether the CPU has bfloat16 instructions (AVX512-BF16 or AMX) is printed:
without them oneDNN emulates bfloat16. The model is the CamVid SegNeXt-T in the package unless
--checkpoint names another; the image is --image, else random (trained weights on a real image give
the honest label agreement).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="camvid")
    parser.add_argument("--image", help="an image (resized to --size); default: random")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    native = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    model = segnext.create_model(checkpoint=args.checkpoint).eval()
    height, width = args.size
    if args.image:
        from segnext.data import read_image
        from segnext.inference import to_tensor

        image = read_image(args.image)
        images = torch.nn.functional.interpolate(to_tensor(image), size=(height, width), mode="bilinear",
                                                 align_corners=False)
    else:
        images = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    optimized = segnext.optimize_for_inference(model)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    optimized_bf16 = copy.deepcopy(optimized).to(torch.bfloat16)
    images_cl, images_bf16 = images.contiguous(memory_format=torch.channels_last), images.to(torch.bfloat16)

    def eager_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return channels_last(images_cl)

    paths = {"optimized float32": lambda: optimized(images), "eager bfloat16 autocast": eager_bf16,
             "optimized bfloat16 weights": lambda: optimized_bf16(images_bf16)}
    seconds = {name: [] for name in paths}
    with torch.no_grad():
        for index in range(args.warmup + args.runs):
            for name, run in paths.items():
                start = time.perf_counter()
                run()
                if index >= args.warmup:
                    seconds[name].append(time.perf_counter() - start)
        reference = paths["optimized float32"]().float()
        outputs = {name: run().float() for name, run in paths.items()}
    median = {name: statistics.median(values) for name, values in seconds.items()}
    rows = {name: {"median_ms": 1e3 * median[name], "ratio": median[name] / median["optimized float32"],
                   "labels_agree": float((outputs[name].argmax(1) == reference.argmax(1)).float().mean()),
                   "max_abs_diff": float((outputs[name] - reference).abs().max())} for name in paths}

    print(f"{args.checkpoint} at {height}x{width}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"this CPU {'has' if native else 'lacks'} bfloat16 instructions")
    print(f"  {'path':<28} {'median ms':>10} {'x float32':>10} {'labels = float32':>17} {'max |diff|':>11}")
    for name, row in rows.items():
        print(f"  {name:<28} {row['median_ms']:>10.1f} {row['ratio']:>10.2f} {row['labels_agree']:>16.3%} "
              f"{row['max_abs_diff']:>11.2g}")
    if args.out:
        result = {"checkpoint": args.checkpoint, "image": args.image, "size": [height, width],
                  "threads": torch.get_num_threads(), "torch": torch.__version__, "native_bf16": native,
                  "machine": platform.processor() or platform.machine(), "load_average": os.getloadavg(),
                  "paths": rows, "runs": seconds}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
