"""The other int8 toolchain, measured for the choice: PyTorch's x86 quantizer (torchao's PT2E flow,
`X86InductorQuantizer`) compiled by inductor, against segnext's float32 optimized path.

    pip install torchao     # not a segnext dependency: this script only
    python benchmarks/int8_pt2e.py --checkpoint RUN/final_model --calibration data/camvid/images/train \
        --images data/camvid/images/val --size 512 512 [--float-decoder] [--float-stem]

It exports the folded model's stride-8 logits with torch.export, annotates it with the default x86
configuration (static, per-channel weights), calibrates on --calibration images (resized to --size),
converts and compiles with inductor (freezing on), then reports the compile time, the share of
stride-8 labels equal to the float32 path's on --images, and the median latency of both, alternated in
one process (both are PyTorch). Inductor compiles for one input size: a new size compiles again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import segnext
from segnext.inference import TestConfig, optimize_for_inference, prepare, to_tensor


def main() -> None:
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calibration", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--float-decoder", action="store_true")
    parser.add_argument("--float-stem", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    inductor_config.freezing = True
    height, width = args.size
    model = segnext.create_model(checkpoint=args.checkpoint).eval()
    folded = segnext.create_model(checkpoint=args.checkpoint).eval().reparameterize()

    class Logits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("bases", net.nmf.seeded_bases(net.config.ham_channels))

        def forward(self, x):
            return self.net.forward_logits(x, self.bases)

    settings = TestConfig(img_scale=None)

    def inputs(folder, count):
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
        for path in files[:: max(1, len(files) // count)][:count]:
            x = to_tensor(prepare(path, settings).views[0]).contiguous()
            yield F.interpolate(x, size=(height, width), mode="bilinear") if x.shape[2:] != (height, width) else x

    example = torch.randn(1, 3, height, width)
    start = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(Logits(folded).eval(), (example,)).module()
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        if args.float_decoder:
            quantizer.set_module_name_qconfig("net.decode_head", None)
        if args.float_stem:
            quantizer.set_module_name_qconfig("net.backbone.patch_embed1", None)
        prepared = prepare_pt2e(exported, quantizer)
        for x in inputs(args.calibration, 32):
            prepared(x)
        compiled = torch.compile(convert_pt2e(prepared))
        compiled(example)
    compile_seconds = time.perf_counter() - start
    optimized = optimize_for_inference(model)
    with torch.no_grad():
        agreement = [float((optimized.forward_logits(x).argmax(1) == compiled(x).argmax(1)).float().mean())
                     for x in inputs(args.images, 20)]
        functions = {"float32 optimized": lambda: optimized.forward_logits(example),
                     "pt2e int8": lambda: compiled(example)}
        for function in functions.values():
            function()
            function()
        seconds = {name: [] for name in functions}
        for _ in range(args.runs):
            for name, function in functions.items():
                begin = time.perf_counter()
                function()
                seconds[name].append(time.perf_counter() - begin)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    result = dict(size=[height, width], compile_seconds=compile_seconds, label_agreement=float(np.mean(agreement)),
                  median_s=medians, speedup=medians["float32 optimized"] / medians["pt2e int8"],
                  float_decoder=args.float_decoder, float_stem=args.float_stem, torch=torch.__version__)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
