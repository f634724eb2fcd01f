"""Peak memory and time of large-image prediction, each case in a fresh process.

    python benchmarks/bench_memory.py --out benchmarks/results/memory.json

Cases (SegNeXt-T, 150 classes, the official fixture checkpoint's weights):
- `slide_8000x6000`: an 8000 x 6000 photo, slide inference (img_scale 1024 x 768, 512 x 512 windows,
  stride 384), labels at the photo's size;
- `ms_flip_2000x1500`: a 2000 x 1500 photo, whole-image multi-scale (0.5 ... 1.75) + flip test, labels;
- `ms_flip_2000x1500_proba`: the same, with the averaged class probabilities returned as well;
- `slide_4000x3000`: a 4000 x 3000 photo, the slide test of the first case, labels;
- `*_confidence`: labels and each pixel's confidence (`predict_with_confidence`, what
  `segnext predict --confidence` writes);
- `slide_native_8000x8000`: an 8000 x 8000 scene segmented at its own size (img_scale None, one scale,
  no flip) in 512 x 512 windows, stride 448, as aerial and satellite scenes are (`--keep-size`); run
  it with a model of few classes (`--checkpoint camvid`): the logits of 150 classes for every pixel of
  it would be 38 GB where they are all made; `slide_native_flip_8000x8000`: the same with flip (the
  image's and its mirror's probabilities averaged); `slide_native_*_probs_file_bands`: those scenes'
  labels and class probabilities written as `segnext predict --probs` writes them;
- `*_probs_file_*`: labels and the class probabilities written to a float16 .npy file, as
  `segnext predict --probs` does: `_whole` all of them made first (`predict_with_proba`, then
  `np.save`), `_bands` a band of rows at a time (`ClassProbabilities.save`); the file is removed
  after.

Peak memory is the process's maxrss (Linux), so it includes the interpreter, torch and the model
(about 500 MB). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO.parent / "shared" / "fixtures" / "segnext_tiny_ade_random.pth"

SETTINGS = {
    "slide_8000x6000": ("(6000, 8000)", "TestConfig(img_scale=(1024, 768), mode='slide', crop_size=(512, 512), "
                                        "stride=(384, 384))", "predict"),
    "slide_native_8000x8000": ("(8000, 8000)", "TestConfig(img_scale=None, mode='slide', crop_size=(512, 512), "
                                               "stride=(448, 448))", "predict"),
    "slide_native_8000x8000_confidence": ("(8000, 8000)", "TestConfig(img_scale=None, mode='slide', "
                                                          "crop_size=(512, 512), stride=(448, 448))",
                                          "predict_with_confidence"),
    "slide_native_flip_8000x8000": ("(8000, 8000)", "TestConfig(img_scale=None, mode='slide', crop_size=(512, 512), "
                                                    "stride=(448, 448), flip=True)", "predict"),
    "ms_flip_2000x1500": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512), size_divisor=32, "
                                          "scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)", "predict"),
    "slide_4000x3000": ("(3000, 4000)", "TestConfig(img_scale=(1024, 768), mode='slide', crop_size=(512, 512), "
                                        "stride=(384, 384))", "predict"),
    "slide_4000x3000_confidence": ("(3000, 4000)", "TestConfig(img_scale=(1024, 768), mode='slide', "
                                                   "crop_size=(512, 512), stride=(384, 384))",
                                   "predict_with_confidence"),
    "ms_flip_2000x1500_confidence": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512), size_divisor=32, "
                                                     "scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)",
                                     "predict_with_confidence"),
    "ms_flip_2000x1500_proba": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512), size_divisor=32, "
                                                "scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)",
                                "predict_with_proba"),
    "slide_native_8000x8000_probs_file_bands": ("(8000, 8000)", "TestConfig(img_scale=None, mode='slide', "
                                                                "crop_size=(512, 512), stride=(448, 448))",
                                                "probs_file_bands"),
    "slide_native_flip_8000x8000_probs_file_bands": ("(8000, 8000)", "TestConfig(img_scale=None, mode='slide', "
                                                                     "crop_size=(512, 512), stride=(448, 448), "
                                                                     "flip=True)", "probs_file_bands"),
    "whole_2000x1500_probs_file_whole": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512))", "probs_file_whole"),
    "whole_2000x1500_probs_file_bands": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512))", "probs_file_bands"),
    "ms_flip_2000x1500_probs_file_bands": ("(1500, 2000)", "TestConfig(img_scale=(2048, 512), size_divisor=32, "
                                                           "scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)",
                                           "probs_file_bands"),
}

# What `segnext predict --probs` does with an image's probabilities: all of them as an array, then
# a float16 .npy (before), or a band of rows at a time into the file (`ClassProbabilities.save`).
CALLS = {
    "probs_file_whole": "labels, probabilities = segmenter.predict_with_proba(image)\n"
                        "np.save(os.path.join(folder, 'probs.npy'), probabilities.astype(np.float16))",
    "probs_file_bands": "(labels, probabilities), = segmenter.predict_group([segmenter.prepare(image)], "
                        "with_probabilities=True, probabilities_in_bands=True)\n"
                        "probabilities.save(os.path.join(folder, 'probs.npy'))",
}

SCRIPT = """
import os, resource, shutil, tempfile, time, numpy as np, segnext
from segnext.inference import TestConfig
height, width = {shape}
segmenter = segnext.Segmenter.from_checkpoint({checkpoint!r}, test_config={settings})
blocks = np.random.default_rng(0).integers(0, 255, (height // 100, width // 100, 3))
image = np.repeat(np.repeat(blocks.astype(np.uint8), 100, axis=0), 100, axis=1)  # no float64 copy of the image
folder = tempfile.mkdtemp()
start = time.perf_counter()
{call}
assert labels.shape == (height, width), labels.shape
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
shutil.rmtree(folder)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--cases", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "memory.json"))
    args = parser.parse_args()
    rows = []
    for name in args.cases:
        shape, settings, method = SETTINGS[name]
        call = CALLS.get(method, f"result = segmenter.{method}(image)\n"
                                 f"labels = result[0] if isinstance(result, tuple) else result")
        script = SCRIPT.format(shape=shape, checkpoint=args.checkpoint, settings=settings, call=call)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if result.returncode:
            print(f"{name}: failed\n{result.stderr}", file=sys.stderr)
            return 1
        seconds, peak_mb = result.stdout.split()[-2:]
        rows.append(dict(case=name, seconds=round(float(seconds), 1), peak_mb=int(peak_mb)))
        print(f"{name:<30} {float(seconds):8.1f} s {int(peak_mb):8d} MB peak", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M"), python=platform.python_version(),
                                   machine=platform.machine(), results=rows), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
