"""Time and peak memory of a label map's polygons (`predict --polygons`) and of drawing them back
(`data rasterize`), for label maps of growing size.

    python benchmarks/bench_polygons.py --sizes 4000 8000 12000 --out benchmarks/results/polygons.json
    python benchmarks/bench_polygons.py --sizes 4000 12000 --specks 0.01 --sieve 16 \
        --out benchmarks/results/polygons_sieve.json

Each label map is a field of 8 classes in blocks of 200 x 200 pixels (buildings, fields), with a
pixel of another class every 10000 rows and columns (or, with --specks F, a fraction F of the pixels
at random: a prediction's noise), georeferenced in UTM; each case runs in a fresh process:
`write_polygons` of the map, then `rasterize_polygons` of the file it wrote on the same scene, which
must give the label map back. With --sieve N the map is first sieved (`sieve_labels`, regions of
fewer than N pixels merged into their neighbours), timed apart. Peak memory is the process's maxrss
(Linux).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import resource, time, numpy as np, tifffile
from segnext.data.polygons import rasterize_polygons, read_polygons, sieve_labels, write_polygons
size, work, specks, sieve = {size}, {work!r}, {specks!r}, {sieve!r}
rng = np.random.default_rng(0)
blocks = rng.integers(0, 8, (size // 200 + 1, size // 200 + 1)).astype(np.uint8)
labels = np.repeat(np.repeat(blocks, 200, 0), 200, 1)[:size, :size].copy()
if specks:
    noise = rng.random((size, size)) < specks
    labels[noise] = (labels[noise] + rng.integers(1, 8, int(noise.sum()))) % 8
else:
    labels[100::10000, 100::10000] = (labels[100::10000, 100::10000] + 1) % 8  # specks
start = time.perf_counter()
if sieve:
    labels = sieve_labels(labels, sieve)
sieved = time.perf_counter() - start
tags = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0.0), True),
        (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), True)]
tifffile.imwrite(work + "/scene.tif", labels, extratags=tags, compression="zlib", tile=(256, 256))
names = [f"class {{index}}" for index in range(8)]
start = time.perf_counter()
count = write_polygons(work + "/scene.geojson", labels, names, work + "/scene.tif")
traced = time.perf_counter() - start
start = time.perf_counter()
features, crs = read_polygons(work + "/scene.geojson")
drawn = rasterize_polygons(features, work + "/scene.tif", names, crs=crs)
back = time.perf_counter() - start
assert np.array_equal(drawn, labels), "the polygons drawn back differ from the label map"
print(sieved, count, traced, back, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 8000, 12000], help="label maps' sides")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segnext_polygons"), help="folder for the files")
    parser.add_argument("--specks", type=float, default=0.0, help="the fraction of pixels of a random other class")
    parser.add_argument("--sieve", type=int, default=0, help="sieve the map first: regions below this many pixels")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'size':>7s} {'sieved':>8s} {'polygons':>9s} {'traced':>8s} {'drawn back':>11s} {'peak':>9s}")
    for size in args.sizes:
        script = SCRIPT.format(size=size, work=str(args.work), specks=args.specks, sieve=args.sieve)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"size {size} failed:\n{done.stderr}")
        sieved, count, traced, back, peak = done.stdout.split()[-5:]
        rows.append(dict(size=size, specks=args.specks, sieve=args.sieve, sieved_s=round(float(sieved), 2),
                         polygons=int(count), traced_s=round(float(traced), 2), drawn_back_s=round(float(back), 2),
                         peak_mb=int(peak)))
        print(f"{size:7d} {float(sieved):7.2f}s {int(count):9,d} {float(traced):7.2f}s {float(back):10.2f}s "
              f"{int(peak):7,d} MB", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(machine=platform.processor() or platform.machine(),
                                            python=platform.python_version(), cases=rows), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
