"""Images in: any supported image as uint8 RGB, the test-time resize (`prepare`: everything before
the model), normalisation to a tensor."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..data.bands import display_rgb, read_bands, row_bands
from ..data.geotiff import no_data_of
from ..data.io import DataError, channels_error, decode_image, pil_to_rgb, read_image
from ..data.resize import rescale_size, resize_image
from ..data.tiff_scene import TiffScene, open_tiff_scene_as
from .settings import TestConfig

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor, bytes, BinaryIO, TiffScene]


def to_rgb_array(image: ImageInput, *, copy: bool = True) -> np.ndarray:
    """Any supported image (path, PIL image, NumPy array) as a writable uint8 RGB (H, W, 3) array.
    copy=False: an array that already is one (uint8 (H, W, 3), C-contiguous) is returned as it is,
    not copied, for readers that do not write into it (a large scene is not held twice).

    Paths, PIL images and the bytes of an image file (or a binary file object: an upload) follow
    `segnext.data.read_image`'s rules (EXIF orientation, grayscale, palette, RGBA, 16-bit, CMYK; a
    floating-point PIL image is refused). Arrays: (H, W) or (H, W, 1)
    grayscale, (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped); uint8; uint16 keeps its top byte;
    bool is 0/255; floats are taken as 0..1 when their maximum is at most 1, else as 0..255.
    Tensors: uint8 (3, H, W), (4, H, W), (1, H, W) or (H, W), channels first as torchvision's
    `read_image` and `decode_image` give them.
    """
    if isinstance(image, (str, os.PathLike)):
        return np.array(read_image(image))  # a copy: torch wants writable memory
    if isinstance(image, TiffScene):  # where a test needs all of it at once
        image = np.asarray(image)
    if isinstance(image, Image.Image):
        return np.array(pil_to_rgb(image, name=getattr(image, "filename", "") or "PIL image"))
    if isinstance(image, (bytes, bytearray, memoryview)) or hasattr(image, "read"):
        return np.array(decode_image(image))
    if isinstance(image, torch.Tensor):
        channels_first = image.ndim == 2 or (image.ndim == 3 and image.shape[0] in (1, 3, 4))
        if image.dtype != torch.uint8 or not channels_first:
            raise TypeError(f"a tensor image must be uint8 (3, H, W) or (H, W), as torchvision.io.read_image gives; "
                            f"got {image.dtype} {tuple(image.shape)}. Pass other images as a path, a PIL image or a "
                            f"NumPy array (H, W, 3); for normalised tensors call the model directly")
        array = image.detach().cpu().numpy()
        image = array if array.ndim == 2 else array.transpose(1, 2, 0)  # channels first, as torchvision's
    if not isinstance(image, np.ndarray):
        raise TypeError(f"cannot read an image from a {type(image).__name__}; pass a path, a PIL image, a NumPy "
                        f"array or the bytes of an image file")
    array = image
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    array = array[:, :, :3]
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"empty image of shape {array.shape}")
    if array.dtype == np.uint8:
        return np.array(array, copy=True) if copy or not array.flags.c_contiguous else array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array, nan=0.0)  # NaN (no data) reads as black
        scale = 255.0 if float(finite.max()) <= 1.0 else 1.0
        return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {array.dtype}")


def resize_for_test(image: np.ndarray, img_scale: Optional[Tuple[int, int]], ratio: float = 1.0,
                    size_divisor: Optional[int] = None) -> np.ndarray:
    """The official test resize of a uint8 image: keep-ratio to `img_scale * ratio` (mmcv's rounding),
    then up to a multiple of `size_divisor` (SegNeXt's AlignResize). img_scale None: the image's own
    size times `ratio`."""
    height, width = test_size(image.shape[:2], img_scale, ratio, size_divisor)
    return resize_image(image, width, height)


def test_size(size: Tuple[int, int], img_scale: Optional[Tuple[int, int]], ratio: float = 1.0,
              size_divisor: Optional[int] = None) -> Tuple[int, int]:
    """(height, width) of an image of `size` (height, width) after `resize_for_test`."""
    height, width = size
    if img_scale is not None:
        width, height = rescale_size(width, height, (int(img_scale[0] * ratio), int(img_scale[1] * ratio)))
    elif ratio != 1.0:
        height, width = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    if size_divisor:
        height = -(-height // size_divisor) * size_divisor
        width = -(-width // size_divisor) * size_divisor
    return height, width


def model_input_sizes(size: Tuple[int, int], config: TestConfig) -> Tuple[Tuple[int, int], ...]:
    """The (height, width) inputs the model gets, by the test of `config`, for an image of `size`:
    per test scale, the resized image, or in slide mode the window (the resized image where it is
    smaller). What a fixed-size export (`segnext export --static`) must be built for."""
    sizes = []
    for ratio in config.scales:
        height, width = test_size(size, config.img_scale, ratio, config.size_divisor)
        if config.mode == "slide":
            height, width = min(height, config.crop_size[0]), min(width, config.crop_size[1])
        sizes.append((height, width))
    return tuple(dict.fromkeys(sizes))  # distinct, in order of the scales


SAMPLED_ROW_BANDS = 8


def normalised_channel_means(image: Union[np.ndarray, TiffScene], mean, std, nodata: Optional[float] = None
                             ) -> np.ndarray:
    """Each channel's mean of `image` (H, W, C) once normalised, (x - mean) / std: about 0 for an image
    in the normalisation's units, far from it (`NORMALISED_MEAN_LIMIT`) for one in others; NaN and
    `nodata` samples left out. Of a `TiffScene`, the means of `SAMPLED_ROW_BANDS` bands of rows spread
    over it: enough to tell its units, without decoding the whole scene once more before its windows."""
    if isinstance(image, TiffScene):
        bands = row_bands(*image.shape[:2])
        picked = sorted({int(index) for index in np.linspace(0, len(bands) - 1, SAMPLED_ROW_BANDS)})
        values = np.concatenate([image[bands[index]].reshape(-1, image.shape[2]) for index in picked])
    else:
        values = np.asarray(image).reshape(-1, len(mean))
    if nodata is not None or np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
        if nodata is not None:
            values[values == nodata] = np.nan
        with warnings.catch_warnings():  # a channel of no data at all: NaN, which warns of nothing
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(values, 0)
    else:
        means = values.mean(0, dtype=np.float64)
    return (means - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)


def to_tensor(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD, nodata: Optional[float] = None
              ) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> normalised float32 (1, 3, H, W), channels-last in memory (the pixels'
    own order, and the layout `optimize_for_inference` runs in); (H, W, C) with C values of mean
    and std for a model of other input channels. NaN in float bands (no data), and samples equal to
    `nodata`, are 0, the mean, as in training: one NaN would make every logit of its window NaN (the
    decoder's GroupNorm), a -9999 pull the pixels around it."""
    array = np.require(image, requirements=("C", "W"))
    holds_nan = nodata is not None or np.issubdtype(array.dtype, np.floating)  # no NaN in integers
    if array.dtype == np.uint16:  # 16-bit bands, which torch.from_numpy takes only from PyTorch 2.3 on
        array = array.astype(np.float32)
    x = torch.from_numpy(array).permute(2, 0, 1).float()
    if nodata is not None:
        x = x.masked_fill(x == nodata, float("nan"))  # a new tensor: the caller's array is not written
    # Written into a tensor of standard channels-last strides: the permuted view has a batch stride
    # of 3 once unsqueezed, which PyTorch calls channels-last (a stride of a size-1 dimension is
    # free) but on which oneDNN's convolutions take a much slower path (BENCHMARKS.md); a batch of
    # these concatenates to the same. In place after the subtraction: one image-sized tensor made,
    # a large scene's bands are not copied twice more.
    out = torch.empty((1, *x.shape), memory_format=torch.channels_last)
    torch.sub(x.unsqueeze(0), torch.tensor(mean).view(-1, 1, 1), out=out)
    out.div_(torch.tensor(std).view(-1, 1, 1))
    return out.nan_to_num_(0.0, 0.0, 0.0) if holds_nan else out


@dataclass
class PreparedImage:
    """An image made ready for the model, without the model.

    size: (height, width) of the image, the size of its label map.
    views: the image resized for each test scale (`config.scales`, in order), uint8 (h, w, 3); bands
    (`to_channels_array`) at their own size in their own type, resized as float32; a large TIFF
    scene tested at its own size, a `TiffScene` read a window at a time (`read_in_windows`).
    rgb: the image itself (uint8 RGB), when kept for overlays.
    no_data: where the image holds no data (bool (H, W)), when read (`prepare(no_data=True)`): those
    pixels get no label, and sliding windows that hold nothing else are not run.
    """

    size: Tuple[int, int]
    views: Tuple[Union[np.ndarray, TiffScene], ...]
    rgb: Optional[np.ndarray] = None
    no_data: Optional[np.ndarray] = None

    @property
    def group_key(self) -> Tuple[Tuple[int, int], ...]:
        """Images with equal keys can share a forward pass: their inputs have the same sizes."""
        return tuple(view.shape[:2] for view in self.views)


# Types whose every value float32 holds exactly: bands of them are kept in them until a window is
# normalised (a 16-bit scene takes half the memory of its float32 copy, and gives the same numbers).
EXACT_IN_FLOAT32 = (np.uint8, np.int8, np.uint16, np.int16, np.float16, np.float32)


def to_channels_array(image, channels: int) -> np.ndarray:
    """An image of a model that reads bands (other input channels than RGB, or RGB of more than 8
    bits: `TestConfig.reads_bands`): a NumPy array (H, W, channels), or (H, W) for one channel, or
    the path of a file of its bands (`segnext.data.read_bands`: .npy, TIFF, ...), in its own units:
    in its own type where float32 holds every value of it (8- and 16-bit integers, float16/32),
    else as float32."""
    if isinstance(image, (str, os.PathLike)):
        image = read_bands(image, channels, dtype=None)
    elif isinstance(image, TiffScene):  # where a test needs all of it at once
        image = np.asarray(image)
    elif not isinstance(image, np.ndarray):
        raise TypeError(f"a model of {channels} input channels takes each image as a NumPy array (H, W, {channels}), "
                        f"the path of a file of its bands (.npy, TIFF) or a TiffScene; got a {type(image).__name__}")
    array = image[:, :, None] if image.ndim == 2 and channels == 1 else image
    if array.ndim != 3 or array.shape[2] != channels or 0 in array.shape:
        raise ValueError(f"expected an image array of shape (H, W, {channels}) (the test settings' mean and std have "
                         f"{channels} values), got {image.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"unsupported image dtype {array.dtype}")
    exact = array.dtype.type in EXACT_IN_FLOAT32
    return np.ascontiguousarray(array, dtype=array.dtype if exact else np.float32)


# A TIFF scene of more bytes than this, segmented in sliding windows at its own size, is read from its
# file a band of rows at a time (`read_in_windows`) instead of whole.
READ_IN_WINDOWS_ABOVE = 256 << 20


def read_in_windows(image: ImageInput, config: TestConfig) -> Optional[TiffScene]:
    """`image` as a `TiffScene` read a band of rows at a time where that is all the test needs: the
    path of a TIFF of more than `READ_IN_WINDOWS_ABOVE` bytes (or a `TiffScene` given) that
    `open_tiff_scene_as` reads so, tested in sliding windows at its own size (one scale, with or
    without flip): bands whose type float32 holds exactly, or for an RGB model an upright 8-bit RGB
    picture (what `read_image` gives of it). None where the image is read whole."""
    if not (isinstance(image, (str, os.PathLike, TiffScene)) and config.mode == "slide" and len(config.scales) == 1):
        return None
    given = isinstance(image, TiffScene)
    reader = "bands" if config.reads_bands else "picture"
    scene = image if given else open_tiff_scene_as(image, reader, config.channels)
    if scene is None or scene.nbytes <= READ_IN_WINDOWS_ABOVE and not given or \
            test_size(scene.shape[:2], config.img_scale, config.scales[0], config.size_divisor) != scene.shape[:2]:
        return None
    if not config.reads_bands:  # an RGB picture whose pixels Pillow would give as they are, else read whole
        return scene if scene.rgb else None
    if scene.shape[2] != config.channels:
        raise DataError(channels_error(str(scene.path), scene.shape, config.channels))
    return scene if scene.dtype.type in EXACT_IN_FLOAT32 else None


def prepare(image: ImageInput, config: TestConfig, *, keep_image: bool = False, no_data: bool = False
            ) -> PreparedImage:
    """Read `image` (path, PIL image or array, as `to_rgb_array`) and resize it for every scale of
    the test. NumPy, Pillow and OpenCV only, so it can run in DataLoader workers or threads.
    keep_image: keep the RGB image too (for overlays). Test settings that read bands (of other
    than three channels, a model's `in_channels`, or `bands`) take arrays of that many or files of
    bands (`to_channels_array`), resized as float32; the image kept is then
    `segnext.data.display_rgb`'s picture of them.
    no_data: also read where a TIFF (its path or `TiffScene`) holds no data, as GDAL finds it
    (`segnext.data.geotiff.no_data_of`: its mask, its "no data" value, its alpha band), into
    `PreparedImage.no_data` (a warning, and None, where that cannot be read or lies otherwise than
    the image's pixels)."""
    prepared = _prepare(image, config, keep_image)
    if no_data:
        prepared.no_data = _no_data_of(image, prepared.size)
    return prepared


def _no_data_of(image: ImageInput, size: Tuple[int, int]) -> Optional[np.ndarray]:
    path = image.path if isinstance(image, TiffScene) else image if isinstance(image, (str, os.PathLike)) else None
    if path is None:
        return None
    try:
        mask = no_data_of(path)
    except DataError as error:  # Pillow read it for the model (a codec tifffile lacks), or a damaged mask
        warnings.warn(f"{error}; its pixels of no data keep their labels", stacklevel=3)
        return None
    if mask is not None and mask.shape != tuple(size):  # a TIFF turned by its orientation tag
        warnings.warn(f"{path}: its mask of no data is {mask.shape[1]}x{mask.shape[0]} pixels and the image read "
                      f"{size[1]}x{size[0]}; its pixels of no data keep their labels", stacklevel=3)
        return None
    return mask


def _floats_with_nan(array: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """`array` as float32, its samples equal to `nodata` NaN (a copy where there are any)."""
    floats = array.astype(np.float32, copy=False)
    if nodata is None:
        return floats
    missing = floats == nodata
    return np.where(missing, np.float32("nan"), floats) if missing.any() else floats


def _prepare(image: ImageInput, config: TestConfig, keep_image: bool) -> PreparedImage:
    if config.reads_bands:
        scene = read_in_windows(image, config)
        if scene is not None:  # segmented at its own size: each window read from the file when it is normalised
            return PreparedImage(size=scene.shape[:2], views=(scene,), rgb=display_rgb(scene) if keep_image else None)
        array = to_channels_array(image, config.channels)
        views, floats = [], None
        for ratio in config.scales:
            if test_size(array.shape[:2], config.img_scale, ratio, config.size_divisor) == array.shape[:2]:
                views.append(array)  # in its own type: each window is made float32 when it is normalised
            else:  # resized unrounded, from float32 (no data as NaN first, so that it spreads as NaN)
                floats = _floats_with_nan(array, config.nodata) if floats is None else floats
                views.append(resize_for_test(floats, config.img_scale, ratio, config.size_divisor))
        return PreparedImage(size=array.shape[:2], views=tuple(views),
                             rgb=display_rgb(array) if keep_image else None)
    scene = read_in_windows(image, config)
    if scene is not None:  # an RGB scene segmented at its own size: its windows read from the file
        return PreparedImage(size=scene.shape[:2], views=(scene,), rgb=np.asarray(scene) if keep_image else None)
    rgb = to_rgb_array(image, copy=False)  # a caller's array is read, never written
    views = tuple(resize_for_test(rgb, config.img_scale, ratio, config.size_divisor) for ratio in config.scales)
    return PreparedImage(size=(rgb.shape[0], rgb.shape[1]), views=views, rgb=rgb if keep_image else None)
