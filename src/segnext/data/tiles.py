"""Large images and their labels cut into tiles (`segnext data tile`): aerial and satellite scenes of
thousands of pixels a side would otherwise be read whole for every training crop.

`tile_dataset(name, root, destination, size=512)` writes a folder dataset: for every labelled image
of each split, tiles of `size` x `size` at a stride of `size - overlap`, the last row and column
aligned to the image's far edge (MMSegmentation's iSAID converter does the same), an image smaller
than a tile padded (image 0, label 255 = ignore). Names keep the scene's: `austin1_y512_x1024.png`
for the tile whose top left pixel is (512, 1024) of `austin1.tif`, so the scene is the tiles' group
(`segnext data split` holds out whole scenes, the intervals resample them): the classes.json written
beside them says so ("groups": the name before `_y..._x...`, whatever underscores the scene's own name
holds), unless the source names its groups otherwise (a dataset's own, a classes.json's "groups"),
which the tiles keep. Images are written
losslessly: RGB as PNG, bands (channels other than 3, or 3 read as bands) as .npy arrays of their own
type, and the tiles of a GeoTIFF scene as GeoTIFFs of its type that keep their place on the map (the
scene's georeference with the raster moved to the tile: `predict --geotiff` on them gives label maps
that mosaic back). Labels are written as class ids (the dataset's label map applied) in palettised PNGs,
on their tile's pixel grid, with a classes.json of the dataset's classes and colours. TIFF scenes and
label maps are read a row of tiles at a time (`TiffScene`), so a scene larger than memory is tiled.

Where a TIFF scene holds no data (`no_data_of`: its mask, its "no data" value, its alpha band, as GDAL
finds them: an orthophoto's outside, a satellite scene's borders), its pixels are unlabelled (255) in
the tiles, whatever the label map says there (rasterized polygons and label maps often give it a
class, which would teach the model that black is that class), the tiles of only no data are left out,
and the tiles keep the mark where it fits: an RGB tile gets an alpha band (0 there), a GeoTIFF tile of
bands the scene's "no data" value. `label_no_data=True` keeps the label map as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import atomic_write
from .bands import read_bands, reads_bands
from .conversion import Guarded, PrepareReport, run_tasks, up_to_date
from .datasets import GROUP_PATTERN, get_spec, list_split, split_names, splits_on_disk
from .geotiff import GDAL_NODATA, georeference, no_data_where, nodata_value, tile_georeference, write_image_geotiff
from .io import DataError, read_image, read_label, write_image, write_label
from .splits import relative_stem
from .tiff_scene import TiffScene, open_tiff_scene_as

DONE_FOLDER = ".tiled"
SCENE_GROUPS = r"^(.+)_y\d+_x\d+$"  # a tile's group: the scene it was cut from (austin1 of austin1_y512_x1024)


@dataclass
class TileReport(PrepareReport):
    georeferenced: int = 0  # scenes tiled as GeoTIFFs
    with_no_data: int = 0  # scenes of which some pixels hold no data
    no_data_tiles: int = 0  # their tiles left out: no data in every pixel


def tile_starts(length: int, size: int, stride: int) -> List[int]:
    """Tile starts every `stride` pixels; a tile that would cross the end is moved back so it ends at
    the border (as MMSegmentation's iSAID converter). `length` >= `size`."""
    return sorted({min(start, length - size) for start in range(0, length, stride)})


def tile_origins(height: int, width: int, size: int, overlap: int = 0) -> List[tuple]:
    """(y, x) of the top left corner of every tile of an image (padded to at least one tile)."""
    stride = size - overlap
    return [(y, x) for y in tile_starts(max(height, size), size, stride)
            for x in tile_starts(max(width, size), size, stride)]


def tile_dataset(name: str, root, destination, *, size: int = 512, overlap: int = 0, split: Optional[str] = None,
                 channels: int = 3, bands: bool = False, drop_unlabelled: bool = False, label_no_data: bool = False,
                 workers: Optional[int] = None, overwrite: bool = False, progress: bool = True) -> TileReport:
    """Cut the labelled images of `split` (or every split on disk; "train+val": each) of dataset `name`
    below `root` into tiles, as a folder dataset at `destination` (see the module). channels: 3 reads
    RGB images, another number files of that many bands; bands: three too, in their own type (colour
    of more than 8 bits a sample). drop_unlabelled: leave out the tiles whose
    every pixel is unlabelled (255). label_no_data: keep the labels where a scene holds no data (and
    its tiles of only no data). An image already tiled is skipped unless `overwrite`."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"tiles of {size} pixels need an overlap from 0 to {size - 1}, got {overlap}")
    root, destination = Path(root), Path(destination)
    if destination.resolve() == root.resolve():
        raise ValueError(f"{destination}: the tiles are written beside their source; give another folder")
    spec = get_spec(name, root)
    splits = split_names(split) if split else splits_on_disk(spec, root)
    if not splits:
        raise DataError(f"{root}: no split of {spec.title} with labelled images; give --split")
    report = TileReport(f"{name} tiles", destination)
    palette = [list(colour) for colour in spec.palette]
    tasks = []
    for part in splits:
        listing = list_split(spec, root, part)
        report.failures += [f"{image}: no label (looked for {label})" for image, label in listing.images_without_label]
        for image, label in listing.pairs:
            tasks.append((str(image), str(label), relative_stem(listing, image), str(destination), part,
                          listing.layout.label_map.table, palette, channels, reads_bands(channels, bands), size,
                          overlap, drop_unlabelled, label_no_data, overwrite))
    if not tasks:
        raise DataError(f"{root}: no labelled images in {', '.join(splits)}")
    destination.mkdir(parents=True, exist_ok=True)
    # A folder's default pattern (the name up to its first "_") would split a scene's name; a pattern
    # of the source's own says what its groups are (a city's scenes) and is kept.
    own_groups = spec.group_pattern is not None and not (name == "folder" and spec.group_pattern == GROUP_PATTERN)
    groups = spec.group_pattern if own_groups else SCENE_GROUPS
    classes = {"classes": list(spec.class_names), "palette": palette, "groups": groups}
    text = json.dumps(classes, indent=1) + "\n"
    atomic_write(destination / "classes.json", lambda temporary: temporary.write_text(text))
    outcomes = run_tasks(Guarded(_tile_pair), tasks, workers, f"{name} tiles", progress)
    report.add([(status, note if status == "failed" else "") for status, note in outcomes])
    for status, note in outcomes:
        if status == "converted":
            georeferenced, no_data_tiles = note
            report.georeferenced += georeferenced
            report.with_no_data += no_data_tiles is not None
            report.no_data_tiles += no_data_tiles or 0
    return report


def _tile_pair(image_path: str, label_path: str, stem: str, destination: str, split: str, table: np.ndarray,
               palette: Sequence, channels: int, reads_bands: bool, size: int, overlap: int, drop_unlabelled: bool,
               label_no_data: bool, overwrite: bool):
    """Tile one scene: ("converted", (georeferenced, tiles of only no data left out or None where the
    scene holds data everywhere)), or ("skipped", "")."""
    image_dir, label_dir = Path(destination) / "images" / split, Path(destination) / "labels" / split
    # Written last, in a hidden folder (listings skip it): the image's tiles are all there.
    done = Path(destination) / DONE_FOLDER / split / f"{stem}.tiled"
    if up_to_date([done], overwrite):
        return "skipped", ""
    # A TIFF scene and label map read a row of tiles at a time (`TiffScene`): larger than memory, tiled all the same
    image = _read_in_windows(image_path, "bands" if reads_bands else "picture", channels)
    if image is None:
        image = read_bands(image_path, channels, dtype=None) if reads_bands else read_image(image_path)
    place = georeference(image_path) if find_spec("tifffile") else ()  # (): not a GeoTIFF
    no_data = None if label_no_data else no_data_where(image_path)
    label = _read_in_windows(label_path, "label")
    label = table[read_label(label_path)] if label is None else label
    if image.shape[:2] != label.shape[:2]:
        raise DataError(f"{image_path} is {image.shape[1]}x{image.shape[0]} but its label {label_path} is "
                        f"{label.shape[1]}x{label.shape[0]}")
    height, width = label.shape[:2]
    if no_data is not None and no_data.shape != (height, width):  # an image turned by its orientation tag as read
        raise DataError(f"{image_path}: its no-data mask is {no_data.shape[1]}x{no_data.shape[0]} and the image as "
                        f"read {width}x{height}; write it without an orientation tag, or give --label-no-data")
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if pad_h or pad_w:  # smaller than a tile: read whole
        image = np.pad(np.asarray(image), ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.asarray(label)
        label = np.pad(label if label.ndim == 2 else table[label[:, :, 0]], ((0, pad_h), (0, pad_w)),
                       constant_values=IGNORE_INDEX)
        no_data = None if no_data is None else np.pad(no_data, ((0, pad_h), (0, pad_w)), constant_values=True)
    if no_data is not None and reads_bands and place:
        value = nodata_value(image_path)  # the tiles keep it (None: the scene marks no data by a mask or alpha)
        place += () if value is None else ((GDAL_NODATA, 2, 0, f"{value:.17g}"),)
    written = left_out = 0
    for y, x in tile_origins(height, width, size, overlap):  # row by row: a scene read in windows is read once
        tile_label = label[y:y + size, x:x + size]
        tile_label = np.ascontiguousarray(tile_label if tile_label.ndim == 2 else table[tile_label[:, :, 0]])
        tile_no_data = None if no_data is None else no_data[y:y + size, x:x + size]
        if tile_no_data is not None and tile_no_data.all():
            left_out += 1
            continue
        if tile_no_data is not None and tile_no_data.any():
            tile_label = np.where(tile_no_data, IGNORE_INDEX, tile_label).astype(tile_label.dtype)
        if drop_unlabelled and (tile_label == IGNORE_INDEX).all():
            continue
        name = f"{stem}_y{y}_x{x}"
        _write_image_tile(image_dir / name, image[y:y + size, x:x + size], tile_no_data, reads_bands,
                          tile_georeference(place, y, x) if place else ())
        write_label(label_dir / f"{name}.png", tile_label, palette or None)
        written += 1
    atomic_write(done, lambda temporary: temporary.write_text(f"{written}\n"))
    return "converted", (bool(place), None if no_data is None else left_out)


def _write_image_tile(path: Path, tile: np.ndarray, no_data: Optional[np.ndarray], reads_bands: bool,
                      place: Sequence) -> None:
    """Write an image tile at `path` (no suffix): a GeoTIFF where it has a `place`, else a PNG of
    RGB, a .npy array of bands. RGB with some `no_data` gets an alpha band, 0 there."""
    tile = np.ascontiguousarray(tile)
    alpha = no_data is not None and no_data.any() and not reads_bands
    if alpha:  # in a GeoTIFF, GDAL, QGIS and `predict --geotiff` see the tile's outside
        tile = np.dstack([tile, np.where(no_data, 0, 255).astype(np.uint8)])
    if place:
        write_image_geotiff(path.with_name(f"{path.name}.tif"), tile, place, alpha=alpha)
    elif not reads_bands:
        write_image(path.with_name(f"{path.name}.png"), tile)
    else:
        atomic_write(path.with_name(f"{path.name}.npy"), lambda temporary: _save_npy(temporary, tile))


def _read_in_windows(path: str, reader: str, channels: Optional[int] = None) -> Optional[TiffScene]:
    return open_tiff_scene_as(path, reader, channels) if find_spec("tifffile") else None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as file:  # np.save on a path would add .npy to the temporary name
        np.save(file, array)


__all__ = ["TileReport", "tile_dataset", "tile_origins", "tile_starts"]
