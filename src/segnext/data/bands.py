"""Images of other channels than RGB (near infrared, elevation, multispectral bands) for models of
other input channels (`SegNeXtConfig.in_channels`).

`read_bands` reads one such image as float32 (H, W, C) in the units of its file, the units the
normalisation's mean and std (one value per channel) are given in:
- `.npy`: a NumPy array (H, W, C), or (H, W) for one channel, of any integer, float or bool type
  (read without pickle);
- `.tif` / `.tiff`: any number of bands with `tifffile` (`pip install tifffile`), bands last, first
  (as GDAL writes planar GeoTIFFs) or a page a band; without it Pillow reads those of up to four;
- any other image file Pillow reads, with its own bands (L: 1, LA: 2, RGB: 3, RGBA / CMYK: 4;
  16-bit greyscale keeps all its 16 bits, and so does 16-bit colour PNG, read with OpenCV), the
  EXIF orientation applied.
The number of channels is checked: a file of other channels than the model's raises `DataError`
naming it. `decode_bands` reads the bytes of such a file (an upload to a web service), its kind told
by its first bytes, refusing one of too many pixels before decoding it.

`channel_statistics` gives the mean and standard deviation of each channel over a dataset's images:
the normalisation (data.mean, data.std) of a model trained on them.

`display_rgb` makes an 8-bit RGB picture of such an image for overlays and report pictures, as GIS
viewers do: the first three bands (or the first alone, as grey, for one or two) each stretched from
its 2nd to its 98th percentile.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, List, Optional, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps

from ..constants import ARRAY_SUFFIXES, TIFF_SUFFIXES
from ..utils import user_path
from .io import TIFF_SIGNATURES, DataError, channels_error, read_image
from .tiff_scene import TiffScene

PathLike = Union[str, os.PathLike]


class PixelLimitError(DataError):
    """An image of more pixels than the reader allows (`decode_bands(max_pixels=)`), found before decoding."""


def reads_bands(channels: Optional[int], bands: bool = False) -> bool:
    """Whether images of `channels` (None: as each file holds them) are read as bands: for other than
    three, or for three with `bands` (colour of more than 8 bits: data.bands, `TestConfig.bands`)."""
    return bool(bands) or channels not in (None, 3)


def read_bands(path: PathLike, channels: Optional[int] = None, dtype=np.float32) -> np.ndarray:
    """The image at `path` as float32 (H, W, channels), in the units of its file (see the module).
    channels: the model's input channels, checked; None takes the file's own. dtype: None keeps the
    file's type (uint16 bands stay uint16)."""
    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    kind = "npy" if suffix in ARRAY_SUFFIXES else "tiff" if suffix in TIFF_SUFFIXES else "image"
    with open(path, "rb") as file:
        return _decoded(file, kind, str(path), channels, dtype=dtype)


def decode_bands(data: Union[bytes, bytearray, memoryview], channels: Optional[int] = None,
                 name: str = "image bytes", max_pixels: Optional[int] = None) -> np.ndarray:
    """The bands of the file held in `data` (an upload), by `read_bands`'s rules, its kind told by its
    first bytes (.npy, TIFF, other images); `name` goes into errors. max_pixels: a larger image raises
    `PixelLimitError` before it is decoded."""
    data = bytes(data)
    kind = "npy" if data.startswith(b"\x93NUMPY") else "tiff" if data[:4] in TIFF_SIGNATURES else "image"
    return _decoded(io.BytesIO(data), kind, name, channels, max_pixels)


def _decoded(file: BinaryIO, kind: str, name: str, channels: Optional[int], max_pixels: Optional[int] = None,
             dtype=np.float32) -> np.ndarray:
    if kind == "npy":
        array = _read_npy(file, name, max_pixels)
    elif kind == "tiff" and _tifffile() is not None:
        array = _read_tiff(file, name, max_pixels)
    else:
        array = _read_with_pillow(file, name, max_pixels, is_tiff=kind == "tiff")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise DataError(f"{name}: values of type {array.dtype}; image bands must be integers, floats or bools")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(f"{name}: holds an array of shape {array.shape}; an image is (height, width, channels)")
    if channels is not None and array.shape[2] != channels:
        raise DataError(channels_error(name, array.shape, channels))
    return np.ascontiguousarray(array, dtype=dtype)


