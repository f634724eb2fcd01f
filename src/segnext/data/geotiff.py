"""Label maps and tiles as GeoTIFFs that keep their image's place on the ground (`segnext predict
--geotiff`, `segnext data tile`).

A GeoTIFF says where its pixels lie in its TIFF tags (the GeoTIFF 1.1 standard): the model's pixel
scale and tie point, or a transformation matrix, and the coordinate reference system in the GeoKey
directory and its parameters. A label map predicted at the image's own size lies where the image
lies, so those tags are copied onto it as they are, and a GIS (QGIS, GDAL, rasterio) lays the
classes over the map. The label map is one band of class ids with the class colours as its palette
(as segnext's PNGs are), and 255 is declared "no data" where pixels were left unlabelled
(`--unsure-below`) or where the image itself holds no data (`no_data_of`: its mask, its "no data" value
in every band, or its alpha band at 0, as GDAL chooses). The class probabilities and the confidence of a scene are
GeoTIFFs of float bands in the same place, each band named (GDAL's band description: the class
names), written a band of rows at a time. A tile cut from a scene gets the scene's tags with its
raster moved (`tile_georeference`), so tiles and their label maps lie where they were cut from and
mosaic back (`gdalbuildvrt`). `pixel_ground_area` reads a pixel's area on the ground from the
georeference (`--class-areas` in square metres). Needs `tifffile`.

An image of another kind (a JPEG or PNG orthophoto, a TIFF without GeoTIFF tags) lies where its
world file says, as GDAL reads it (`scene.jgw`, `scene.jpgw` or `scene.wld` beside `scene.jpg`: six
numbers, the pixel's size and rotation and the centre of the top left pixel), in the coordinate
system of GDAL's `scene.jpg.aux.xml` or ESRI's `scene.prj` beside it where one names an EPSG code;
`georeference` gives it as the GeoTIFF tags of the same place, so its label maps are GeoTIFFs too.
"""

from __future__ import annotations

import os
import re
from importlib.util import find_spec
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple, Union
from xml.sax.saxutils import escape, unescape

import numpy as np

from ..constants import TIFF_SUFFIXES
from ..utils import atomic_write, require, user_path
from .bands import read_bands, row_bands
from .io import DataError
from .tiff_scene import TiffScene, open_tiff_scene

PathLike = Union[str, os.PathLike]

# The GeoTIFF tags: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams.
GEOREFERENCE_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
MODEL_PIXEL_SCALE, MODEL_TIEPOINT, MODEL_TRANSFORMATION = 33550, 33922, 34264
GDAL_NODATA = 42113  # GDAL's "no data" value tag (ASCII), read by every GDAL-based tool
GDAL_METADATA = 42112  # GDAL's metadata tag (XML): the names of the bands
# A mask of the image in the same file (GDAL_TIFF_INTERNAL_MASK): NewSubfileType "transparency mask"
# (not "reduced resolution"), PhotometricInterpretation "transparency mask"
FILETYPE_REDUCED, FILETYPE_MASK, PHOTOMETRIC_MASK = 1, 4, 4
ALPHA_EXTRA_SAMPLES = (1, 2)  # ExtraSamples: associated, unassociated alpha
MASK_SUFFIX = ".msk"  # GDAL's mask beside an image: scene.tif.msk
TILE = 256  # a tile's rows and columns, GDAL's default for tiled GeoTIFFs
# Images of more bytes are written as BigTIFF (64-bit offsets; GDAL and QGIS read it), as tifffile
# decides for an array; it cannot tell the size of tiles given by an iterator.
BIGTIFF_ABOVE = 2**32 - 2**25

# (code, tifffile data type, count, value) of one tag, as tifffile.imwrite's extratags take them.
Tag = Tuple[int, int, int, object]


