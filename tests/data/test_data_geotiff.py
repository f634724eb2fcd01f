"""segnext.data.geotiff: float bands written as a tiled GeoTIFF a band of rows at a time, each band
named, where the image lies (the label maps' and tiles' GeoTIFFs are tested with the commands that
write them)."""

from __future__ import annotations

import numpy as np
import pytest

from segnext.data import geotiff
from segnext.data.geotiff import TILE, write_bands_geotiff

tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): GeoTIFFs untested")

# A UTM zone 32N (EPSG:32632) georeference with 0.5 m pixels: scale, tie point, GeoKeys, their text.
TAGS = ((33550, 12, 3, (0.5, 0.5, 0.0)), (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 5600000.0, 0.0)),
        (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32632)),
        (34737, 2, 0, "WGS 84 / UTM zone 32N|"))


def _bands(image: np.ndarray, rows):
    top = 0
    for count in rows:
        yield image[:, top:top + count]
        top += count


def test_bands_of_any_rows_become_a_tiled_geotiff_of_named_bands(tmp_path):
    """Bands of uneven row counts (a row, less than a tile, more than one) make tiles of 256 whose
    image is the one given, float16 as asked, each band named (GDAL's description), in its place."""
    height, width = 2 * TILE + 85, TILE + 274
    image = np.random.default_rng(0).random((3, height, width), dtype=np.float32)
    rows = [7, 300, 1, 33, 200, height - 541]
    names = ["road", "water & <shore>", "Straßenbäume"]  # GDAL's own escaping, UTF-8 as GDAL writes it
    write_bands_geotiff(tmp_path / "probs.tif", _bands(image, rows), image.shape, np.float16, TAGS, names)
    with tifffile.TiffFile(tmp_path / "probs.tif") as written:
        page = written.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (TILE, TILE) and page.dtype == np.float16
        assert np.array_equal(page.asarray(), image.transpose(1, 2, 0).astype(np.float16))
        assert written.is_geotiff and page.geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
    try:
        import rasterio
    except ImportError:
        return
    with rasterio.open(tmp_path / "probs.tif") as raster:  # GDAL: the names, the place, the values
        assert raster.descriptions == tuple(names) and raster.crs.to_epsg() == 32632
        assert raster.transform.c == 500000.0 and raster.transform.a == 0.5
        assert np.array_equal(raster.read(), image.astype(np.float16).astype(np.float32))


def test_one_band_is_a_greyscale_geotiff(tmp_path):
    """One band (the confidence): a plain tiled greyscale TIFF of its type."""
    image = np.random.default_rng(1).random((1, 300, 20), dtype=np.float32)
    write_bands_geotiff(tmp_path / "confidence.tif", [image], image.shape, np.float32, TAGS, ["confidence"])
    with tifffile.TiffFile(tmp_path / "confidence.tif") as written:
        assert written.pages[0].is_tiled and np.array_equal(written.asarray(), image[0])
    try:
        import rasterio
    except ImportError:
        return
    with rasterio.open(tmp_path / "confidence.tif") as raster:
        assert raster.descriptions == ("confidence",) and np.array_equal(raster.read(), image)


def test_bands_beyond_4_gb_are_a_bigtiff(tmp_path, monkeypatch):
    """Tiles given one by one do not tell tifffile the image's size: above the classic TIFF's 4 GB of
    offsets the file is a BigTIFF (here with the threshold lowered), which GDAL reads as well."""
    monkeypatch.setattr(geotiff, "BIGTIFF_ABOVE", 1000)
    image = np.random.default_rng(2).random((2, 40, 30), dtype=np.float32)
    write_bands_geotiff(tmp_path / "big.tif", [image], image.shape, np.float16, TAGS, ["a", "b"])
    with tifffile.TiffFile(tmp_path / "big.tif") as written:
        assert written.is_bigtiff and np.array_equal(written.asarray(), image.transpose(1, 2, 0).astype(np.float16))
    monkeypatch.setattr(geotiff, "BIGTIFF_ABOVE", 10_000)
    write_bands_geotiff(tmp_path / "classic.tif", [image], image.shape, np.float16)
    assert not tifffile.TiffFile(tmp_path / "classic.tif").is_bigtiff
    try:
        import rasterio
    except ImportError:
        return
    with rasterio.open(tmp_path / "big.tif") as raster:
        assert raster.descriptions == ("a", "b") and raster.crs.to_epsg() == 32632