def _check_pixels(height: int, width: int, max_pixels: Optional[int], name: str) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise PixelLimitError(f"{name} is {width}x{height} = {height * width:,} pixels, over the limit of "
                              f"{max_pixels:,}; send a smaller image")


def _read_npy(file: BinaryIO, name: str, max_pixels: Optional[int]) -> np.ndarray:
    try:
        if max_pixels is not None:  # the header says the shape: nothing larger is allocated
            version = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape = read_header(file)[0]
            _check_pixels(*(tuple(shape[:2]) if len(shape) >= 2 else (1, int(np.prod(shape)))), max_pixels, name)
            file.seek(0)
        return np.load(file, allow_pickle=False)
    except PixelLimitError:
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise DataError(f"{name}: holds Python objects (a pickle), which are never loaded; save the bands as a "
                            f"numeric array (np.save(path, array) of an int or float array)") from None
        raise DataError(f"{name}: cannot read this array ({error}); save it again with np.save") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{name}: cannot read this array ({error or 'truncated'}); save it again with "
                        f"np.save") from None


def _tifffile():
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _read_tiff(file: BinaryIO, name: str, max_pixels: Optional[int]) -> np.ndarray:
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(file) as tiff:
            page = tiff.pages[0]
            _check_pixels(page.imagelength, page.imagewidth, max_pixels, name)
            array = tiff.asarray()
            bands_in_pages = len(tiff.pages) > 1 and page.samplesperpixel == 1
    except PixelLimitError:
        raise
    except Exception as error:  # tifffile raises its own errors, ValueError and OSError for damaged files
        raise DataError(f"{name}: cannot read this TIFF file ({error}); re-export it") from None
    if array.ndim == 3 and (page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel > 1
                            or bands_in_pages):
        array = np.moveaxis(array, 0, -1)  # band-sequential storage (as GDAL writes GeoTIFFs), or a page a band
    return array


def _read_with_pillow(file: BinaryIO, name: str, max_pixels: Optional[int], is_tiff: bool) -> np.ndarray:
    try:
        with Image.open(file) as image:
            _check_pixels(image.height, image.width, max_pixels, name)
            # Pillow decodes colour of 16 bits a sample to 8 (its RGB modes are 8-bit): the stored
            # layout, named by the tiles until decoding, says so before any bit is lost.
            wide_colour = image.mode in ("RGB", "RGBA") and any(";16" in str(tile.args) for tile in image.tile)
            if wide_colour:
                orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            else:
                image.load()
                image = ImageOps.exif_transpose(image)
    except PixelLimitError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        tiff_note = "; a TIFF of more than four bands needs tifffile (pip install tifffile)" if is_tiff else ""
        raise DataError(f"{name}: cannot read this file ({error}){tiff_note}") from None
    if wide_colour:
        return _oriented(_read_16_bit_colour(file, name, is_tiff), orientation)
    if image.mode in ("P", "PA"):
        raise DataError(f"{name}: a palette image holds colour indices, not bands; save its bands as an array "
                        f"(.npy) or a TIFF")
    return np.asarray(image)


