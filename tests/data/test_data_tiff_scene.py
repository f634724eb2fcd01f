"""segnext.data.tiff_scene: a TIFF scene read a band of rows at a time gives the pixels `read_bands`
gives, for every layout it opens, decoding each tile or strip once while its rows are read."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from segnext.data import DataError, TiffScene, display_rgb, open_tiff_scene, read_bands

tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): scenes untested")

FIXTURES = Path(__file__).parents[1] / "fixtures"
HEIGHT, WIDTH = 133, 171  # no multiple of a tile or a strip: the edge segments are cut


def _scene(path, dtype=np.uint16, bands=4, planar="contig", seed=0, **options) -> np.ndarray:
    """Write a scene (H, W, bands) of `dtype` as `options` lay it out; return its pixels."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 250, (HEIGHT, WIDTH, bands)).astype(dtype)
    data = image[:, :, 0] if bands == 1 else np.moveaxis(image, -1, 0) if planar == "separate" else image
    layout = dict(planarconfig=planar) if bands > 1 else {}
    tifffile.imwrite(path, data, photometric="minisblack", **layout, **options)
    return image


LAYOUTS = [dict(tile=(32, 64)), dict(rowsperstrip=1), dict(rowsperstrip=7), dict(rowsperstrip=HEIGHT), {}]
WINDOWS = [(0, 40), (20, 70), (31, 33), (100, HEIGHT), (HEIGHT - 1, HEIGHT), (0, HEIGHT)]


@pytest.mark.parametrize("layout,compression,planar", list(itertools.product(
    LAYOUTS, [None, "zlib"], ["contig", "separate"])))
def test_every_window_of_a_scene_is_the_one_read_whole(tmp_path, layout, compression, planar):
    """Tiles or strips (of one row, of several, of the whole height), interleaved or band by band,
    compressed or not, with a predictor: each window and the whole scene equal `read_bands`'s."""
    options = dict(compression=compression, predictor=bool(compression), **layout)
    image = _scene(tmp_path / "scene.tif", planar=planar, **options)
    scene = open_tiff_scene(tmp_path / "scene.tif")
    whole = read_bands(tmp_path / "scene.tif", dtype=None)
    assert np.array_equal(whole, image)
    assert isinstance(scene, TiffScene) and scene.shape == whole.shape and scene.dtype == whole.dtype
    for top, bottom in WINDOWS:
        assert np.array_equal(scene[top:bottom, 40:150], whole[top:bottom, 40:150]), (top, bottom)
        assert np.array_equal(scene[top:bottom], whole[top:bottom])
    assert np.array_equal(scene[10:90, :, 1:3], whole[10:90, :, 1:3])
    assert np.array_equal(np.asarray(scene), whole)


@pytest.mark.parametrize("dtype,bands", [(np.uint8, 1), (np.uint8, 3), (np.int16, 2), (np.float32, 5),
                                         (np.float64, 1)])
def test_scenes_of_any_type_and_bands_are_read_in_their_type(tmp_path, dtype, bands):
    _scene(tmp_path / "scene.tif", dtype=dtype, bands=bands, tile=(32, 32), compression="zlib")
    scene = open_tiff_scene(tmp_path / "scene.tif")
    whole = read_bands(tmp_path / "scene.tif", dtype=None)
    assert scene.dtype == whole.dtype == dtype and scene.shape == whole.shape == (HEIGHT, WIDTH, bands)
    assert np.array_equal(scene[50:120, 7:99], whole[50:120, 7:99])


def test_the_rows_of_overlapping_windows_are_decoded_once(tmp_path, monkeypatch):
    """Windows going down the scene, each overlapping the one before: only the rows not held are
    decoded, whole tiles at a time."""
    image = _scene(tmp_path / "scene.tif", tile=(32, 32), compression="zlib")
    scene = open_tiff_scene(tmp_path / "scene.tif")
    decoded = []
    decode = scene._decode
    monkeypatch.setattr(scene, "_decode", lambda start, stop: decoded.append((start, stop)) or decode(start, stop))
    for top in (0, 40, 80):
        assert np.array_equal(scene[top:top + 50, 10:60], image[top:top + 50, 10:60])
    assert np.array_equal(scene[85:95], image[85:95])  # within the rows held: nothing decoded
    assert decoded == [(0, 64), (64, 96), (96, 133)]


def test_a_scene_goes_to_another_process_without_its_rows(tmp_path):
    """Sent to a DataLoader worker (pickled): the path and layout, not the rows read so far."""
    image = _scene(tmp_path / "scene.tif", tile=(32, 32))
    scene = open_tiff_scene(tmp_path / "scene.tif")
    scene[0:HEIGHT]
    sent = pickle.dumps(scene)
    assert len(sent) < 2000
    assert np.array_equal(pickle.loads(sent)[60:70, 5:9], image[60:70, 5:9])


