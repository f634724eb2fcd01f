"""Peak memory and time of segmenting a large TIFF scene read whole or a band of rows at a time.

    python benchmarks/bench_scene_reading.py --size 12000 --out benchmarks/results/scene_reading.json

Makes (once, under --work) a four-band uint16 GeoTIFF scene of --size x --size pixels, tiled 256 x 256
and deflate-compressed as GDAL writes them (written a row of tiles at a time), and a SegNeXt-T of four
input channels and eight classes with random weights. Each case runs in a fresh process:
`Segmenter.predict` of the file's path in 512 x 512 windows at stride 448 at the scene's own size,
then its label GeoTIFF written; `read` says how the scene is read: `whole` (`read_bands`, the
threshold `READ_IN_WINDOWS_ABOVE` set beyond the scene) or `windows` (`TiffScene`, the default for a
scene of its size). `flip` adds the mirror's windows; `overlay` is `Segmenter.overlay` (the labels
drawn over the scene's picture). The label maps of both reads must be equal (their SHA-256 is
printed). Peak memory is the process's maxrss (Linux): the interpreter, torch and the model included.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CASES = [(read, call, flip) for call, flip in (("predict", False), ("predict", True), ("overlay", False))
         for read in ("whole", "windows")]

SCRIPT = """
import hashlib, resource, time, numpy as np, segnext
from segnext.inference import TestConfig, preprocess
from segnext.data.geotiff import georeference, write_label_geotiff
preprocess.READ_IN_WINDOWS_ABOVE = {threshold}
config = TestConfig(img_scale=None, mode="slide", crop_size=(512, 512), stride=(448, 448), flip={flip},
                    mean=[500.0, 500.0, 500.0, 500.0], std=[250.0, 250.0, 250.0, 250.0])
segmenter = segnext.Segmenter.from_checkpoint({model!r}, test_config=config)
start = time.perf_counter()
if {call!r} == "overlay":
    picture = segmenter.overlay({scene!r})
    digest = hashlib.sha256(picture.tobytes()).hexdigest()
else:
    labels = segmenter.predict({scene!r})
    write_label_geotiff({out!r}, labels, segmenter.palette, georeference({scene!r}))
    digest = hashlib.sha256(labels.tobytes()).hexdigest()
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, digest)
"""


def make_scene(path: Path, size: int) -> None:
    """A four-band uint16 scene of blocks with noise, tiled and deflate-compressed, with a georeference."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    levels = rng.integers(100, 1000, (size // 200 + 1, size // 200 + 1, 4)).astype(np.uint16)
    tile = 256

    def tiles():
        for top in range(0, size, tile):
            rows = np.arange(top, min(top + tile, size)) // 200
            for left in range(0, size, tile):
                columns = np.arange(left, min(left + tile, size)) // 200
                block = levels[rows][:, columns] + rng.integers(0, 64, (len(rows), len(columns), 4), dtype=np.uint16)
                yield block

    tags = [(33550, 12, 3, (10.0, 10.0, 0.0), True), (33922, 12, 6, (0, 0, 0, 500000.0, 5000000.0, 0), True)]
    tifffile.imwrite(path, tiles(), shape=(size, size, 4), dtype=np.uint16, tile=(tile, tile), compression="zlib",
                     photometric="minisblack", planarconfig="contig", extratags=tags, bigtiff=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=12000, help="the scene's height and width")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segnext_scene_reading"),
                        help="folder for the scene, the model and the label maps")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case (the median is reported)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    import segnext

    args.work.mkdir(parents=True, exist_ok=True)
    scene = args.work / f"scene_{args.size}.tif"
    if not scene.exists():
        make_scene(scene, args.size)
    model = args.work / "model"
    if not model.exists():
        segnext.create_model("segnext_t", 8, in_channels=4).save_pretrained(model)

    rows = []
    for read, call, flip in CASES:
        runs = []
        for _ in range(args.repeats):
            code = SCRIPT.format(threshold="1 << 62" if read == "whole" else 0, flip=flip, model=str(model),
                                 scene=str(scene), call=call, out=str(args.work / f"labels_{read}.tif"))
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"case {read} {call} flip={flip} failed:\n{done.stderr}")
            seconds, peak, digest = done.stdout.split()[-3:]
            runs.append((float(seconds), int(peak), digest))
        runs.sort()
        seconds, peak, digest = runs[len(runs) // 2]
        rows.append(dict(read=read, call=call, flip=flip, seconds=round(seconds, 1), peak_mb=peak,
                         sha256=digest[:16]))
        print(f"{call:8s} flip={str(flip):5s} read={read:8s} {seconds:7.1f} s {peak:7,d} MB  {digest[:16]}",
              flush=True)
    for call, flip in {(row["call"], row["flip"]) for row in rows}:
        digests = {row["sha256"] for row in rows if (row["call"], row["flip"]) == (call, flip)}
        if len(digests) != 1:
            raise SystemExit(f"{call} flip={flip}: the two reads gave different results")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(size=args.size, machine=platform.processor() or platform.machine(),
                                            python=platform.python_version(), cases=rows), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