def georeference(path: PathLike) -> Tuple[Tag, ...]:
    """The GeoTIFF tags of the image at `path`, else those of its world file's place
    (`world_file_georeference`); empty where it carries neither."""
    path = user_path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return world_file_georeference(path)
    tifffile = require("tifffile", "tiff", "Georeferenced label maps (--geotiff)")
    try:
        with tifffile.TiffFile(path) as tiff:
            tags = tiff.pages[0].tags
            found = tuple((tag.code, int(tag.dtype), 0 if isinstance(tag.value, str) else tag.count, tag.value)
                          for tag in tags.values() if tag.code in GEOREFERENCE_TAGS)
    except Exception:  # an unreadable TIFF is named by the reader that segments it, not here
        return ()
    return found or world_file_georeference(path)


# GeoKeys (GeoTIFF 1.1): the model type (projected, geographic), the raster type (a pixel is an area)
# and the EPSG code of a projected or a geographic coordinate system.
GT_MODEL_TYPE, GT_RASTER_TYPE, GEOGRAPHIC_TYPE, PROJECTED_CS_TYPE = 1024, 1025, 2048, 3072
PIXEL_IS_AREA = 1
GEO_KEY_DIRECTORY = 34735
TIFF_SHORT, TIFF_DOUBLE = 3, 12  # the TIFF data types of the tags written


def world_file_of(path: PathLike) -> Optional[Path]:
    """The world file beside the image at `path`, by GDAL's names: `scene.jgw` (the suffix's first and
    last letters and "w"), `scene.jpgw` (the suffix and "w"), `scene.wld`, in lower or upper case;
    None where there is none."""
    path = user_path(path)
    suffix = path.suffix[1:]
    if not suffix:
        return None
    for ending in (suffix[0] + suffix[-1] + "w", suffix + "w", "wld"):
        for candidate in (path.with_suffix(f".{ending.lower()}"), path.with_suffix(f".{ending.upper()}")):
            if candidate.is_file():
                return candidate
    return None


def read_world_file(path: PathLike) -> Tuple[float, float, float, float, float, float]:
    """The six numbers of a world file, in its order: the pixel's width in map units, the rotations of
    the rows and of the columns, the pixel's height (negative: rows go south), and the map x and y of
    the centre of the top left pixel. Raises `DataError` naming the file where it holds other than
    six numbers or a pixel of no area."""
    path = user_path(path)
    words = path.read_text(errors="replace").split()
    try:
        numbers = tuple(float(word) for word in words)
    except ValueError:
        numbers = ()
    if len(numbers) != 6 or not all(np.isfinite(numbers)):
        raise DataError(f"{path}: a world file holds six numbers, one a line (pixel width, row rotation, column "
                        f"rotation, pixel height, x and y of the top left pixel's centre); found {len(words)} "
                        f"word(s): {' '.join(words[:8])[:80]!r}. Rewrite it (gdal_translate -co TFW=YES) or remove it")
    width, row_rotation, column_rotation, height, _, _ = numbers
    if width * height - row_rotation * column_rotation == 0:
        raise DataError(f"{path}: this world file's pixels have no area (width {width:g}, height {height:g}, "
                        f"rotations {row_rotation:g}, {column_rotation:g}); rewrite it or remove it")
    return numbers  # type: ignore[return-value]


def sidecar_crs(path: PathLike) -> Optional[Tuple[int, bool]]:
    """(EPSG code, whether projected) of the coordinate system declared beside the image at `path`:
    in GDAL's `scene.jpg.aux.xml` (its SRS) or ESRI's `scene.prj` (WKT). None where neither names an
    EPSG code: the WKT's own outermost AUTHORITY or ID, else, with rasterio (`segnext[gis]`), as GDAL
    identifies ESRI's WKT (`WGS_1984_UTM_Zone_33N`)."""
    path = user_path(path)
    for sidecar in (path.with_name(path.name + ".aux.xml"), path.with_suffix(".prj")):
        if not sidecar.is_file():
            continue
        text = sidecar.read_text(errors="replace")
        if sidecar.suffix == ".xml":
            found = re.search(r"<SRS[^>]*>(.*?)</SRS>", text, re.DOTALL)
            if found is None:
                continue
            text = unescape(found.group(1), {"&quot;": '"', "&apos;": "'"})
        crs = _epsg_of_wkt(text.strip())
        if crs is not None:
            return crs
    return None


