"""Label maps as GeoTIFFs that keep their image's place on the ground (`segnext predict --geotiff`).

A GeoTIFF says where its pixels lie in its TIFF tags (the GeoTIFF 1.1 standard): the model's pixel
scale and tie point, or a transformation matrix, and the coordinate reference system in the GeoKey
directory and its parameters. A label map predicted at the image's own size lies where the image
lies, so those tags are copied onto it as they are, and a GIS (QGIS, GDAL, rasterio) lays the
classes over the map. The label map is one band of class ids with the class colours as its palette
(as segnext's PNGs are), and 255 is declared "no data" where pixels were left unlabelled
(`--unsure-below`). Needs `tifffile`.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..utils import atomic_write, require, user_path
from .bands import TIFF_SUFFIXES

PathLike = Union[str, os.PathLike]

# The GeoTIFF tags: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams.
GEOREFERENCE_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
GDAL_NODATA = 42113  # GDAL's "no data" value tag (ASCII), read by every GDAL-based tool

# (code, tifffile data type, count, value) of one tag, as tifffile.imwrite's extratags take them.
Tag = Tuple[int, int, int, object]


def georeference(path: PathLike) -> Tuple[Tag, ...]:
    """The GeoTIFF tags of the image at `path` (empty for a file of another kind or a TIFF that
    carries none)."""
    path = user_path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return ()
    tifffile = require("tifffile", "tiff", "Georeferenced label maps (--geotiff)")
    try:
        with tifffile.TiffFile(path) as tiff:
            tags = tiff.pages[0].tags
            return tuple((tag.code, int(tag.dtype), 0 if isinstance(tag.value, str) else tag.count, tag.value)
                         for tag in tags.values() if tag.code in GEOREFERENCE_TAGS)
    except Exception:  # an unreadable TIFF is named by the reader that segments it, not here
        return ()


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
