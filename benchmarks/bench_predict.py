"""Prediction throughput over a folder of photos: one by one vs the `segnext predict` pipeline.

Writes `--images` JPEGs of `--size` (ADE20K-like: 512x683, textured blobs) to a temporary folder
and segments them with SegNeXt-T (random weights, 150 classes, ADE20K's test settings: keep-ratio
resize to 2048x512, up to a multiple of 32), writing a label PNG per image, in these ways,
alternated round by round (median of --rounds after a warm-up round):

- one-by-one: read, `Segmenter.predict`, write, in the main thread (the loop `segnext predict` ran
  before it had a pipeline);
- pipeline bB wW: `segnext.inference.streaming.predict_files` with batch size B and W DataLoader
  workers reading, a background thread writing (what `segnext predict --batch-size B --workers W`
  runs).

It also times the stages of one image, one after the other (read and resize, model and labels,
write: what overlapping can save at most), and one image through `Segmenter.predict` alone
(`single`), the only part that runs on older versions of segnext too (to compare versions:
PYTHONPATH=<other checkout>/src).

    python benchmarks/bench_predict.py                     # writes benchmarks/results/predict_pipeline.json
    python benchmarks/bench_predict.py --only single --out /tmp/single.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import segnext
from segnext.data import write_label
from segnext.inference import Segmenter, to_rgb_array

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, height: int, width: int, seed: int = 0):
    """JPEGs with coloured blobs and noise, so that decoding costs what a photo's does."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        blocks = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
        image = np.kron(blocks, np.ones((32, 32, 1), dtype=np.uint8))[:height, :width].astype(np.float32)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"photo_{index:03d}.jpg")
        Image.fromarray(image).save(paths[-1], quality=90)
    return paths


def one_by_one(segmenter, paths, out: Path) -> None:
    for path in paths:
        labels = segmenter.predict(to_rgb_array(path))
        write_label(out / f"{path.stem}.png", labels, segmenter.palette)


def pipeline(segmenter, paths, out: Path, batch_size: int, workers: int) -> None:
    from segnext.inference.streaming import predict_files

    with ThreadPoolExecutor(max_workers=1) as saver:
        saved = [saver.submit(write_label, out / f"{result.path.stem}.png", result.labels, segmenter.palette)
                 for result in predict_files(segmenter, paths, batch_size=batch_size, workers=workers)]
        for future in saved:
            future.result()


def stage_times(segmenter, paths, out: Path) -> dict:
    """Median milliseconds per image of each stage, run one after the other: what overlapping
    reading and writing with the model can save at most."""
    from segnext.inference import prepare

    out.mkdir()
    stages = {"read+resize": [], "model+labels": [], "write": []}
    for path in paths:
        start = time.perf_counter()
        prepared = prepare(path, segmenter.test_config)
        read = time.perf_counter()
        labels = segmenter.predict_group([prepared])[0]
        predicted = time.perf_counter()
        write_label(out / f"{path.stem}.png", labels, segmenter.palette)
        written = time.perf_counter()
        for name, seconds in zip(stages, (read - start, predicted - read, written - predicted)):
            stages[name].append(seconds)
    return {name: 1e3 * statistics.median(values) for name, values in stages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 683), metavar=("H", "W"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pipelines", nargs="+", default=["1x0", "1x1", "4x1", "4x2"], metavar="BxW",
                        help="batch size x workers of each pipeline timed")
    parser.add_argument("--only", choices=("single", "files"), help="time only one part")
    parser.add_argument("--no-optimize", action="store_true",
                        help="the plain model, as `segnext eval` runs it (default: optimize_for_inference)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks/results/predict_pipeline.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        segnext.save_model(segnext.create_model("segnext_t", 150), temporary / "model")
        segmenter = Segmenter.from_checkpoint(temporary / "model", device="cpu", optimize=not args.no_optimize)
        paths = make_photos(temporary, args.images, *args.size)
        result = dict(benchmark="predict", command="python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                      images=args.images, image_size=f"{args.size[1]}x{args.size[0]} JPEG q90",
                      model="segnext_t, 150 classes, random weights", optimized=not args.no_optimize,
                      test_config=segmenter.test_config.to_dict(),
                      torch=torch.__version__, threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                      machine=platform.machine(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                      segnext_source=str(Path(segnext.__file__).parent), rounds=args.rounds)

        if args.only in (None, "single"):
            image = to_rgb_array(paths[0])
            segmenter.predict(image)
            seconds = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                segmenter.predict(image)
                seconds.append(time.perf_counter() - start)
            result["single_image_ms"] = dict(median=1e3 * statistics.median(seconds), runs=[1e3 * s for s in seconds])
            print(f"one image through Segmenter.predict: {result['single_image_ms']['median']:.0f} ms (median)")

        if args.only in (None, "files"):
            result["stage_ms"] = stage_times(segmenter, paths, temporary / "stages")
            print("per image, median: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in result["stage_ms"].items()))
            ways = {"one-by-one": lambda out: one_by_one(segmenter, paths, out)}
            for spec in args.pipelines:
                batch_size, workers = (int(part) for part in spec.split("x"))
                ways[f"pipeline b{batch_size} w{workers}"] = (
                    lambda out, b=batch_size, w=workers: pipeline(segmenter, paths, out, b, w))
            runs = {name: [] for name in ways}
            for round_index in range(args.rounds + 1):  # round 0 warms up
                for name, run in ways.items():
                    out = temporary / f"out_{round_index}_{name.replace(' ', '_')}"
                    out.mkdir()
                    start = time.perf_counter()
                    run(out)
                    if round_index:
                        runs[name].append(args.images / (time.perf_counter() - start))
            baseline = statistics.median(runs["one-by-one"])
            result["ways"] = [dict(way=name, images_per_second=statistics.median(values),
                                   ratio_to_one_by_one=statistics.median(values) / baseline,
                                   runs=[round(v, 3) for v in values]) for name, values in runs.items()]
            for row in result["ways"]:
                print(f"{row['way']:<22} {row['images_per_second']:6.2f} img/s  {row['ratio_to_one_by_one']:.2f}x")
    result["load_average_before_after"] = [load_before, os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