def test_layouts_it_does_not_read_in_windows_are_left_to_the_whole_reader(tmp_path):
    """A page a band, a file of another kind: None (read whole as before)."""
    image = np.random.default_rng(0).integers(0, 9, (3, 40, 50)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "pages.tif", image, photometric="minisblack", metadata=None)
    assert open_tiff_scene(tmp_path / "pages.tif") is None
    assert np.array_equal(read_bands(tmp_path / "pages.tif"), np.moveaxis(image, 0, -1))
    np.save(tmp_path / "scene.npy", image)
    assert open_tiff_scene(tmp_path / "scene.npy") is None


def test_a_scene_of_other_channels_than_the_model_s_is_refused_naming_the_file(tmp_path):
    _scene(tmp_path / "scene.tif", bands=3, tile=(32, 32))
    with pytest.raises(DataError) as opened:
        open_tiff_scene(tmp_path / "scene.tif", channels=4)
    with pytest.raises(DataError) as read:
        read_bands(tmp_path / "scene.tif", channels=4)
    assert str(opened.value) == str(read.value) and "scene.tif: holds 3 channel(s)" in str(opened.value)


def test_a_damaged_tile_is_an_error_naming_the_file(tmp_path):
    _scene(tmp_path / "scene.tif", tile=(32, 32), compression="zlib")
    with tifffile.TiffFile(tmp_path / "scene.tif") as tiff:
        offset = tiff.pages[0].dataoffsets[12]  # a tile of the third row of tiles: rows 64 to 95
    with open(tmp_path / "scene.tif", "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * 64)
    scene = open_tiff_scene(tmp_path / "scene.tif")
    assert scene[:20].shape == (20, WIDTH, 4)
    with pytest.raises(DataError, match=r"scene\.tif: cannot read this TIFF file .*re-export it"):
        scene[60:70]


def test_windows_are_read_by_slices_of_rows_top_to_bottom(tmp_path):
    _scene(tmp_path / "scene.tif", tile=(32, 32))
    scene = open_tiff_scene(tmp_path / "scene.tif")
    for key in (5, (slice(0, 9), 3), slice(0, 40, 2)):
        with pytest.raises(TypeError, match="TiffScene"):
            scene[key]
    assert scene[200:300].shape == (0, WIDTH, 4) and scene[10:5, 0:3].shape == (0, 3, 4)


@pytest.mark.parametrize("dtype,bands", [(np.uint16, 4), (np.uint8, 1), (np.float32, 3)])
def test_the_picture_of_a_scene_read_in_windows_is_the_one_of_its_pixels(tmp_path, dtype, bands):
    image = _scene(tmp_path / "scene.tif", dtype=dtype, bands=bands, tile=(32, 32))
    if dtype == np.float32:
        image[5:9, 7:30] = np.nan
        tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig",
                         tile=(32, 32))
    assert np.array_equal(display_rgb(open_tiff_scene(tmp_path / "scene.tif")), display_rgb(image))


def test_a_scene_whose_file_changed_since_it_was_opened_is_an_error_naming_it(tmp_path):
    image = _scene(tmp_path / "scene.tif", tile=(32, 32))
    scene = open_tiff_scene(tmp_path / "scene.tif")
    assert np.array_equal(scene[:40], image[:40])
    tifffile.imwrite(tmp_path / "scene.tif", image[:100], photometric="minisblack", planarconfig="contig",
                     tile=(32, 32))
    with pytest.raises(DataError, match=r"scene\.tif: the file has changed since it was read from .*open it again"):
        scene[90:110]


@pytest.mark.parametrize("planar,layout", [("contig", dict(tile=(32, 64))), ("separate", dict(rowsperstrip=7))])
def test_a_scene_of_chosen_samples_gives_those_channels_and_decodes_only_their_planes(tmp_path, monkeypatch,
                                                                                       planar, layout):
    """with_samples((2, 0)): the windows of those samples, in that order; a scene stored band by band
    decodes only those bands' tiles or strips."""
    image = _scene(tmp_path / "scene.tif", planar=planar, compression="zlib", **layout)
    scene = open_tiff_scene(tmp_path / "scene.tif").with_samples((2, 0))
    assert scene.shape == (HEIGHT, WIDTH, 2) and scene.samples == (2, 0)
    for top, bottom in WINDOWS:
        assert np.array_equal(scene[top:bottom, 40:150], image[top:bottom, 40:150][:, :, [2, 0]]), (top, bottom)
    with tifffile.TiffFile(tmp_path / "scene.tif") as tiff:
        per_band = len(tiff.pages[0].dataoffsets) // (4 if planar == "separate" else 1)
    decoded = []
    segments = scene._segments

    def segments_read(start, stop):
        decoded.extend(segments(start, stop))
        return segments(start, stop)

    monkeypatch.setattr(scene, "_segments", segments_read)
    assert np.array_equal(np.asarray(scene), image[:, :, [2, 0]])
    assert len(decoded) == len(set(decoded)) == per_band * (2 if planar == "separate" else 1)
    for samples in ((4,), (1, 1), ()):
        with pytest.raises(ValueError, match="samples"):
            open_tiff_scene(tmp_path / "scene.tif").with_samples(samples)


