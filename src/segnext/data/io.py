"""Reading images and label maps, writing label maps.

`read_image` turns any common image file into RGB uint8, the same way every time:
- EXIF orientation is applied (as OpenCV's and mmcv's default colour read does);
- grayscale is replicated to three channels; palette images are expanded to their colours;
- an alpha channel is dropped, not composited (a transparent pixel keeps its stored colour);
- CMYK (also Adobe's inverted CMYK JPEGs) is converted by Pillow;
- 16-bit images keep their top 8 bits (value >> 8), as OpenCV's 8-bit read does.

`read_label` returns the stored values as indices: a palettised PNG gives its palette indices
(VOC), never colours. A colour (RGB) label map is refused: convert it first (iSAID:
`segnext data prepare isaid`).

Both raise `DataError` (a ValueError) naming the file when it cannot be decoded, is truncated or
has an unusable mode, FileNotFoundError when it does not exist and IsADirectoryError for a folder.
`pil_to_rgb` applies the same rules to an image already opened with Pillow, `decode_image` to the
bytes of an image file (an upload to a web service) or a file object.

Pillow refuses images above its decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, about
179 million pixels with the default); the `segnext` commands raise it to 400 million for large
aerial images (iSAID), see `segnext.runtime`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps

from ..utils import atomic_write, user_path

PathLike = Union[str, os.PathLike]


class DataError(ValueError):
    """A dataset file or layout is unusable; the message names the file and what to do."""


def channels_error(name: str, shape: tuple, channels: int) -> str:
    """What is wrong with an image `name` of `shape` (H, W, C) for a model of `channels` channels."""
    if shape[0] == channels:
        return (f"{name}: its {channels} channels come first ({tuple(shape)}); store the image as (height, width, "
                f"channels), e.g. np.save(path, np.moveaxis(array, 0, -1))")
    return (f"{name}: holds {shape[2]} channel(s), and the model takes {channels} (in_channels); give every image "
            f"the model's channels, in one order")


def _open(path: PathLike) -> Image.Image:
    path = user_path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder, not an image file; pass its files one by one (a list, e.g. "
                                f"sorted(Path('{path}').glob('*.jpg'))), or give the folder to `segnext predict`")
    if not path.is_file():
        wildcard = " (a wildcard pattern: pass the files it matches, e.g. sorted(glob.glob(...)))" \
            if any(c in str(path) for c in "*?[") else ""
        raise FileNotFoundError(f"{path}: no such file{wildcard}")
    if path.suffix.lower() == ".npy":
        raise DataError(f"{path}: a NumPy array, not an image file, read here as RGB; arrays of bands are the images "
                        f"of models of other input channels (model.options.in_channels and data.mean/data.std of as "
                        f"many values; `segnext data` commands: --channels N; Python: segnext.data.read_bands), or "
                        f"of three read as bands (data.bands; --bands)")
    return _decode(path, str(path))


TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order
# Where a TIFF is no picture Pillow reads: files of bands, which `segnext.data.read_bands` reads.
TIFF_OF_BANDS = ("a TIFF of bands (16-bit colour, other channels than RGB) is read as bands: --bands or --channels N "
                 "(data.bands, model.options.in_channels)")


def _decode(source, name: str) -> Image.Image:
    """Open and decode `source` (a path or a binary file object) with Pillow, errors naming `name`."""
    try:
        with Image.open(source) as image:  # closes the file, also when decoding fails
            image.load()  # decode now: a truncated or corrupt file fails here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Pillow reads no TIFF of more than four bands, nor grey bands of 16 bits (as GDAL writes them).
        bands = f"; {TIFF_OF_BANDS}" if _is_tiff(source, name) else ""
        raise DataError(f"{name}: cannot read this file ({error}); re-download or re-convert it{bands}") from None
    return image


def _is_tiff(source, name: str) -> bool:
    """Whether `source` is a TIFF: by its first bytes for a file object (an upload), else by its name."""
    if hasattr(source, "read"):
        try:
            position = source.tell()
            source.seek(0)  # an image file's own start: Pillow has read on from it
            head = source.read(4)
            source.seek(position)
        except (OSError, ValueError):
            return False
        return head in TIFF_SIGNATURES
    return str(name).lower().endswith((".tif", ".tiff"))


def read_image(path: PathLike) -> np.ndarray:
    """The image at `path` as an RGB uint8 array of shape (H, W, 3)."""
    return pil_to_rgb(_open(path), name=str(path))


def decode_image(data: Union[bytes, bytearray, memoryview, BinaryIO], name: str = "image bytes") -> np.ndarray:
    """The image file held in `data` (its bytes, or a binary file object read from where it is) as an
    RGB uint8 array (H, W, 3), by `read_image`'s rules; `name` goes into errors."""
    source = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return pil_to_rgb(_decode(source, name), name=name)