def _read_16_bit_colour(file: BinaryIO, name: str, is_tiff: bool) -> np.ndarray:
    """A colour PNG of 16 bits a sample, all its bits (OpenCV reads them; Pillow keeps eight)."""
    if is_tiff:  # tifffile reads every TIFF; only without it does a TIFF come here
        raise DataError(f"{name}: a TIFF of 16-bit colour, which Pillow reads at 8 bits a sample; install tifffile "
                        f"(pip install tifffile) to read all 16")
    try:
        import cv2
    except ImportError:
        raise DataError(f"{name}: a PNG of 16-bit colour, which Pillow reads at 8 bits a sample; install OpenCV "
                        f"(pip install opencv-python-headless) to read all 16, or save the image as a TIFF or a "
                        f".npy array") from None
    file.seek(0)
    array = cv2.imdecode(np.frombuffer(file.read(), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 3:
        raise DataError(f"{name}: cannot read this 16-bit PNG; re-export it")
    return array[:, :, [2, 1, 0, 3][:array.shape[2]]]  # OpenCV's BGR(A) in the file's RGB(A) order


def _oriented(array: np.ndarray, orientation: int) -> np.ndarray:
    """`array` (H, W, C) turned upright by its EXIF orientation, as `ImageOps.exif_transpose` turns a
    Pillow image (whose modes cannot hold 16-bit colour)."""
    turned = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
              5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, k=-1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
              8: lambda a: np.rot90(a, k=1)}
    return turned[orientation](array) if orientation in turned else array


def display_rgb(bands: Union[np.ndarray, TiffScene]) -> np.ndarray:
    """An 8-bit RGB picture (H, W, 3) of an image of any channels (H, W, C) or (H, W), or of a
    `TiffScene`: the first three bands, or the first as grey when there are fewer, each stretched
    linearly from its 2nd to its 98th percentile to 0..255 (NaN as the low end). An 8-bit RGB image
    is returned as it is. The percentiles of 8- and 16-bit integers come from a histogram, and the
    stretch is made a band of rows at a time: a scene's picture takes little more memory than
    itself (than the picture, for a scene read from its file a band of rows at a time)."""
    bands = bands if isinstance(bands, TiffScene) else np.asarray(bands)
    if bands.ndim == 2:
        bands = bands[:, :, None]
    if bands.ndim != 3 or 0 in bands.shape:
        raise ValueError(f"expected an image (H, W, C), got shape {bands.shape}")
    if bands.shape[2] == 3 and bands.dtype == np.uint8:
        return np.asarray(bands)
    height, width, channels = bands.shape
    shown = 3 if channels >= 3 else 1
    limits = _stretch_percentiles(bands, shown, row_bands(height, width))
    picture = np.empty((height, width, shown), dtype=np.uint8)
    for rows in row_bands(height, width):
        values = bands[rows][:, :, :shown].astype(np.float32)
        for band, (low, high) in enumerate(limits):
            scaled = (values[:, :, band] - low) * (255.0 / (high - low)) if high > low else \
                np.zeros_like(values[:, :, band])
            picture[rows, :, band] = np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0) + 0.5, 0, 255)
    return np.repeat(picture, 3, axis=2) if shown == 1 else picture


def _stretch_percentiles(bands, shown: int, bands_of_rows: List[slice]) -> list:
    """The 2nd and 98th percentiles of the finite values of each of the first `shown` bands of
    `bands` (H, W, C), as `np.percentile` gives them (linear interpolation between the order
    statistics); (0, 0) when none is finite. 8- and 16-bit integers are counted in a histogram a
    band of rows at a time (one read of a `TiffScene`), instead of sorting a copy."""
    if bands.dtype.kind not in "ui" or bands.dtype.itemsize > 2:
        limits = []
        values = np.empty(bands.shape[:2], dtype=np.float32)  # what is stretched: beyond float32 is infinite
        for band in range(shown):
            for rows in bands_of_rows:
                values[rows] = bands[rows][:, :, band]
            finite = values[np.isfinite(values)]
            limits.append(tuple(np.percentile(finite, (2, 98))) if finite.size else (0.0, 0.0))
        return limits
    lowest = int(np.iinfo(bands.dtype).min)
    counts = np.zeros((shown, 1 << (8 * bands.dtype.itemsize)), dtype=np.int64)
    for rows in bands_of_rows:
        values = bands[rows]
        for band in range(shown):
            flat = values[:, :, band].ravel()
            counts[band] += np.bincount(flat.astype(np.int32) - lowest if lowest else flat, minlength=counts.shape[1])
    size = bands.shape[0] * bands.shape[1]
    limits = []
    for band in range(shown):
        ranks = np.cumsum(counts[band])
        ends = []
        for quantile in (0.02, 0.98):
            position = quantile * (size - 1)
            below = int(np.floor(position))
            first, second = (int(np.searchsorted(ranks, rank, side="right")) + lowest
                             for rank in (below, min(below + 1, size - 1)))
            ends.append(np.float64(first + (second - first) * (position - below)))
        limits.append(tuple(ends))
    return limits