def _epsg_of_wkt(wkt: str) -> Optional[Tuple[int, bool]]:
    """(EPSG code, projected) of a WKT 1 or 2 text: its own outermost AUTHORITY or ID, else (ESRI's WKT,
    which names none) as GDAL identifies it where rasterio is installed."""
    found = re.search(r'(?:AUTHORITY\["EPSG",\s*"?|ID\["EPSG",\s*)(\d+)"?\]\s*\]\s*$', wkt)
    if found is not None:
        return int(found.group(1)), wkt.upper().startswith(("PROJCS", "PROJCRS", "PROJECTEDCRS"))
    if find_spec("rasterio") is None:
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        crs = CRS.from_wkt(wkt)
    except CRSError:
        return None
    code = crs.to_epsg()
    return None if code is None else (int(code), bool(crs.is_projected))


def world_file_georeference(path: PathLike) -> Tuple[Tag, ...]:
    """The GeoTIFF tags of the place the world file beside the image at `path` gives it (empty where
    it has none): a pixel scale and tie point, or a transformation where the pixels are rotated, and
    the coordinate system of `sidecar_crs` where one is declared (else none, as GDAL reads the image)."""
    keys = _world_file_keys(path)
    if keys is None:
        return ()
    matrix = keys["ModelTransformation"]
    if matrix[1] == 0 and matrix[4] == 0:
        tags = [(MODEL_PIXEL_SCALE, TIFF_DOUBLE, 3, (matrix[0], -matrix[5], 0.0)),
                (MODEL_TIEPOINT, TIFF_DOUBLE, 6, (0.0, 0.0, 0.0, matrix[3], matrix[7], 0.0))]
    else:
        tags = [(MODEL_TRANSFORMATION, TIFF_DOUBLE, 16, tuple(matrix))]
    codes = {"GTModelTypeGeoKey": GT_MODEL_TYPE, "GTRasterTypeGeoKey": GT_RASTER_TYPE,
             "GeographicTypeGeoKey": GEOGRAPHIC_TYPE, "ProjectedCSTypeGeoKey": PROJECTED_CS_TYPE}
    geo_keys = sorted((codes[name], 0, 1, value) for name, value in keys.items() if name in codes)  # by code
    directory = (1, 1, 0, len(geo_keys), *(number for key in geo_keys for number in key))
    tags.append((GEO_KEY_DIRECTORY, TIFF_SHORT, len(directory), directory))
    return tuple(tags)


