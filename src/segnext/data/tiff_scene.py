"""A TIFF scene read a band of rows at a time, for scenes larger than memory.

Aerial and satellite scenes come as TIFFs (GeoTIFFs) stored in tiles or strips, each compressed on
its own. A `TiffScene` reads only the tiles or strips of the rows it is asked for, and decodes each
once while they are being read (the rows of the last request are kept, so overlapping sliding
windows do not decode them again): segmenting a scene in sliding windows at its own size then needs
about a window's height of its pixels, not all of them. The values are those `read_bands(path,
dtype=None)` gives, in the file's own type.

`open_tiff_scene` opens the layouts it can read so (one image of one or more samples per pixel,
tiled or stripped, interleaved or band by band, any compression tifffile decodes: JPEG, as
orthophotos are often stored (YCbCr), and LZW need `imagecodecs`), and gives None for others (a page
a band, more than one image), which are read whole;
`open_tiff_scene_as` only where the pixels are those a whole-image reader (bands, picture, label
map) gives. Needs `tifffile`. The file is opened again for each band of rows it reads: nothing stays open
between reads, and a `TiffScene` can be sent to DataLoader workers.
"""

from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..constants import TIFF_SUFFIXES
from ..utils import user_path
from .io import DataError, channels_error

PathLike = Union[str, os.PathLike]

JPEG_COMPRESSIONS = (6, 7, 33007, 34892)  # decoded with tables and a header kept apart from the segments
PLANAR_SEPARATE = 2  # PlanarConfiguration: each band's samples stored apart (as GDAL writes GeoTIFFs)
# A TIFF's colour models (values with 0 black, RGB, palette indices) and its Orientation tag
PHOTOMETRIC_BLACK_IS_ZERO, PHOTOMETRIC_RGB, PHOTOMETRIC_PALETTE, PHOTOMETRIC_YCBCR, ORIENTATION = 1, 2, 3, 6, 274


