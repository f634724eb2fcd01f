"""One layer of polygons drawn on many georeferenced images (`segnext data rasterize LAYER FOLDER OUT`):
each image drawn alone (`rasterize_polygons`: every polygon reprojected and offered to GDAL for every
image) against the layer read once (`PolygonLayer`: reprojected once, each image drawn with the
polygons that reach it).

    python benchmarks/bench_rasterize_layer.py --buildings 20000 --grid 6 --size 1000 \
        --out benchmarks/results/rasterize_layer.json

The layer: `--buildings` square footprints of 8 to 30 m at random over a square of ground in UTM
zone 33N, written in WGS 84 as GDAL exports GeoJSON; the images: a `--grid` x `--grid` mosaic of
`--size` x `--size` GeoTIFFs of 0.5 m pixels covering that ground. Both ways must give the same label
maps (checked). Runs with the code before `PolygonLayer` too (`PYTHONPATH`): the layer's row is then
left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    import tifffile
    from rasterio.warp import transform_geom

    from segnext.data import polygons

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buildings", type=int, default=20000, help="polygons in the layer")
    parser.add_argument("--grid", type=int, default=6, help="images per side of the mosaic")
    parser.add_argument("--size", type=int, default=1000, help="pixels per side of an image")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    side = args.grid * args.size * 0.5  # metres of ground
    rng = np.random.default_rng(0)
    corners = rng.random((args.buildings, 2)) * side
    widths = rng.uniform(8, 30, args.buildings)
    features = []
    for (x, y), width in zip(corners, widths):
        x, y = 500000.0 + x, 4000000.0 - y
        ring = [[x, y], [x + width, y], [x + width, y - width], [x, y - width], [x, y]]
        features.append({"type": "Feature", "properties": {"class": "building"},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    geometries = transform_geom("EPSG:32633", "EPSG:4326", [feature["geometry"] for feature in features])
    for feature, geometry in zip(features, geometries):
        feature["geometry"] = geometry
    names = ["background", "building"]
    with tempfile.TemporaryDirectory() as folder:
        images = []
        for row in range(args.grid):
            for column in range(args.grid):
                x, y = 500000.0 + column * args.size * 0.5, 4000000.0 - row * args.size * 0.5
                keys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
                tags = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, x, y, 0.0), True),
                        (34735, "H", 16, keys, True)]
                path = Path(folder) / f"tile_{row}_{column}.tif"
                tifffile.imwrite(path, np.zeros((args.size, args.size), np.uint8), extratags=tags)
                images.append(path)
        start = time.perf_counter()
        alone = [polygons.rasterize_polygons(features, path, names, background=0) for path in images]
        alone_s = time.perf_counter() - start
        rows = [dict(way="each image alone (rasterize_polygons)", seconds=round(alone_s, 2))]
        if hasattr(polygons, "PolygonLayer"):
            start = time.perf_counter()
            layer = polygons.PolygonLayer(features, names)
            drawn = [layer.rasterize(path, background=0) for path in images]
            layer_s = time.perf_counter() - start
            assert all(np.array_equal(a, b) for a, b in zip(alone, drawn)), "the layer draws other label maps"
            rows.append(dict(way="the layer read once (PolygonLayer)", seconds=round(layer_s, 2)))
    share = float(np.mean([(labels == 1).mean() for labels in alone]))
    print(f"{args.buildings:,} polygons on {len(images)} images of {args.size} x {args.size} "
          f"(buildings cover {100 * share:.1f}%)")
    for row in rows:
        print(f"  {row['way']:<40s} {row['seconds']:8.2f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(machine=platform.processor() or platform.machine(),
                                            python=platform.python_version(), buildings=args.buildings,
                                            images=len(images), size=args.size, cases=rows), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
