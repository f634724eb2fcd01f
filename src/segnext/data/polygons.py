"""Label maps as polygons for a GIS (`segnext predict --polygons`): each connected region of one class
a GeoJSON feature, its outline along the pixels' edges, with the class's name, id, pixels and area.

A label map predicted for a georeferenced image (a GeoTIFF) gives polygons in the image's coordinate
reference system: the outlines lie exactly on the label GeoTIFF's pixel edges, the areas are in the
map's units (square metres for UTM), and the file names its CRS as GDAL's GeoJSON driver does
(`"crs": {"type": "name", ...}`, which QGIS and GDAL read; web maps that take only longitude and
latitude want `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`). Without a georeference the
coordinates are pixels: x to the right, y down, a pixel's corners at whole numbers. The pixels
without a label (255: no data, `--unsure-below`) get no polygon.

Tracing is GDAL's polygonize (`rasterio.features.shapes`), regions joined across a pixel's sides
(4-connected), not its corners. Needs rasterio: `pip install 'segnext[gis]'`.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import atomic_write, require, user_path

PathLike = Union[str, os.PathLike]


def label_polygons(labels: np.ndarray, class_names: Sequence[str], georeferenced: Optional[PathLike] = None,
                   no_label: int = IGNORE_INDEX) -> Iterator[dict]:
    """The GeoJSON features (dicts) of `labels` (H, W) of class ids: a Polygon (with its holes) for each
    connected region of one class, in the coordinates of the image at `georeferenced` (its transform,
    read with rasterio) or in pixels for None, with the properties `class` (its name), `class_id`,
    `pixels` and `area` (in the map's units, squared; pixels without a georeference). `no_label`
    pixels get none. Made a region at a time: a large scene's are never all in memory here."""
    rasterio = _rasterio()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (height, width) class ids; got an array of shape {labels.shape}")
    if labels.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        labels = labels.astype(np.int32 if labels.max(initial=0) > np.iinfo(np.uint16).max else np.uint16)
    transform = rasterio.Affine.identity()
    if georeferenced is not None:
        with rasterio.open(user_path(georeferenced)) as image:
            transform = image.transform
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    outside = labels == no_label
    shapes = rasterio.features.shapes(labels, mask=~outside if outside.any() else None, connectivity=4,
                                      transform=transform)
    for geometry, value in shapes:
        class_id = int(value)
        area = _area(geometry["coordinates"])
        name = class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"
        yield dict(type="Feature", geometry=dict(type="Polygon", coordinates=geometry["coordinates"]),
                   properties={"class": name, "class_id": class_id, "pixels": int(round(area / pixel_area)),
                               "area": area})


def write_polygons(path: PathLike, labels: np.ndarray, class_names: Sequence[str],
                   georeferenced: Optional[PathLike] = None, no_label: int = IGNORE_INDEX) -> int:
    """Write `label_polygons` as a GeoJSON FeatureCollection at `path` (atomically, a feature a line),
    naming the coordinate reference system of the image at `georeferenced`; the number of polygons."""
    rasterio = _rasterio()
    crs = None
    if georeferenced is not None:
        with rasterio.open(user_path(georeferenced)) as image:
            crs = image.crs
    header = {"type": "FeatureCollection"}
    if crs is not None:
        epsg = crs.to_epsg()
        name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg is not None else crs.to_string()
        header["crs"] = {"type": "name", "properties": {"name": name}}
    written = 0

    def write(temporary) -> None:
        nonlocal written
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(json.dumps(header)[:-1] + ', "features": [')
            for feature in label_polygons(labels, class_names, georeferenced, no_label):
                file.write(("," if written else "") + "\n" + json.dumps(feature, ensure_ascii=False))
                written += 1
            file.write("\n]}\n")

    atomic_write(path, write)
    return written


def _area(rings) -> float:
    """The area of a polygon given as GeoJSON rings (the outline, then its holes): the shoelace formula."""
    def ring_area(ring) -> float:
        points = np.asarray(ring, dtype=np.float64)
        x, y = points[:, 0], points[:, 1]
        return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2

    return ring_area(rings[0]) - sum(ring_area(hole) for hole in rings[1:])


def _rasterio():
    require("rasterio", "gis", "Polygons of label maps (--polygons)")
    import rasterio
    import rasterio.features  # noqa: F401  (the submodule, loaded for rasterio.features.shapes)

    return rasterio