def _world_file_keys(path: PathLike) -> Optional[dict]:
    """The place the world file beside the image at `path` gives it, by the names tifffile gives a
    GeoTIFF's keys: its transformation (to the top left pixel's corner; a world file names its
    centre), a pixel an area, and the coordinate system of `sidecar_crs`; None without a world file."""
    world_file = world_file_of(path)
    if world_file is None:
        return None
    width, row_rotation, column_rotation, height, centre_x, centre_y = read_world_file(world_file)
    corner_x = centre_x - width / 2 - column_rotation / 2
    corner_y = centre_y - row_rotation / 2 - height / 2
    keys = {"ModelTransformation": [width, column_rotation, 0.0, corner_x, row_rotation, height, 0.0, corner_y,
                                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            "GTRasterTypeGeoKey": PIXEL_IS_AREA}
    crs = sidecar_crs(path)
    if crs is not None:
        code, projected = crs
        keys["GTModelTypeGeoKey"] = PROJECTED_MODEL if projected else GEOGRAPHIC_MODEL
        keys["ProjectedCSTypeGeoKey" if projected else "GeographicTypeGeoKey"] = code
    return keys


# ProjLinearUnitsGeoKey's units (EPSG's unit codes) in metres: metre, foot, US survey foot, kilometre
LINEAR_UNIT_METRES = {9001: 1.0, 9002: 0.3048, 9003: 1200 / 3937, 9036: 1000.0}
# Mercator's "metres" grow with the latitude (Web Mercator's areas at 60 degrees are 4 times the ground's)
MERCATOR_CRS = {3395, 3785, 3857, 900913}
PROJECTED_MODEL, GEOGRAPHIC_MODEL = 1, 2  # GTModelTypeGeoKey: map coordinates, longitude and latitude


def pixel_ground_area(path: PathLike) -> Optional[float]:
    """The ground area of one pixel of the GeoTIFF at `path` in square metres: its pixel scale's (or
    transformation's) in a projected coordinate system of metres or feet, as GDAL writes them (the unit
    named in its GeoKeys, or a UTM zone's). None where it is not known (no GeoTIFF, longitude and
    latitude, another unit, control points) or would be wrong (Mercator's metres grow with the
    latitude)."""
    keys = _geo_keys(user_path(path))
    if keys is None:
        return None
    model, crs = keys.get("GTModelTypeGeoKey"), int(keys.get("ProjectedCSTypeGeoKey") or 0)
    if model == GEOGRAPHIC_MODEL or crs in MERCATOR_CRS or not (crs or model == PROJECTED_MODEL):
        return None
    unit = keys.get("ProjLinearUnitsGeoKey")
    utm = 32601 <= crs <= 32660 or 32701 <= crs <= 32760 or 25828 <= crs <= 25838  # WGS 84, ETRS89
    metres = LINEAR_UNIT_METRES.get(int(unit)) if unit is not None else (1.0 if utm else None)
    if metres is None:
        return None
    matrix = keys.get("ModelTransformation")
    if matrix is not None:
        matrix = np.asarray(matrix, dtype=np.float64).reshape(-1)
        area = abs(matrix[0] * matrix[5] - matrix[1] * matrix[4])
    elif keys.get("ModelPixelScale") is not None and np.size(keys.get("ModelTiepoint", ())) <= 6:  # one point
        scale = keys["ModelPixelScale"]
        area = abs(float(scale[0]) * float(scale[1]))
    else:
        return None
    return area * metres ** 2 if area > 0 else None


# Geographic coordinate systems on the WGS 84 or the GRS 1980 ellipsoid (whose areas differ by less than
# a part in 10^9): WGS 84, ETRS89, NAD83, GDA94, GDA2020, NAD83(CSRS), NZGD2000, SIRGAS 2000
ELLIPSOIDAL_CRS = {4326, 4258, 4269, 4283, 7844, 4617, 4167, 4674}
WGS84_AXIS, WGS84_FLATTENING = 6378137.0, 1 / 298.257223563
DEGREE = 9102  # GeogAngularUnitsGeoKey's degree (the default)


def row_ground_areas(path: PathLike, height: int) -> Optional[np.ndarray]:
    """The ground area in square metres of a pixel of each of the `height` rows of the image at `path`:
    all `pixel_ground_area` in projected metres or feet; in longitude and latitude (degrees on the WGS
    84 or GRS 1980 ellipsoid), each row's own, smaller towards the poles: the exact area of the
    ellipsoid between the row's edges (`ellipsoid_area_to`). None where it is not known (no
    georeference, another datum or unit, rotated longitude and latitude)."""
    area = pixel_ground_area(path)
    if area is not None:
        return np.full(height, area)
    grid = _degree_grid(_geo_keys(user_path(path)))
    if grid is None:
        return None
    degrees_across, degrees_down, top = grid
    edges = np.clip(top - degrees_down * np.arange(height + 1), -90.0, 90.0)
    return np.abs(np.diff(ellipsoid_area_to(edges))) * abs(np.radians(degrees_across))


def in_ellipsoid_degrees(path: PathLike) -> bool:
    """Whether the image at `path` lies in longitude and latitude, degrees on the WGS 84 or GRS 1980
    ellipsoid, on a grid of meridians and parallels (whose areas `ellipsoid_area_to` gives)."""
    return _degree_grid(_geo_keys(user_path(path))) is not None


def ellipsoid_area_to(latitudes) -> np.ndarray:
    """The area in square metres of the WGS 84 ellipsoid (GRS 1980's differs by less than a part in
    10^9) from the equator to each of `latitudes` (degrees; negative south), for one radian of
    longitude: b^2 / 2 x q(latitude), q as Lambert's authalic latitude has it (Snyder, "Map
    Projections: A Working Manual", eq. 3-12). The area between two parallels over a span of
    longitude is the difference times the span."""
    eccentricity = np.sqrt(WGS84_FLATTENING * (2 - WGS84_FLATTENING))
    sine = np.sin(np.radians(np.asarray(latitudes, dtype=np.float64)))
    q = sine / (1 - (eccentricity * sine) ** 2) + np.arctanh(eccentricity * sine) / eccentricity
    return WGS84_AXIS ** 2 * (1 - eccentricity ** 2) / 2 * q


def _degree_grid(keys: Optional[dict]) -> Optional[Tuple[float, float, float]]:
    """(degrees of longitude a pixel spans, degrees of latitude a row spans, the latitude of the top
    edge) of an image in degrees on the WGS 84 or GRS 1980 ellipsoid, unrotated; None otherwise."""
    if keys is None or keys.get("GTModelTypeGeoKey") != GEOGRAPHIC_MODEL:
        return None
    unit = keys.get("GeogAngularUnitsGeoKey")
    if int(keys.get("GeographicTypeGeoKey") or 0) not in ELLIPSOIDAL_CRS or (unit is not None and int(unit) != DEGREE):
        return None
    matrix = keys.get("ModelTransformation")
    if matrix is not None:
        matrix = np.asarray(matrix, dtype=np.float64).reshape(-1)
        if matrix[1] or matrix[4]:
            return None
        return float(matrix[0]), float(-matrix[5]), float(matrix[7])
    if keys.get("ModelPixelScale") is not None and np.size(keys.get("ModelTiepoint", ())) == 6:
        degrees_across, degrees_down = (float(value) for value in keys["ModelPixelScale"][:2])
        _, tie_row, _, _, tie_latitude, _ = (float(value) for value in keys["ModelTiepoint"])
        return degrees_across, degrees_down, tie_latitude + tie_row * degrees_down
    return None


def _geo_keys(path: Path) -> Optional[dict]:
    """The GeoKeys and model tags of the image's georeference by name, as tifffile decodes a
    GeoTIFF's; of its world file's place where it carries none; None where it has neither."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        tifffile = require("tifffile", "tiff", "The ground areas of GeoTIFFs")
        try:
            with tifffile.TiffFile(path) as tiff:
                keys = tiff.pages[0].geotiff_tags
        except Exception:  # an unreadable TIFF is named by the reader that segments it, not here
            return None
        if keys:
            return keys
    return _world_file_keys(path)


def nodata_value(path: PathLike) -> Optional[float]:
    """The value the TIFF at `path` declares "no data" (GDAL's tag: the pixels outside a satellite
    scene's footprint, an orthomosaic's borders), or None for a file of another kind, a TIFF that
    declares none or one whose value is not a number."""
    path = user_path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    tifffile = require("tifffile", "tiff", "The no-data value of GeoTIFFs")
    try:
        with tifffile.TiffFile(path) as tiff:
            tag = tiff.pages[0].tags.get(GDAL_NODATA)
            text = tag.value if tag is not None else None
    except Exception:  # an unreadable TIFF is named by the reader that segments it, not here
        return None
    try:
        return float(str(text).strip().strip("\x00")) if text is not None else None
    except ValueError:
        return None


def no_data_where(path: PathLike, bands: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """`no_data_of(path, bands)` where the image holds some no data; None where it holds data
    everywhere, is no TIFF, or tifffile is not installed (what a dataset tool asks before it treats no
    data)."""
    if find_spec("tifffile") is None:
        return None
    mask = no_data_of(path, bands)
    return mask if mask is not None and mask.any() else None


def no_data_of(path: PathLike, bands: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """Where the TIFF at `path` holds no data, as GDAL chooses a dataset's mask (what QGIS leaves
    transparent, `gdalwarp` and rasterio's `dataset_mask` follow): its mask where it has one (in the
    file, GDAL_TIFF_INTERNAL_MASK, or a `.msk` file beside it; 0 no data), else where every band holds
    its "no data" value (`nodata_value`), else where its alpha band (the second of two bands, the
    fourth of four: grey or RGB with alpha) is 0. A bool array (H, W), or None where the file has none
    of them or is no TIFF. Its bands are read a band of rows at a time where they are needed, unless
    the caller holds them: `bands`, all the file's samples (H, W, C) as `read_bands` reads them.
    Raises `DataError` naming the file where they cannot be read."""
    path = user_path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    tifffile = require("tifffile", "tiff", "The no-data pixels of GeoTIFFs")
    try:
        with tifffile.TiffFile(path) as tiff:
            first = tiff.pages[0]
            size, samples = (first.imagelength, first.imagewidth), first.samplesperpixel
            alpha = samples in (2, 4) and tuple(first.extrasamples or ())[-1:] in [(kind,) for kind in
                                                                                    ALPHA_EXTRA_SAMPLES]
            masks = [page for page in tiff.pages[1:] if page.subfiletype & FILETYPE_MASK and page.photometric ==
                     PHOTOMETRIC_MASK and not page.subfiletype & FILETYPE_REDUCED and page.shape[:2] == size]
            valid = masks[0].asarray() if masks else None
    except Exception as error:  # tifffile's errors: a damaged file
        raise DataError(f"{path}: cannot read this TIFF file ({error}); re-export it") from None
    outside = path.with_name(path.name + MASK_SUFFIX)
    if valid is None and outside.is_file():
        try:
            valid = tifffile.imread(outside, key=0)
        except Exception as error:
            raise DataError(f"{outside}: cannot read this mask ({error}); make it again (gdal_translate -mask) or "
                            f"remove it") from None
        valid = valid[..., 0] if valid.ndim == 3 else valid  # a mask per band: the first band's
    if valid is not None:
        if valid.shape != size:
            raise DataError(f"{outside if not masks else path}: a mask of shape {valid.shape} for an image of "
                            f"{size[0]} rows and {size[1]} columns; make it again (gdal_translate -mask) or remove it")
        return valid == 0
    nodata = nodata_value(path)
    if nodata is None and not alpha:
        return None
    image = bands if bands is not None else open_tiff_scene(path) or read_bands(path, dtype=None)
    if nodata is not None:
        return no_data_mask(image, nodata)
    return no_data_mask(image.with_samples((samples - 1,)) if isinstance(image, TiffScene) else image[..., -1:], 0)


def no_data_mask(image, nodata: float) -> np.ndarray:
    """Where every band of `image` (an array (H, W, C) or (H, W), or a `TiffScene`) holds `nodata` (NaN
    where it is NaN), as GDAL masks a dataset of one "no data" value, compared in the bands' float type
    (a float32 band's 0.1 is float32's 0.1): a bool array (H, W), made a band of rows at a time."""
    mask = np.empty(image.shape[:2], dtype=bool)
    for rows in row_bands(*image.shape[:2]):
        values = np.asarray(image[rows])
        value = values.dtype.type(nodata) if np.issubdtype(values.dtype, np.floating) else nodata
        missing = np.isnan(values) if np.isnan(nodata) else values == value
        mask[rows] = missing.all(2) if missing.ndim == 3 else missing
    return mask


def tile_georeference(tags: Sequence[Tag], y: int, x: int) -> Tuple[Tag, ...]:
    """The georeference of the part of an image whose top left pixel is (`y`, `x`), from the image's
    GeoTIFF `tags`: the same place on the ground, the raster moved. A single tie point with a pixel
    scale is moved to the part's pixel (0, 0) (as GDAL writes them); several tie points (control
    points) keep their ground coordinates at their pixels shifted by (x, y); a transformation matrix
    gets its translation moved. The coordinate system's tags are kept as they are."""
    codes = {code for code, *_ in tags}
    moved = []
    for code, dtype, count, value in tags:
        if code == MODEL_TIEPOINT:
            points = [list(map(float, value[start:start + 6])) for start in range(0, len(value), 6)]
            if len(points) == 1 and MODEL_PIXEL_SCALE in codes:
                scale_x, scale_y = next(tag[3] for tag in tags if tag[0] == MODEL_PIXEL_SCALE)[:2]
                column, row, _, ground_x, ground_y, _ = points[0]
                # rows go down the image and north (+Y) up the map: GeoTIFF's pixel scale is positive
                points = [[0.0, 0.0, points[0][2], ground_x + (x - column) * scale_x,
                           ground_y - (y - row) * scale_y, points[0][5]]]
            else:
                points = [[column - x, row - y, *rest] for column, row, *rest in points]
            value = tuple(number for point in points for number in point)
        elif code == MODEL_TRANSFORMATION:
            matrix = [float(number) for number in value]  # 4x4, row by row: model = M @ (column, row, 0, 1)
            for axis in range(3):
                matrix[4 * axis + 3] += matrix[4 * axis] * x + matrix[4 * axis + 1] * y
            value = tuple(matrix)
        moved.append((code, dtype, count, value))
    return tuple(moved)