@pytest.mark.parametrize("rows, message", [
    ([10, 5], "bands of 15 rows for an image of shape"),                  # too few rows
    ([10, 300], r"a band of shape \(2, 300, 40\) below 10 rows"),         # too many
])
def test_bands_that_do_not_make_the_image_are_an_error_and_leave_no_file(tmp_path, rows, message):
    image = np.zeros((2, 300, 40), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        write_bands_geotiff(tmp_path / "probs.tif", _bands(np.zeros((2, 310, 40), np.float32), rows), image.shape,
                            np.float16)
    with pytest.raises(ValueError, match=r"probs\.tif: a band of shape \(2, 300, 39\)"):
        write_bands_geotiff(tmp_path / "probs.tif", [image[:, :, 1:]], image.shape, np.float16)
    with pytest.raises(ValueError, match="1 band names for 2 bands"):
        write_bands_geotiff(tmp_path / "probs.tif", [image], image.shape, np.float16, band_names=["one"])
    assert list(tmp_path.iterdir()) == []


def _masked_scene(path, image: np.ndarray, valid: np.ndarray, overviews: bool = False, **options) -> None:
    """`image` with `valid` as its internal mask, as GDAL writes one (GDAL_TIFF_INTERNAL_MASK: a page
    of NewSubfileType and PhotometricInterpretation "transparency mask" after the image's); with
    `overviews`, a reduced image and its mask after them, as in a COG."""
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(image, tile=(16, 16), compression="zlib", **options)
        tiff.write(valid, photometric=4, subfiletype=4, tile=(16, 16))  # bits, uncompressed (as tifffile 2023 writes)
        if overviews:
            tiff.write(image[::2, ::2], subfiletype=1, tile=(16, 16), **options)
            tiff.write(np.ones_like(valid[::2, ::2]), photometric=4, subfiletype=5, tile=(16, 16))


def test_no_data_is_where_gdal_masks_a_scene(tmp_path):
    """no_data_of follows GDAL's choice of a dataset's mask: an internal mask (its reduced masks left
    aside), else a .msk file beside the scene, else the "no data" value in every band, else the alpha
    band at 0 (grey and alpha, RGB and alpha); else None, as for a file of another kind."""
    from PIL import Image

    from segnext.data.geotiff import no_data_of

    rng = np.random.default_rng(0)
    image = rng.integers(1, 250, (50, 60, 3)).astype(np.uint8)
    valid = np.zeros((50, 60), dtype=bool)
    valid[5:45, 10:55] = True
    image[:, :3] = 0  # "no data" by value, where the mask holds data too: the mask wins
    nodata = [(42113, "s", 0, "0", True)]
    _masked_scene(tmp_path / "masked.tif", image, valid, overviews=True, photometric="rgb", extratags=nodata)
    assert np.array_equal(no_data_of(tmp_path / "masked.tif"), ~valid)
    tifffile.imwrite(tmp_path / "beside.tif", image, photometric="rgb", extratags=nodata)
    tifffile.imwrite(tmp_path / "beside.tif.msk", valid.astype(np.uint8) * 255, photometric="minisblack")
    assert np.array_equal(no_data_of(tmp_path / "beside.tif"), ~valid)
    tifffile.imwrite(tmp_path / "value.tif", image, photometric="rgb", extratags=nodata)
    expected = np.zeros((50, 60), dtype=bool)
    expected[:, :3] = True
    assert np.array_equal(no_data_of(tmp_path / "value.tif"), expected)
    rgba = np.dstack([image, valid.astype(np.uint8) * 255])
    for name, pixels, options in (("rgba.tif", rgba, dict(photometric="rgb", extrasamples=[2])),
                                  ("planar.tif", np.moveaxis(rgba, -1, 0), dict(photometric="rgb", extrasamples=[1],
                                                                                planarconfig="separate")),
                                  ("grey.tif", rgba[:, :, 2:], dict(photometric="minisblack", extrasamples=[2]))):
        tifffile.imwrite(tmp_path / name, pixels, tile=(16, 16), **options)
        assert np.array_equal(no_data_of(tmp_path / name), ~valid), name
    tifffile.imwrite(tmp_path / "rgba_value.tif", rgba, photometric="rgb", extrasamples=[2], extratags=nodata)
    assert np.array_equal(no_data_of(tmp_path / "rgba_value.tif"), expected)  # the value before the alpha
    tifffile.imwrite(tmp_path / "four.tif", rgba, photometric="minisblack", planarconfig="contig")  # no alpha
    tifffile.imwrite(tmp_path / "plain.tif", image, photometric="rgb")
    Image.fromarray(rgba).save(tmp_path / "photo.png")
    for name in ("four.tif", "plain.tif", "photo.png"):
        assert no_data_of(tmp_path / name) is None, name


def test_a_mask_of_another_size_is_an_error_naming_it(tmp_path):
    from segnext.data import DataError
    from segnext.data.geotiff import no_data_of

    tifffile.imwrite(tmp_path / "scene.tif", np.ones((50, 60, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "scene.tif.msk", np.ones((40, 60), np.uint8), photometric="minisblack")
    with pytest.raises(DataError, match=r"scene\.tif\.msk: a mask of shape \(40, 60\) for an image of 50 rows and 60"):
        no_data_of(tmp_path / "scene.tif")
    (tmp_path / "scene.tif.msk").write_bytes(b"not a TIFF")
    with pytest.raises(DataError, match=r"scene\.tif\.msk: cannot read this mask"):
        no_data_of(tmp_path / "scene.tif")


def test_the_mask_of_an_orthophoto_gdal_wrote():
    """The fixture GDAL wrote (JPEG in YCbCr, its footprint in an internal mask): no data outside it."""
    import importlib.util
    from pathlib import Path

    from segnext.data.geotiff import no_data_of

    fixtures = Path(__file__).parents[1] / "fixtures"
    spec = importlib.util.spec_from_file_location("make_gdal_orthophoto", fixtures / "make_gdal_orthophoto.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    expected = np.ones((maker.HEIGHT, maker.WIDTH), dtype=bool)
    expected[maker.FOOTPRINT] = False
    assert np.array_equal(no_data_of(fixtures / "gdal_orthophoto.tif"), expected)


def test_a_pixel_s_ground_area_is_known_in_projected_metres_or_feet():
    """GDAL's GeoKeys: a UTM zone (its unit named or not), a unit of feet, a rotated transformation;
    none for longitude and latitude, Web Mercator (its metres grow with the latitude), an unknown
    unit, control points, a file of another kind."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import tempfile
    from pathlib import Path

    from segnext.data.geotiff import pixel_ground_area

    def area(keys, scale=(0.5, 0.5, 0.0), tiepoints=(0, 0, 0, 500000.0, 4000000.0, 0.0), matrix=None):
        directory = [1, 1, 0, len(keys)] + [number for key, value in keys for number in (key, 0, 1, value)]
        tags = [(34735, "H", len(directory), tuple(directory), True)]
        tags += [(34264, "d", 16, matrix, True)] if matrix else [(33550, "d", 3, scale, True),
                                                               (33922, "d", len(tiepoints), tiepoints, True)]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scene.tif"
            tifffile.imwrite(path, np.zeros((4, 4), np.uint8), extratags=tags)
            return pixel_ground_area(path)

    utm = [(1024, 1), (3072, 32633)]
    assert area(utm) == 0.25 and area(utm + [(3076, 9001)], scale=(2.0, 3.0, 0.0)) == 6.0
    assert area([(1024, 1), (3072, 2263), (3076, 9002)], scale=(1.0, 1.0, 0.0)) == pytest.approx(0.3048 ** 2)
    rotated = (0.3, 0.4, 0, 1000.0, 0.4, -0.3, 0, 2000.0, 0, 0, 0, 0, 0, 0, 0, 1.0)
    assert area(utm, matrix=rotated) == pytest.approx(0.25)
    assert area([(1024, 2), (2048, 4326)], scale=(1e-5, 1e-5, 0.0)) is None  # degrees
    assert area([(1024, 1), (3072, 3857), (3076, 9001)]) is None  # Web Mercator
    assert area([(1024, 1), (3072, 2056)]) is None  # a unit not named, not a UTM zone
    assert area([(1024, 1), (3072, 32633), (3076, 9037)]) is None  # a unit of no known length here
    assert area(utm, tiepoints=(0, 0, 0, 1.0, 2.0, 0, 10, 10, 0, 3.0, 4.0, 0)) is None  # control points
    assert pixel_ground_area("photo.png") is None


def test_the_ground_area_of_a_row_of_longitude_and_latitude_is_the_ellipsoid_s(tmp_path):
    """In degrees on WGS 84 each row's pixels have the area of the ellipsoid between the row's edges:
    the whole globe at 1 degree sums to WGS 84's surface, a row at the equator to the integral of the
    ellipsoid's area element; a tie point at another pixel, a transformation, give the same; another
    datum or unit, none. Projected: every row the pixel's area."""
    from segnext.data.geotiff import row_ground_areas

    def scene(name, keys, scale=(1.0, 1.0, 0.0), tiepoint=(0, 0, 0, -180.0, 90.0, 0.0), matrix=None, shape=(180, 360)):
        directory = [1, 1, 0, len(keys)] + [number for key, value in keys for number in (key, 0, 1, value)]
        tags = [(34735, "H", len(directory), tuple(directory), True)]
        tags += [(34264, "d", 16, matrix, True)] if matrix else [(33550, "d", 3, scale, True),
                                                               (33922, "d", 6, tiepoint, True)]
        tifffile.imwrite(tmp_path / name, np.zeros(shape, np.uint8), extratags=tags)
        return tmp_path / name

    wgs84 = [(1024, 2), (2048, 4326)]
    globe = row_ground_areas(scene("globe.tif", wgs84), 180)
    assert globe.sum() * 360 == pytest.approx(5.10065621724e14, rel=1e-12)  # WGS 84's surface, m2
    assert np.array_equal(globe, globe[::-1]) and globe[89] > globe[45] > globe[0] > 0
    flattening = 1 / 298.257223563
    squared_eccentricity = flattening * (2 - flattening)
    latitude = np.radians(np.linspace(0.0, 1.0, 100001))
    sine_squared = np.sin(latitude) ** 2
    meridian = 6378137.0 * (1 - squared_eccentricity) / (1 - squared_eccentricity * sine_squared) ** 1.5
    normal = 6378137.0 / np.sqrt(1 - squared_eccentricity * sine_squared)
    element = meridian * normal * np.cos(latitude)
    integral = np.sum((element[1:] + element[:-1]) / 2 * np.diff(latitude)) * np.radians(1.0)
    assert globe[89] == pytest.approx(integral, rel=1e-9)  # the row from 1 degree north to the equator
    tied_lower = scene("tied.tif", wgs84, tiepoint=(0, 10, 0, -180.0, 80.0, 0.0))  # pixel row 10 at 80 N
    assert np.allclose(row_ground_areas(tied_lower, 180), globe)
    matrix = (1.0, 0, 0, -180.0, 0, -1.0, 0, 90.0, 0, 0, 0, 0, 0, 0, 0, 1.0)
    assert np.allclose(row_ground_areas(scene("matrix.tif", wgs84, matrix=matrix), 180), globe)
    assert np.allclose(row_ground_areas(scene("etrs89.tif", [(1024, 2), (2048, 4258)]), 180), globe, rtol=1e-8)
    assert row_ground_areas(scene("tokyo.tif", [(1024, 2), (2048, 4301)]), 180) is None  # another ellipsoid
    assert row_ground_areas(scene("radians.tif", wgs84 + [(2054, 9101)]), 180) is None
    assert row_ground_areas(scene("unnamed.tif", [(1024, 2)]), 180) is None
    utm = scene("utm.tif", [(1024, 1), (3072, 32633)], scale=(0.5, 0.5, 0.0), tiepoint=(0, 0, 0, 5e5, 4e6, 0.0),
                shape=(4, 4))
    assert np.array_equal(row_ground_areas(utm, 4), np.full(4, 0.25))


def test_no_data_where_gives_a_mask_only_where_there_is_no_data(tmp_path, monkeypatch):
    """The dataset tools' question: the mask where the image holds some no data, None for an image of
    data everywhere, for a file of another kind, and without tifffile."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data import geotiff

    rgba = np.full((6, 8, 4), 200, np.uint8)
    tifffile.imwrite(tmp_path / "full.tif", rgba, photometric="rgb", extrasamples=[2])
    rgba[:2, :, 3] = 0
    tifffile.imwrite(tmp_path / "edge.tif", rgba, photometric="rgb", extrasamples=[2])
    assert geotiff.no_data_where(tmp_path / "full.tif") is None and geotiff.no_data_where("photo.png") is None
    assert geotiff.no_data_where(tmp_path / "edge.tif").sum() == 16
    monkeypatch.setattr(geotiff, "find_spec", lambda name: None)
    assert geotiff.no_data_where(tmp_path / "edge.tif") is None


# EPSG:32633 (WGS 84 / UTM zone 33N) as ESRI writes a .prj (no EPSG code in it) and as GDAL writes
# WKT 1 (its code the outermost AUTHORITY)
ESRI_UTM33 = ('PROJCS["WGS_1984_UTM_Zone_33N",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
              '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION['
              '"Transverse_Mercator"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER['
              '"Central_Meridian",15.0],PARAMETER["Scale_Factor",0.9996],PARAMETER["Latitude_Of_Origin",0.0],UNIT['
              '"Meter",1.0]]')
GDAL_UTM33 = ('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
              'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0],UNIT["degree",'
              '0.0174532925199433],AUTHORITY["EPSG","4326"]],PROJECTION["Transverse_Mercator"],PARAMETER['
              '"latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],PARAMETER['
              '"false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS['
              '"Easting",EAST],AXIS["Northing",NORTH],AUTHORITY["EPSG","32633"]]')


def _jpeg(path, height=40, width=50):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("name", ["scene.jgw", "scene.jpgw", "scene.wld", "scene.JGW"])
def test_a_world_file_is_found_by_gdal_s_names(tmp_path, name):
    image = _jpeg(tmp_path / "scene.jpg")
    assert geotiff.world_file_of(image) is None and geotiff.georeference(image) == ()
    (tmp_path / name).write_text("0.5\n0\n0\n-0.5\n500000.25\n6000000.75\n")
    assert geotiff.world_file_of(image) == tmp_path / name
    scale, tiepoint, keys = geotiff.georeference(image)
    # the world file names the top left pixel's centre; the tie point is its corner
    assert scale[3] == (0.5, 0.5, 0.0) and tiepoint[3] == (0.0, 0.0, 0.0, 500000.0, 6000001.0, 0.0)
    assert keys[3] == (1, 1, 0, 1, 1025, 0, 1, 1)  # a pixel is an area; no coordinate system declared


def test_a_tiff_without_geotiff_tags_takes_its_tfw(tmp_path):
    tifffile.imwrite(tmp_path / "scan.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    assert geotiff.georeference(tmp_path / "scan.tif") == ()
    (tmp_path / "scan.tfw").write_text("2\n0\n0\n-2\n1001\n2999\n")
    assert geotiff.georeference(tmp_path / "scan.tif")[1][3] == (0.0, 0.0, 0.0, 1000.0, 3000.0, 0.0)


@pytest.mark.parametrize("text", ["0.5\n0\n0\n-0.5\n500000\n", "0.5\n0\n0\nminus\n1\n2\n", "0\n0\n0\n-0.5\n1\n2\n"])
def test_a_world_file_of_other_than_six_numbers_or_no_area_is_an_error_naming_it(tmp_path, text):
    image = _jpeg(tmp_path / "scene.jpg")
    (tmp_path / "scene.jgw").write_text(text)
    with pytest.raises(geotiff.DataError, match=r"scene\.jgw: (a world file holds six numbers|this world file's pixels "
                                                r"have no area)"):
        geotiff.georeference(image)


@pytest.mark.parametrize("rotated", [False, True])
def test_a_world_file_s_place_is_the_one_gdal_reads(tmp_path, rotated):
    """The label map written with the tags of a JPEG's world file lies, for GDAL, where GDAL puts the
    JPEG itself (pixel scale, or a transformation when rotated), in the CRS of its ESRI .prj."""
    rasterio = pytest.importorskip("rasterio", reason="rasterio is not installed (pip install rasterio): GDAL's "
                                                      "reading of world files untested")
    image = _jpeg(tmp_path / "ortho.jpg")
    (tmp_path / "ortho.jgw").write_text(f"0.5\n{0.1 if rotated else 0}\n{0.2 if rotated else 0}\n-0.5\n500000.25\n"
                                        f"6000000.75\n")
    (tmp_path / "ortho.prj").write_text(ESRI_UTM33)
    geotiff.write_label_geotiff(tmp_path / "labels.tif", np.zeros((40, 50), np.uint8),
                                tags=geotiff.georeference(image))
    with rasterio.open(image) as source, rasterio.open(tmp_path / "labels.tif") as written:
        assert written.transform.almost_equals(source.transform) and written.crs.to_epsg() == 32633
        assert source.crs is None  # GDAL does not read ESRI's .prj beside a JPEG: the label map names it
    expected = 0.25 + (0.02 if rotated else 0.0)
    assert geotiff.pixel_ground_area(image) == pytest.approx(expected)


def test_the_coordinate_system_beside_an_image_is_read_without_rasterio(tmp_path, monkeypatch):
    """GDAL's .aux.xml and a .prj of WKT 1 or 2 that names its EPSG code give it without rasterio;
    ESRI's WKT (no code) does not; a geographic system is told from a projected one."""
    real_find_spec = geotiff.find_spec
    monkeypatch.setattr(geotiff, "find_spec", lambda name: None if name == "rasterio" else real_find_spec(name))
    image = _jpeg(tmp_path / "scene.png")
    (tmp_path / "scene.pgw").write_text("1\n0\n0\n-1\n0.5\n9.5\n")
    assert geotiff.sidecar_crs(image) is None
    (tmp_path / "scene.prj").write_text(ESRI_UTM33)
    assert geotiff.sidecar_crs(image) is None and geotiff.pixel_ground_area(image) is None
    (tmp_path / "scene.prj").write_text(GDAL_UTM33 + "\n")
    assert geotiff.sidecar_crs(image) == (32633, True) and geotiff.pixel_ground_area(image) == 1.0
    (tmp_path / "scene.prj").write_text('GEOGCRS["WGS 84",DATUM["World Geodetic System 1984",ELLIPSOID["WGS 84",'
                                        '6378137,298.257223563]],CS[ellipsoidal,2],ID["EPSG",4326]]')
    assert geotiff.sidecar_crs(image) == (4326, False) and geotiff.pixel_ground_area(image) is None
    (tmp_path / "scene.png.aux.xml").write_text(f'<PAMDataset>\n  <SRS dataAxisToSRSAxisMapping="1,2">'
                                                f'{GDAL_UTM33.replace(chr(34), "&quot;")}</SRS>\n</PAMDataset>\n')
    assert geotiff.sidecar_crs(image) == (32633, True)  # GDAL's own file first
    keys = geotiff.georeference(image)[-1][3]
    assert keys == (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
