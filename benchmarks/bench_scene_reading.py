"""Peak memory and time of segmenting a large TIFF scene read whole or a band of rows at a time.

    python benchmarks/bench_scene_reading.py --size 12000 --out benchmarks/results/scene_reading.json

Makes (once, under --work) a four-band uint16 GeoTIFF scene of --size x --size pixels, tiled 256 x 256
and deflate-compressed as GDAL writes them (written a row of tiles at a time), and a SegNeXt-T of four
input channels and eight classes with random weights; with --rgb an 8-bit RGB scene and an RGB
model; with --rgb --jpeg the RGB scene is stored as GDAL stores orthophotos (JPEG in YCbCr, quality
90, its footprint in an internal mask: a border of 600 pixels without data, or with `--footprint
diamond` the square turned by 45 degrees inside it, half the raster, as a drone survey's footprint
leaves much of its orthophoto empty; decoding it in windows needs imagecodecs, read whole Pillow
decodes it). Each case runs in a fresh process: `Segmenter.predict` of the file's path in 512 x 512
windows at stride 448 at the scene's own size, then its label GeoTIFF written; `read` says how the
scene is read: `whole` (`read_bands` or `read_image`, the threshold `READ_IN_WINDOWS_ABOVE` set
beyond the scene) or `windows` (`TiffScene`, the default for a scene of its size). Cases (--cases):
`labels`, `labels_flip` (the mirror's windows too), `overlay` (`Segmenter.overlay`: the labels drawn
over the scene's picture), `labels_no_data` (`leave_no_data`: the pixels outside the footprint
unlabelled, the windows all outside it not run). The label maps of both reads must be equal (their SHA-256 is
printed). Peak memory is the process's maxrss (Linux): the interpreter, torch and the model included.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CASES = {"labels": ("predict", False), "labels_flip": ("predict", True), "overlay": ("overlay", False),
         "labels_no_data": ("predict_no_data", False)}

SCRIPT = """
import hashlib, resource, time, numpy as np, segnext
from segnext.inference import TestConfig, preprocess
from segnext.data.geotiff import georeference, write_label_geotiff
preprocess.READ_IN_WINDOWS_ABOVE = {threshold}
config = TestConfig(img_scale=None, mode="slide", crop_size=(512, 512), stride=(448, 448), flip={flip},
                    {normalisation})
segmenter = segnext.Segmenter.from_checkpoint({model!r}, test_config=config)
segmenter.leave_no_data = {call!r} == "predict_no_data"
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


def make_scene(path: Path, size: int, rgb: bool, jpeg: bool = False, footprint: str = "border") -> None:
    """A four-band uint16 (or 8-bit RGB) scene of blocks with noise, tiled and deflate-compressed (or
    JPEG in YCbCr with an internal mask of its `footprint`), with a georeference."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    bands, dtype = (3, np.uint8) if rgb else (4, np.uint16)
    levels = rng.integers(0, 190 if rgb else 1000, (size // 200 + 1, size // 200 + 1, bands)).astype(dtype)
    tile = 256

    def tiles():
        for top in range(0, size, tile):
            rows = np.arange(top, min(top + tile, size)) // 200
            for left in range(0, size, tile):
                columns = np.arange(left, min(left + tile, size)) // 200
                yield levels[rows][:, columns] + rng.integers(0, 64, (len(rows), len(columns), bands), dtype=dtype)

    tags = [(33550, 12, 3, (10.0, 10.0, 0.0), True), (33922, 12, 6, (0, 0, 0, 500000.0, 5000000.0, 0), True)]
    if not jpeg:
        tifffile.imwrite(path, tiles(), shape=(size, size, bands), dtype=dtype, tile=(tile, tile), compression="zlib",
                         photometric="rgb" if rgb else "minisblack", planarconfig="contig", extratags=tags,
                         bigtiff=True)
        return
    valid = np.zeros((size, size), dtype=bool)
    valid[600:-600, 600:-600] = True
    if footprint == "diamond":
        rows, columns = np.ogrid[:size, :size]
        valid &= np.abs(rows - size / 2) + np.abs(columns - size / 2) < size / 2
    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        tiff.write(tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                   compressionargs=dict(level=90), photometric="ycbcr", extratags=tags)
        tiff.write(valid, tile=(tile, tile), compression="zlib", photometric=4, subfiletype=4)  # GDAL's internal mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=12000, help="the scene's height and width")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segnext_scene_reading"),
                        help="folder for the scene, the model and the label maps")
    parser.add_argument("--rgb", action="store_true", help="an 8-bit RGB scene and a model of RGB images")
    parser.add_argument("--jpeg", action="store_true", help="with --rgb: JPEG in YCbCr with an internal mask")
    parser.add_argument("--footprint", choices=("border", "diamond"), default="border",
                        help="with --jpeg: where the mask holds data (default: all but a border of 600 pixels)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES), help="what to run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case (the median is reported)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    import segnext

    args.work.mkdir(parents=True, exist_ok=True)
    if args.jpeg and not args.rgb:
        parser.error("--jpeg is for an RGB scene: add --rgb")
    kind = ("rgb_jpeg" + ("_diamond" if args.footprint == "diamond" else "")) if args.jpeg else \
        "rgb" if args.rgb else "bands"
    scene = args.work / f"scene_{kind}_{args.size}.tif"
    if not scene.exists():
        make_scene(scene, args.size, args.rgb, args.jpeg, args.footprint)
    model = args.work / f"model_{'rgb' if args.rgb else 'bands'}"
    if not model.exists():
        segnext.create_model("segnext_t", 8, in_channels=3 if args.rgb else 4).save_pretrained(model)
    normalisation = "" if args.rgb else "mean=[500.0] * 4, std=[250.0] * 4"

    rows = []
    for read, (call, flip) in [(read, CASES[case]) for case in args.cases for read in ("whole", "windows")]:
        runs = []
        for _ in range(args.repeats):
            code = SCRIPT.format(threshold="1 << 62" if read == "whole" else 0, flip=flip, model=str(model),
                                 normalisation=normalisation,
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
        machine = platform.processor() or platform.machine()
        args.out.write_text(json.dumps(dict(size=args.size, scene=kind, machine=machine,
                                            python=platform.python_version(), cases=rows), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