def write_image_geotiff(path: PathLike, image: np.ndarray, tags: Sequence[Tag] = (), alpha: bool = False) -> None:
    """Write an image (H, W, C) of any number type as a losslessly compressed TIFF with the GeoTIFF
    `tags`, atomically: RGB for three 8-bit channels, else its bands interleaved (as `read_bands`
    reads them back). alpha: the image is 8-bit RGBA, its fourth channel the alpha band (0 where it
    holds no data, as GDAL writes an orthophoto with `-dstalpha`)."""
    tifffile = require("tifffile", "tiff", "Georeferenced tiles")
    image = np.ascontiguousarray(image)
    if alpha and not (image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8):
        raise ValueError(f"an alpha band is written with 8-bit RGBA, not {image.dtype} of shape {image.shape}")
    rgb = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    options = (dict(photometric="rgb") if rgb else dict(photometric="rgb", extrasamples=["unassalpha"]) if alpha
               else dict(photometric="minisblack", planarconfig="contig"))
    extratags = [(code, dtype, count, value, True) for code, dtype, count, value in tags]
    atomic_write(path, lambda temporary: tifffile.imwrite(temporary, image, compression="zlib", extratags=extratags,
                                                          **options))


def write_bands_geotiff(path: PathLike, bands: Iterable[np.ndarray], shape: Tuple[int, int, int], dtype,
                        tags: Sequence[Tag] = (), band_names: Sequence[str] = (),
                        nodata: Optional[float] = None) -> None:
    """Write an image of float (or integer) bands given as bands of rows, (bands, rows, W) arrays top
    to bottom (`ClassProbabilities.bands()`), as a tiled TIFF of `shape` (bands, H, W)
    and `dtype`, with the GeoTIFF `tags`, each band named after `band_names` and GDAL's `nodata` value
    declared when given (NaN for float bands), atomically. Only a row of tiles is held at a time: a
    scene's probabilities are never all in memory here."""
    tifffile = require("tifffile", "tiff", "Georeferenced class probabilities (--geotiff)")
    count, height, width = shape
    if band_names and len(band_names) != count:
        raise ValueError(f"{len(band_names)} band names for {count} bands")
    extratags = [(code, kind, number, value, True) for code, kind, number, value in tags]
    if band_names:  # escaped twice and UTF-8, as GDAL writes them (it unescapes the text of an item again)
        items = "".join(f'<Item name="DESCRIPTION" sample="{index}" role="description">{escape(escape(str(name)))}'
                        f'</Item>' for index, name in enumerate(band_names))
        extratags.append((GDAL_METADATA, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>".encode(), True))
    if nodata is not None:
        extratags.append((GDAL_NODATA, "s", 0, "nan" if np.isnan(nodata) else f"{nodata:g}", True))
    layout = dict(shape=(height, width, count), planarconfig="contig") if count > 1 else dict(shape=(height, width))
    # Uncompressed: zlib makes float probabilities little smaller, at many times the time (BENCHMARKS.md).
    options = dict(dtype=dtype, tile=(TILE, TILE), photometric="minisblack", extratags=extratags, **layout)
    size = count * height * width * np.dtype(dtype).itemsize
    try:
        atomic_write(path, lambda temporary: tifffile.imwrite(temporary, _tiles(bands, shape, dtype),
                                                              bigtiff=size > BIGTIFF_ABOVE, **options), size=size)
    except ValueError as error:  # bands that do not make the image: named with the file they were for
        raise ValueError(f"{path}: {error}") from error


def _tiles(bands: Iterable[np.ndarray], shape: Tuple[int, int, int], dtype) -> Iterator[np.ndarray]:
    """The tiles (rows, columns, bands) of an image given as bands of rows, row of tiles by row of
    tiles, left to right (the order of a tiled TIFF with its samples interleaved); the edge tiles
    as they are (tifffile pads them)."""
    count, height, width = shape
    held: list = []  # the rows received and not yet in tiles, (rows, W, bands) each
    received = given = 0
    for band in bands:
        if band.ndim != 3 or band.shape[0] != count or band.shape[2] != width or received + band.shape[1] > height:
            raise ValueError(f"a band of shape {tuple(band.shape)} below {received} rows of an image of shape {shape}")
        held.append(np.asarray(band, dtype=dtype).transpose(1, 2, 0))
        received += band.shape[1]
        while received - given >= TILE or (received == height and received > given):
            block = np.concatenate(held) if len(held) > 1 else held[0]
            for left in range(0, width, TILE):
                tile = block[:TILE, left:left + TILE]
                yield np.ascontiguousarray(tile if count > 1 else tile[:, :, 0])  # one band: (rows, columns)
            given += min(TILE, len(block))
            held = [block[TILE:]] if len(block) > TILE else []
    if received != height:
        raise ValueError(f"bands of {received} rows for an image of shape {shape}")


def write_label_geotiff(path: PathLike, labels: np.ndarray, palette: Optional[Sequence[Sequence[int]]] = None,
                        tags: Sequence[Tag] = (), nodata: Optional[int] = None) -> None:
    """Write a label map of class ids as a TIFF, atomically: 8-bit with the class colours as its
    palette (up to 256 classes; 16-bit grey above), the GeoTIFF `tags` of its image, and GDAL's
    `nodata` value when given."""
    tifffile = require("tifffile", "tiff", "Georeferenced label maps (--geotiff)")
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label map must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    wide = labels.size and int(labels.max()) > 255
    options = dict(photometric="minisblack")
    if not wide and palette:
        colours = np.zeros((3, 256), dtype=np.uint16)
        table = np.asarray([list(colour)[:3] for colour in list(palette)[:256]], dtype=np.uint16)
        colours[:, :len(table)] = table.T * 257  # TIFF palettes hold 16-bit levels
        options = dict(photometric="palette", colormap=colours)
    extratags = [(code, dtype, count, value, True) for code, dtype, count, value in tags]
    if nodata is not None:
        extratags.append((GDAL_NODATA, "s", 0, str(int(nodata)), True))
    data = np.ascontiguousarray(labels, dtype=np.uint16 if wide else np.uint8)
    atomic_write(path, lambda temporary: tifffile.imwrite(temporary, data, compression="zlib", extratags=extratags,
                                                          **options))