def test_an_orthophoto_stored_as_jpeg_is_read_in_windows_as_pillow_reads_it_whole():
    """GDAL's JPEG in YCbCr with the tables shared in JPEGTables, tiled, and an internal mask (the
    fixture): every window holds the colours `read_image` and `read_bands` give of the whole."""
    pytest.importorskip("imagecodecs", reason="imagecodecs is not installed (pip install imagecodecs): tifffile "
                                              "decodes no JPEG without it")
    from segnext.data import read_image
    from segnext.data.tiff_scene import open_tiff_scene_as

    path = FIXTURES / "gdal_orthophoto.tif"
    picture = open_tiff_scene_as(path, "picture")
    whole = read_image(path)
    assert picture is not None and picture.rgb and picture.shape == whole.shape == (70, 90, 3)
    assert np.array_equal(read_bands(path, dtype=None), whole)
    for top, bottom in ((0, 20), (5, 50), (33, 70)):
        assert np.array_equal(picture[top:bottom, 7:80], whole[top:bottom, 7:80]), (top, bottom)


def test_a_scene_tifffile_cannot_decode_is_left_to_pillow(tmp_path, monkeypatch):
    """A compression tifffile has no codec for (JPEG or LZW without imagecodecs) found when the first
    rows are decoded: no TiffScene for a picture, which `read_image` (Pillow) reads whole."""
    from segnext.data import tiff_scene

    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((40, 50, 3), np.uint8), photometric="rgb", tile=(16, 16))
    assert tiff_scene.open_tiff_scene_as(tmp_path / "rgb.tif", "picture") is not None

    def no_codec(self, tifffile, start, stop):
        raise ValueError("<COMPRESSION.JPEG: 7> requires the 'imagecodecs' package")

    monkeypatch.setattr(tiff_scene.TiffScene, "_decoded", no_codec)
    assert tiff_scene.open_tiff_scene_as(tmp_path / "rgb.tif", "picture") is None
    with pytest.raises(DataError, match=r"rgb\.tif: cannot read this TIFF file \(.*imagecodecs"):
        open_tiff_scene(tmp_path / "rgb.tif")[:5]


GDAL_COMPRESSIONS = [("none", 1), ("deflate", 2), ("lzw", 2), ("zstd", 1), ("lerc", 1), ("packbits", 1), ("lzma", 1)]


@pytest.mark.parametrize("dtype,bands", [("uint8", 3), ("uint16", 4), ("int16", 2), ("float32", 5)])
@pytest.mark.parametrize("compression,predictor", GDAL_COMPRESSIONS)
def test_scenes_gdal_writes_are_read_in_windows_as_gdal_reads_them(tmp_path, dtype, bands, compression, predictor):
    """GeoTIFFs as GDAL writes them (rasterio), of each compression (with its horizontal or float
    predictor), interleaved or band by band, tiled or in strips: a TiffScene's windows and
    `read_bands` hold what GDAL reads (where imagecodecs decodes the compression)."""
    rasterio = pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]'): "
                                                      "GDAL's files untested")
    if compression in ("lzw", "zstd", "lerc", "lzma"):
        pytest.importorskip("imagecodecs", reason="imagecodecs is not installed (pip install imagecodecs): tifffile "
                                                  f"decodes no {compression} without it")
    height, width = 61, 83
    pixels = (np.random.default_rng(0).random((bands, height, width)) * 200).astype(dtype)
    predictor = 3 if predictor == 2 and dtype.startswith("float") else predictor
    for number, (interleave, blocks) in enumerate([("pixel", dict(tiled=True, blockxsize=32, blockysize=16)),
                                                   ("band", dict(tiled=True, blockxsize=16, blockysize=16)),
                                                   ("pixel", dict(tiled=False, blockysize=8)),
                                                   ("band", dict(tiled=False, blockysize=5))]):
        path = tmp_path / f"scene{number}.tif"
        with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=bands, dtype=dtype,
                           crs="EPSG:32633", transform=rasterio.Affine(1, 0, 500000, 0, -1, 4000000),
                           interleave=interleave, compress=compression, predictor=predictor, **blocks) as scene:
            scene.write(pixels)
        with rasterio.open(path) as scene:
            read_by_gdal = np.moveaxis(scene.read(), 0, -1)
        scene = open_tiff_scene(path)
        assert scene is not None and np.array_equal(read_bands(path, dtype=None), read_by_gdal), (interleave, blocks)
        for rows, columns in ((slice(0, 20), slice(5, 70)), (slice(13, 50), slice(0, width)), (slice(40, height),
                                                                                                  slice(60, 83))):
            assert np.array_equal(scene[rows, columns], read_by_gdal[rows, columns]), (interleave, blocks, rows)