def read_image_or_bands(path: PathLike) -> np.ndarray:
    """An image file as `read_image` gives it (uint8 RGB), or its own bands (`read_bands`) for an
    array (.npy) and a TIFF that Pillow cannot read (more than four bands, with tifffile): what any
    image of a folder dataset is, for checks of sizes and readability."""
    suffix = user_path(path).suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return read_bands(path)
    try:
        return read_image(path)
    except DataError:
        if suffix not in TIFF_SUFFIXES or _tifffile() is None:
            raise
        return read_bands(path)


STATISTICS_CHUNK = 1 << 20  # pixels summed at a time


def row_bands(height: int, width: int, at_least: int = 1) -> List[slice]:
    """The rows of an image (H, W) in bands of about `STATISTICS_CHUNK` pixels (and at least
    `at_least` rows: a TIFF's tiles or strips), top to bottom: how a large image, or a `TiffScene`
    read from its file, is gone through without a whole-image temporary."""
    rows = max(at_least, STATISTICS_CHUNK // max(width, 1))
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def channel_statistics(images, max_images: Optional[int] = None, no_data=None) -> dict:
    """{"mean": [...], "std": [...], "images": n, "pixels": n} of each channel over `images` (arrays
    (H, W, C) of one C, e.g. a dataset's samples' "image", or `TiffScene`s, read a band of rows at a
    time), in float64 sums: the population standard deviation over every pixel of every image, as
    torchvision's and MMSegmentation's normalisation constants are computed. NaN pixels are left out
    of their channel; `no_data`, one per image (a bool (H, W) array or None), leaves out where an
    image holds no data in every channel (`geotiff.no_data_of`: a scene's outside, its "no data"
    value)."""
    total = squares = counts = None
    seen = 0
    masks = iter(no_data) if no_data is not None else None
    for image in images:
        if max_images is not None and seen >= max_images:
            break
        outside = next(masks, None) if masks is not None else None
        values = image if isinstance(image, TiffScene) else np.asarray(image)  # chunks to float64 one by one
        values = values[:, :, None] if values.ndim == 2 else values
        channels = values.shape[2]
        if total is None:
            total, squares, counts = np.zeros(channels), np.zeros(channels), np.zeros(channels)
        elif channels != len(total):
            raise ValueError(f"image {seen} has {channels} channels and the ones before it {len(total)}; give "
                             f"every image one number of channels")
        if outside is not None and outside.shape != values.shape[:2]:
            raise ValueError(f"image {seen} is {values.shape[1]}x{values.shape[0]} and its no-data mask "
                             f"{outside.shape[1]}x{outside.shape[0]}")
        for rows in row_bands(*values.shape[:2]):  # bounded memory for a scene of 10,000 x 10,000
            chunk = values[rows].reshape(-1, channels).astype(np.float64)
            valid = np.isfinite(chunk)
            if outside is not None:
                valid &= ~outside[rows].reshape(-1, 1)
            chunk[~valid] = 0.0
            total += chunk.sum(0)
            squares += np.square(chunk).sum(0)
            counts += valid.sum(0)
        seen += 1
    if total is None:
        raise ValueError("no images to compute channel statistics of")
    mean = total / np.maximum(counts, 1)
    variance = np.maximum(squares / np.maximum(counts, 1) - np.square(mean), 0.0)
    return {"mean": mean.tolist(), "std": np.sqrt(variance).tolist(), "images": seen,
            "pixels": int(counts.max())}