class TiffScene:
    """The pixels of a TIFF image (height, width, channels) in the file's type, read on demand:
    `scene[rows]`, `scene[rows, columns]` or `scene[rows, columns, channels]` with slices (rows of
    step 1) give a NumPy array of those pixels; `np.asarray(scene)` reads them all. Its channels are
    the file's samples, or those `with_samples` chose. One reader at a time: threads open a TiffScene
    each."""

    ndim = 3

    def __init__(self, path: PathLike, shape: Tuple[int, int, int], dtype: np.dtype, segment_rows: int,
                 segments_across: int, band_by_band: bool, photometric: int = 1, rgb: bool = False,
                 samples: Optional[Sequence[int]] = None):
        self._opened_as = dict(shape=shape, dtype=dtype, segment_rows=segment_rows, segments_across=segments_across,
                               band_by_band=band_by_band, photometric=photometric, rgb=rgb)  # what the file was
        self.samples = tuple(range(shape[2])) if samples is None else tuple(int(sample) for sample in samples)
        if not self.samples or len(set(self.samples)) < len(self.samples) or \
                not all(0 <= sample < shape[2] for sample in self.samples):
            raise ValueError(f"samples {self.samples} of a TIFF of {shape[2]} samples a pixel: give each once")
        self.path, self.shape, self.dtype = user_path(path), (shape[0], shape[1], len(self.samples)), np.dtype(dtype)
        self.photometric = photometric  # the TIFF's colour model: 1 values (0 black), 2 RGB, 3 palette indices
        # An upright 8-bit RGB picture: what `read_image` reads from the file (an alpha sample left out)
        self.rgb = rgb and self.samples == (0, 1, 2)
        self.segment_rows, self.segments_across, self.band_by_band = segment_rows, segments_across, band_by_band
        self._held_from, self._held = 0, np.empty((0, *self.shape[1:]), dtype=self.dtype)

    def with_samples(self, samples: Sequence[int]) -> TiffScene:
        """The same scene with only the file's `samples` (their indices in each pixel) as its channels,
        in that order: the colour of an RGBA picture, the bands beside an alpha band."""
        return TiffScene(self.path, **self._opened_as, samples=samples)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"TiffScene({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self._decode(0, self.shape[0])  # not kept: the whole scene is the caller's
        return array if dtype is None else array.astype(dtype, copy=False)

    def readable(self) -> bool:
        """Whether tifffile decodes the scene (its first rows, read now): a compression it lacks a codec
        for (LZW without imagecodecs) is found before any work, for a reader that has one (Pillow) to
        read the file whole instead."""
        try:
            self[:1]
        except DataError:
            return False
        return True

    def __getstate__(self) -> dict:  # the rows held are not sent to another process
        return {**self.__dict__, "_held_from": 0, "_held": self._held[:0]}

    def __getitem__(self, key) -> np.ndarray:
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) > 3 or not all(isinstance(part, slice) for part in keys):
            raise TypeError(f"a TiffScene is read by slices of rows, columns and channels, e.g. scene[0:512, "
                            f"0:512]; got {key!r}")
        start, stop, step = keys[0].indices(self.shape[0])
        if step != 1:
            raise TypeError(f"a TiffScene's rows are read top to bottom, step 1; got {keys[0]!r}")
        if stop <= start:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *keys[1:])]
        return self._rows(start, stop)[(slice(None), *keys[1:])]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop, from the rows held where they are, the tiles or strips missing decoded;
        the rows of whole segments asked for are held in their place."""
        first = start // self.segment_rows * self.segment_rows
        end = min(math.ceil(stop / self.segment_rows) * self.segment_rows, self.shape[0])
        held_to = self._held_from + len(self._held)
        if not (self._held_from <= first and end <= held_to):
            block = np.empty((end - first, *self.shape[1:]), dtype=self.dtype)
            kept_from, kept_to = max(first, self._held_from), min(end, held_to)
            if kept_from < kept_to:  # the rows of overlapping windows decoded once
                block[kept_from - first:kept_to - first] = self._held[kept_from - self._held_from:
                                                                      kept_to - self._held_from]
                missing = [(first, kept_from), (kept_to, end)]
            else:
                missing = [(first, end)]
            for top, bottom in missing:
                if top < bottom:
                    block[top - first:bottom - first] = self._decode(top, bottom)
            block.flags.writeable = False
            self._held_from, self._held = first, block
        return self._held[start - self._held_from:stop - self._held_from]

    def _decode(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop (whole segments but at the image's foot) decoded from the file."""
        import tifffile

        try:
            return self._decoded(tifffile, start, stop)
        except DataError:
            raise
        except Exception as error:  # tifffile's errors, a codec it lacks
            raise DataError(f"{self.path}: cannot read this TIFF file ({error}); re-export it") from None

    def _decoded(self, tifffile, start: int, stop: int) -> np.ndarray:
        height, width, channels = self.shape
        out = np.zeros((stop - start, width, channels), dtype=self.dtype)
        every_sample = self.samples == tuple(range(self._opened_as["shape"][2]))
        with tifffile.TiffFile(self.path) as tiff:
            page = tiff.pages[0]
            if _layout(tiff) != self._opened_as:
                raise DataError(f"{self.path}: the file has changed since it was read from (it held an image of "
                                f"{self._opened_as['shape']}); open it again with open_tiff_scene")
            offsets, counts = page.dataoffsets, page.databytecounts
            handle = tiff.filehandle
            # JPEG: the tables and header the segments share are kept apart from them (as tifffile's segments())
            tables = dict(jpegtables=page.jpegtables, jpegheader=page.jpegheader) \
                if page.compression in JPEG_COMPRESSIONS else {}
            for index in self._segments(start, stop):
                data = None
                if counts[index]:
                    handle.seek(offsets[index])
                    data = handle.read(counts[index])
                segment, (sample, _, top, left, _), _ = page.decode(data, index, **tables)
                if segment is None:  # a tile left out of the file: its pixels are 0, as tifffile fills them
                    continue
                rows, columns = min(segment.shape[1], height - top), min(segment.shape[2], width - left)
                pixels = segment[0, :rows, :columns]
                if self.band_by_band:  # one of the samples asked for (`_segments`)
                    out[top - start:top - start + rows, left:left + columns, self.samples.index(sample)] = \
                        pixels[:, :, 0]
                else:
                    out[top - start:top - start + rows, left:left + columns] = \
                        pixels if every_sample else pixels[:, :, self.samples]
        return out

    def _segments(self, start: int, stop: int) -> List[int]:
        """The indices of the tiles or strips of rows start..stop in the file's offsets."""
        down = math.ceil(self.shape[0] / self.segment_rows)
        planes = sorted(set(self.samples)) if self.band_by_band else [0]  # band by band: a plane a sample
        per_plane = down * self.segments_across
        rows = range(start // self.segment_rows, math.ceil(stop / self.segment_rows))
        return [plane * per_plane + row * self.segments_across + column
                for plane in planes for row in rows for column in range(self.segments_across)]


def open_tiff_scene(path: PathLike, channels: Optional[int] = None) -> Optional[TiffScene]:
    """The TIFF at `path` as a `TiffScene` read a band of rows at a time, or None where it is not a
    TIFF of a layout read so (see the module) or tifffile is not installed. channels: the model's
    input channels, checked as `read_bands` checks them."""
    path = user_path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(path) as tiff:
            layout = _layout(tiff)
    except Exception:  # a file tifffile cannot open is named by the reader that reads it whole
        return None
    if layout is None:
        return None
    scene = TiffScene(path, **layout)
    if channels is not None and scene.shape[2] != channels:
        raise DataError(channels_error(str(path), scene.shape, channels))
    return scene


READERS = ("bands", "picture", "label")


def open_tiff_scene_as(path: PathLike, reader: str, channels: Optional[int] = None) -> Optional[TiffScene]:
    """The TIFF at `path` as a `TiffScene` whose pixels are those a whole-image reader gives of it, or
    None where they would differ or it is not read in bands of rows (then that reader reads it):
    - "bands": `read_bands(path, channels, dtype=None)`'s (channels checked as it checks them);
    - "picture": `read_image`'s, for an upright 8-bit RGB TIFF (its colour, where a fourth sample such
      as alpha is beside it);
    - "label": `read_label`'s, for one 8-bit band of values or palette indices.
    A picture's or a label's first rows are decoded now: a compression tifffile has no codec for
    (LZW without imagecodecs), which Pillow may read, gives None."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}; got {reader!r}")
    scene = open_tiff_scene(path, channels if reader == "bands" else None)
    if scene is None or reader == "bands":
        return scene
    if reader == "picture":
        scene = scene.with_samples((0, 1, 2)) if scene.shape[2] == 4 else scene  # RGBA: Pillow drops the alpha
        wanted = scene.rgb
    else:
        wanted = scene.shape[2] == 1 and scene.dtype == np.uint8 and scene.photometric in (PHOTOMETRIC_BLACK_IS_ZERO,
                                                                                          PHOTOMETRIC_PALETTE)
    return scene if wanted and scene.readable() else None


def _layout(tiff) -> Optional[dict]:
    """TiffScene's arguments for the file's image, or None where it is not one read in bands of rows."""
    series = tiff.series[0] if tiff.series else None
    page = tiff.pages[0]
    if series is None or len(series.pages) != 1 or series.pages[0].offset != page.offset:
        return None  # one image (reduced resolutions aside), the first page: not a page a band
    if page.dtype is None or page.dtype.kind not in "uif" or page.bitspersample not in (8, 16, 32, 64):
        return None  # numbers of whole bytes: not complex, not bits
    if page.imagedepth != 1 or series.axes not in ("YX", "YXS", "SYX") or \
            page.photometric == PHOTOMETRIC_YCBCR and page.compression not in JPEG_COMPRESSIONS:  # subsampled
        return None
    height, width, samples = page.imagelength, page.imagewidth, page.samplesperpixel
    band_by_band = samples > 1 and page.planarconfig == PLANAR_SEPARATE
    if page.is_tiled:
        segment_rows, across = page.tilelength, math.ceil(width / page.tilewidth)
    else:
        segment_rows, across = min(page.rowsperstrip or height, height), 1
    expected = (samples if band_by_band else 1) * math.ceil(height / segment_rows) * across
    if height * width == 0 or len(page.dataoffsets) != expected:
        return None
    orientation = page.tags.get(ORIENTATION)
    # RGB (JPEG's YCbCr decoded to it), or RGBA (RGBX) read as RGB
    colour = page.photometric == PHOTOMETRIC_RGB or page.photometric == PHOTOMETRIC_YCBCR and \
        page.compression in JPEG_COMPRESSIONS
    rgb = page.dtype == np.uint8 and samples in (3, 4) and colour and (orientation is None or orientation.value == 1)
    return dict(shape=(height, width, samples), dtype=page.dtype, segment_rows=segment_rows,
                segments_across=across, band_by_band=band_by_band, photometric=int(page.photometric), rgb=bool(rgb))

