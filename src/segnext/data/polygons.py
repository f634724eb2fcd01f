"""Label maps as polygons for a GIS (`segnext predict --polygons`): each connected region of one class
a GeoJSON feature, its outline along the pixels' edges, with the class's name, id, pixels and area;
and back: polygons drawn in GIS (buildings, fields) as the label map of an image, or one layer on
many images (`PolygonLayer`; `segnext data rasterize`), to train on.

A label map predicted for a georeferenced image (a GeoTIFF) gives polygons in the image's coordinate
reference system: the outlines lie exactly on the label GeoTIFF's pixel edges, the areas are in the
map's units (square metres for UTM; `area_m2` in square metres wherever the georeference gives them,
longitude and latitude on the WGS 84 ellipsoid too), and the file names its CRS as GDAL's GeoJSON driver does
(`"crs": {"type": "name", ...}`, which QGIS and GDAL read; web maps that take only longitude and
latitude want `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`). Without a georeference the
coordinates are pixels: x to the right, y down, a pixel's corners at whole numbers. The pixels
without a label (255: no data, `--unsure-below`) get no polygon.

Tracing is GDAL's polygonize (`rasterio.features.shapes`), regions joined across a pixel's sides
(4-connected), not its corners; `sieve_labels` first merges the regions below a size into their
neighbours (GDAL's sieve), for fewer, cleaner polygons. Drawing polygons is GDAL's rasterize: a
pixel takes the class of the last polygon that holds its centre (or that it touches, `all_touched`),
the polygons reprojected from their CRS (GeoJSON's: WGS 84 longitude and latitude, unless the file
names another) to the image's. Needs rasterio: `pip install 'segnext[gis]'`.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import atomic_write, require, user_path
from .geotiff import ellipsoid_area_to, in_ellipsoid_degrees, pixel_ground_area, sidecar_crs, world_file_of
from .io import DataError

PathLike = Union[str, os.PathLike]


def label_polygons(labels: np.ndarray, class_names: Sequence[str], georeferenced: Optional[PathLike] = None,
                   no_label: int = IGNORE_INDEX) -> Iterator[dict]:
    """The GeoJSON features (dicts) of `labels` (H, W) of class ids: a Polygon (with its holes) for each
    connected region of one class, in the coordinates of the image at `georeferenced` (its transform,
    read with rasterio) or in pixels for None, with the properties `class` (its name), `class_id`,
    `pixels`, `area` (in the map's units, squared; pixels without a georeference) and, where the
    georeference gives it, `area_m2`: square metres on the ground, of projected metres or feet
    (`pixel_ground_area`), or of longitude and latitude on the WGS 84 ellipsoid (exact for outlines
    along meridians and parallels, as pixels' are). `no_label` pixels get none. Made a region at a
    time: a large scene's are never all in memory here."""
    rasterio = _rasterio()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (height, width) class ids; got an array of shape {labels.shape}")
    if labels.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        labels = labels.astype(np.int32 if labels.max(initial=0) > np.iinfo(np.uint16).max else np.uint16)
    transform = rasterio.Affine.identity() if georeferenced is None else _place(georeferenced)[1]
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    ground = None if georeferenced is None else pixel_ground_area(georeferenced)
    metres_per_unit = None if ground is None else ground / pixel_area  # square metres per squared map unit
    in_degrees = georeferenced is not None and ground is None and in_ellipsoid_degrees(georeferenced)
    outside = labels == no_label
    shapes = rasterio.features.shapes(labels, mask=~outside if outside.any() else None, connectivity=4,
                                      transform=transform)
    for geometry, value in shapes:
        class_id = int(value)
        area = _area(geometry["coordinates"])
        name = class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"
        properties = {"class": name, "class_id": class_id, "pixels": int(round(area / pixel_area)), "area": area}
        if metres_per_unit is not None:
            properties["area_m2"] = area * metres_per_unit
        elif in_degrees:
            properties["area_m2"] = _ellipsoid_area(geometry["coordinates"])
        yield dict(type="Feature", geometry=dict(type="Polygon", coordinates=geometry["coordinates"]),
                   properties=properties)


def sieve_labels(labels: np.ndarray, min_pixels: int, no_label: int = IGNORE_INDEX) -> np.ndarray:
    """`labels` (H, W) with every region of one class smaller than `min_pixels` pixels (joined across
    pixels' sides, as the polygons are) given the class of its largest neighbouring region, smallest
    first, as `gdal_sieve.py` does (GDAL's sieve): the specks and thin slivers of a prediction merged
    into what surrounds them. `no_label` pixels are neither merged nor merged into (a region that
    only they surround keeps its class). A new array of the labels' type."""
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be at least 1, got {min_pixels}")
    rasterio = _rasterio()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (height, width) class ids; got an array of shape {labels.shape}")
    source = labels if labels.dtype in (np.uint8, np.uint16, np.int16, np.int32) else labels.astype(np.int32)
    outside = source == no_label
    sieved = rasterio.features.sieve(source, min_pixels, mask=~outside if outside.any() else None, connectivity=4)
    return sieved.astype(labels.dtype, copy=False)


def write_polygons(path: PathLike, labels: np.ndarray, class_names: Sequence[str],
                   georeferenced: Optional[PathLike] = None, no_label: int = IGNORE_INDEX) -> int:
    """Write `label_polygons` as a GeoJSON FeatureCollection at `path` (atomically, a feature a line),
    naming the coordinate reference system of the image at `georeferenced`; the number of polygons."""
    crs = None if georeferenced is None else _place(georeferenced)[2]
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


def read_polygons(path: PathLike) -> Tuple[List[dict], Optional[str]]:
    """The features of the GeoJSON file at `path` (a FeatureCollection, a Feature or a geometry) and
    the coordinate reference system its "crs" member names (as GDAL writes it), or None where it names
    none (GeoJSON's own: WGS 84). Raises `DataError` naming the file where it is no GeoJSON."""
    path = user_path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: cannot read this GeoJSON file ({error}); export the layer again as GeoJSON "
                        f"(QGIS: Export > Save Features As; ogr2ogr -f GeoJSON)") from None
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "FeatureCollection" and isinstance(document.get("features"), list):
        features = document["features"]
    elif kind == "Feature":
        features = [document]
    elif isinstance(kind, str) and "coordinates" in document or kind == "GeometryCollection":
        features = [dict(type="Feature", geometry=document, properties={})]
    else:
        raise DataError(f"{path}: holds no GeoJSON features (a FeatureCollection, a Feature or a geometry); "
                        f"export the layer again as GeoJSON")
    crs = document.get("crs", {}).get("properties", {}).get("name") if isinstance(document.get("crs"), dict) else None
    return features, crs


def rasterize_polygons(features: Sequence[dict], like: PathLike, class_names: Sequence[str], *,
                       class_property: str = "class", crs: Optional[str] = None, background: int = IGNORE_INDEX,
                       all_touched: bool = False) -> np.ndarray:
    """The label map (H, W) uint8 of the image at `like` (its size, place and CRS, read with rasterio)
    that the GeoJSON `features` draw: each polygon its class, from its property `class_property`, a
    name of `class_names` or an id; the pixels no polygon holds `background` (255: no label). A
    pixel takes the last polygon holding its centre (any it touches with `all_touched`). crs: the
    features' (`read_polygons`), None for GeoJSON's WGS 84; reprojected to the image's. For an image
    without a georeference, the coordinates are its pixels (x right, y down), as `label_polygons`
    writes them. Raises `DataError` naming a feature whose class is not one of `class_names`.
    `PolygonLayer` draws one layer on many images."""
    layer = PolygonLayer(features, class_names, class_property=class_property, crs=crs)
    return layer.rasterize(like, background=background, all_touched=all_touched)


class PolygonLayer:
    """GeoJSON polygons with their classes (see `rasterize_polygons`), read once and drawn on many
    images: one layer of a whole city's buildings or a region's fields over the orthophotos it covers.
    The polygons are reprojected once for each CRS the images lie in, and each image is drawn with
    only the polygons whose bounds reach it. Raises `DataError` naming a feature whose class is not
    one of `class_names`."""

    def __init__(self, features: Sequence[dict], class_names: Sequence[str], *, class_property: str = "class",
                 crs: Optional[str] = None):
        names = {name: index for index, name in enumerate(class_names)}
        self.crs = crs
        self.shapes: List[Tuple[dict, int]] = []  # (geometry in `crs`, class id), in the layer's order
        for number, feature in enumerate(features):
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            if not geometry:
                continue  # a feature without a geometry draws nothing
            value = (feature.get("properties") or {}).get(class_property)
            class_id = _class_id(value, names)
            if class_id is None:
                raise DataError(f"feature {number}: its {class_property!r} is {value!r}, which names none of the "
                                f"{len(class_names)} classes ({', '.join(map(str, list(class_names)[:8]))}"
                                f"{', ...' if len(class_names) > 8 else ''}); give a class name or id, or "
                                f"--class-property")
            self.shapes.append((geometry, class_id))
        self._in_crs: dict = {}  # the image CRS (or None: pixels) -> (shapes there, their bounds (N, 4))

    def rasterize(self, like: PathLike, *, background: int = IGNORE_INDEX, all_touched: bool = False) -> np.ndarray:
        """The label map (H, W) uint8 of the image at `like` that the layer draws (`rasterize_polygons`)."""
        rasterio = _rasterio()
        from rasterio.features import rasterize

        like = user_path(like)
        (height, width), transform, image_crs = _place(like)
        if image_crs is None:
            if self.crs is not None:
                raise DataError(f"{like} carries no georeference, and the polygons lie in {self.crs}: give the "
                                f"GeoTIFF they were drawn on")
            transform = rasterio.Affine.identity()
        shapes, bounds = self._shapes_in(image_crs)
        columns, rows = np.array([0, width, 0, width]), np.array([0, 0, height, height])  # the corners
        x = transform.a * columns + transform.b * rows + transform.c
        y = transform.d * columns + transform.e * rows + transform.f
        left, right, bottom, top = x.min(), x.max(), y.min(), y.max()
        reaching = np.flatnonzero((bounds[:, 0] <= right) & (bounds[:, 2] >= left) & (bounds[:, 1] <= top) &
                                  (bounds[:, 3] >= bottom)) if len(shapes) else []
        if not len(reaching):
            return np.full((height, width), background, dtype=np.uint8)
        return rasterize([shapes[index] for index in reaching], out_shape=(height, width), fill=background,
                         transform=transform, all_touched=all_touched, dtype=np.uint8)

    def _shapes_in(self, image_crs) -> Tuple[List[Tuple[dict, int]], np.ndarray]:
        """The shapes in `image_crs` (None: as they are) and their bounds (minx, miny, maxx, maxy)."""
        key = None if image_crs is None else image_crs.to_wkt()
        if key not in self._in_crs:
            shapes = self.shapes
            if image_crs is not None:
                from rasterio.crs import CRS
                from rasterio.warp import transform_geom

                source = CRS.from_user_input(self.crs or "EPSG:4326")
                if source != image_crs:
                    geometries = transform_geom(source, image_crs, [geometry for geometry, _ in shapes])
                    shapes = [(geometry, class_id) for geometry, (_, class_id) in zip(geometries, shapes)]
            bounds = np.array([_bounds(geometry) for geometry, _ in shapes], dtype=np.float64).reshape(-1, 4)
            self._in_crs[key] = (shapes, bounds)
        return self._in_crs[key]


def _bounds(geometry: dict) -> Tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a GeoJSON geometry (any type, a collection's members included)."""
    def points(value) -> Iterator[Sequence[float]]:
        if value and isinstance(value[0], (int, float)):
            yield value
        else:
            for item in value:
                yield from points(item)

    parts = geometry.get("geometries") if geometry.get("type") == "GeometryCollection" else [geometry]
    coordinates = [point[:2] for part in parts for point in points(part.get("coordinates") or [])]
    if not coordinates:
        return (np.inf, np.inf, -np.inf, -np.inf)  # reaches no image
    array = np.asarray(coordinates, dtype=np.float64)
    return (*array.min(0), *array.max(0))


def _place(path: PathLike) -> tuple:
    """((height, width), transform, CRS or None) of the image at `path`, read with rasterio (which
    warns of an image without a georeference: its pixels are then the coordinates; GDAL reads a world
    file's place, and its CRS from an .aux.xml, not from ESRI's .prj: `sidecar_crs`)."""
    rasterio = _rasterio()
    with rasterio.open(user_path(path)) as image:
        place = (image.height, image.width), image.transform, image.crs
    if place[2] is None and world_file_of(path) is not None:
        declared = sidecar_crs(path)
        if declared is not None:
            place = (*place[:2], rasterio.crs.CRS.from_epsg(declared[0]))
    return place


def _class_id(value, names: dict) -> Optional[int]:
    """The class id a feature's property names: a class name, or an id (a number, or its digits) of
    one of the classes (any below 255 where no names are given); None for another value."""
    if isinstance(value, str):
        value = names.get(value, int(value) if value.strip().isdigit() else None)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < min(len(names) or 255, 255):
        return None
    return value


def _area(rings) -> float:
    """The area of a polygon given as GeoJSON rings (the outline, then its holes): the shoelace formula."""
    def ring_area(ring) -> float:
        points = np.asarray(ring, dtype=np.float64)
        x, y = points[:, 0], points[:, 1]
        return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2

    return ring_area(rings[0]) - sum(ring_area(hole) for hole in rings[1:])


def _ellipsoid_area(rings) -> float:
    """The area in square metres on the WGS 84 ellipsoid of a polygon of longitudes and latitudes given
    as GeoJSON rings: by Green's theorem, the sum over each ring's edges of the area from the equator
    to the edge's latitude times the longitude it spans (`ellipsoid_area_to`), exact for edges along
    parallels and meridians (a pixel's outline); the outline's less its holes'."""
    def ring_area(ring) -> float:
        points = np.asarray(ring, dtype=np.float64)
        spans = np.radians(np.diff(points[:, 0]))
        return abs(float(np.dot(ellipsoid_area_to(points[:-1, 1]), spans)))

    return ring_area(rings[0]) - sum(ring_area(hole) for hole in rings[1:])


def _rasterio():
    require("rasterio", "gis", "Polygons of label maps (--polygons)")
    import rasterio
    import rasterio.features  # noqa: F401  (the submodule, loaded for rasterio.features.shapes)

    return rasterio