def pil_to_rgb(image: Image.Image, name: str = "image") -> np.ndarray:
    """A Pillow image as an RGB uint8 array (H, W, 3), by the rules above; `name` goes into errors."""
    try:
        orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation tag
    except Exception:  # a malformed EXIF block must not make a readable image unusable
        orientation = 1
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (Pillow opens some as 32-bit "I"): keep the top byte, like OpenCV.
        values = np.asarray(image).astype(np.int64)
        gray = np.clip(values >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        raise DataError(f"{name}: floating-point image (mode F) has no standard 8-bit meaning; "
                        f"save it as 8-bit RGB (or pass a NumPy array scaled to 0..1 or 0..255)")
    if mode != "RGB":
        # L, LA, P, PA, RGBA, RGBX, CMYK, YCbCr, 1: Pillow's conversion drops alpha.
        if mode in ("P", "PA") and "transparency" in image.info:
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.asarray(image)


def has_16_bit_samples(path: PathLike) -> bool:
    """Whether the image file at `path` stores 16 bits a sample (a 16-bit PNG or TIFF), which
    `read_image` reads by their top byte: from the header, without decoding it."""
    with Image.open(user_path(path)) as image:  # the tiles name the stored sample layout until decoded
        return image.mode.startswith("I;16") or any(";16" in str(tile.args) for tile in image.tile)


def read_label(path: PathLike) -> np.ndarray:
    """The label map at `path` as a uint8 array of shape (H, W) holding the stored indices."""
    return pil_to_label(_open(path), name=str(path))


def pil_to_label(image: Image.Image, name: str = "label") -> np.ndarray:
    """A label map already opened with Pillow, by the rules of `read_label`; `name` goes into errors."""
    mode = image.mode
    if mode in ("P", "L"):
        return np.asarray(image)
    if mode == "1":
        return np.asarray(image).astype(np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image)
        if values.size and (values.max() > 255 or values.min() < 0):
            raise DataError(f"{name}: 16-bit label map holds values up to {int(values.max())}; "
                            f"labels must be 0..255 (class ids and 255 = ignore)")
        return values.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        values = np.asarray(image)[:, :, :3]
        if np.array_equal(values[:, :, 0], values[:, :, 1]) and np.array_equal(values[:, :, 0], values[:, :, 2]):
            return np.ascontiguousarray(values[:, :, 0])  # gray stored as RGB: the values are the ids
        raise DataError(f"{name}: colour (RGB) label map; labels must hold class indices "
                        f"(single channel or palettised PNG). Convert colour masks to class ids first; for a folder "
                        f"of images and masks `segnext data prepare folder SRC DST` does it with the palette of "
                        f"SRC/classes.json (docs/datasets.md)")
    raise DataError(f"{name}: label map of image mode {mode!r}; expected a single-channel or palettised PNG")


def write_label(path: PathLike, label: np.ndarray, palette=None) -> None:
    """Write a label map of class ids as PNG (`encode_label_png`), atomically (a crash never leaves
    a half-written file)."""
    encoded = encode_label_png(label, palette)
    atomic_write(path, lambda temporary: temporary.write_bytes(encoded), size=len(encoded))


def encode_label_png(label: np.ndarray, palette=None) -> bytes:
    """A label map of class ids as PNG bytes. Up to id 255: 8-bit, palettised when `palette` (a list
    of [r, g, b]) is given, so that viewers show the class colours while the pixel values stay the
    ids. Above 255: 16-bit grayscale (a PNG palette holds 256 colours).
    """
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label map must be a 2-D integer array, got {label.dtype} {label.shape}")
    if label.size and int(label.max()) > 255:
        image = Image.fromarray(label.astype(np.uint16))
    elif palette is None:
        image = Image.fromarray(label.astype(np.uint8))
    else:
        image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label, np.uint8).tobytes())
        flat = [int(channel) for colour in list(palette)[:256] for channel in colour]
        image.putpalette(flat + [0] * (768 - len(flat)))
    encoded = io.BytesIO()  # encoded first, so that a full disk can be told the size it needed
    image.save(encoded, format="PNG")
    return encoded.getvalue()


def write_image(path: PathLike, rgb: np.ndarray, quality: int = 90) -> None:
    """Write an RGB (or greyscale (H, W)) uint8 image atomically, in the format of the path's suffix
    (JPEG at `quality`)."""
    image_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    encoded = encode_image(rgb, image_format, quality)
    atomic_write(path, lambda temporary: temporary.write_bytes(encoded), size=len(encoded))


def encode_image(rgb: np.ndarray, image_format: str = "PNG", quality: int = 90) -> bytes:
    """An RGB uint8 image as bytes in Pillow's `image_format` ("PNG", "JPEG" at `quality`, ...)."""
    encoded = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(encoded, format=image_format, quality=quality)
    return encoded.getvalue()
