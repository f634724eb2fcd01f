"""`segnext data tile`: large images and their labels cut into tiles, written as a folder dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segnext.cli.main import main
from segnext.data import build_dataset
from segnext.data.tiles import tile_dataset, tile_origins


def test_tiles_cover_the_image_the_last_ones_aligned_to_its_far_edges():
    assert tile_origins(1000, 1300, 512, 64) == [(y, x) for y in (0, 448, 488) for x in (0, 448, 788)]
    assert tile_origins(512, 512, 512) == [(0, 0)]
    assert tile_origins(300, 200, 512) == [(0, 0)]  # smaller than a tile: one, padded
    with pytest.raises(ValueError, match="tiles of 64 pixels need an overlap from 0 to 63, got 64"):
        tile_dataset("folder", "anywhere", "elsewhere", size=64, overlap=64)


def _scenes(root, reduce_zero_label=False):
    """Two aerial scenes (TIFF images and masks) of a folder dataset, stored with 0 = no label when
    `reduce_zero_label`."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["ground", "building"],
                                                   "reduce_zero_label": reduce_zero_label}))
    rng = np.random.default_rng(0)
    scenes = {}
    for name, (height, width) in {"austin1": (100, 130), "vienna2": (30, 20)}.items():
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = rng.integers(1 if reduce_zero_label else 0, 3 if reduce_zero_label else 2, (height, width),
                            dtype=np.uint8)
        mask[:, :10] = 0 if reduce_zero_label else 255
        Image.fromarray(image).save(root / "images" / "train" / f"{name}.tif")
        Image.fromarray(mask).save(root / "masks" / "train" / f"{name}.tif")
        scenes[name] = (image, mask.astype(np.int64) - 1 if reduce_zero_label else mask)
    return scenes


def test_a_folder_of_scenes_becomes_a_folder_dataset_of_tiles(tmp_path, capsys):
    scenes = _scenes(tmp_path / "aerial", reduce_zero_label=True)
    out = tmp_path / "tiles"
    assert main(["data", "tile", "folder", str(tmp_path / "aerial"), str(out), "--size", "64", "--overlap", "16",
                 "--workers", "0", "--no-progress"]) == 0
    assert "folder tiles: 2 image(s) tiled, 0 already done, 0 failed" in capsys.readouterr().out
    tiles = build_dataset("folder", out, "train")
    names = [name.rsplit("/", 1)[-1] for name in tiles.image_paths]
    assert names == sorted(f"austin1_y{y}_x{x}.png" for y in (0, 36) for x in (0, 48, 66)) + ["vienna2_y0_x0.png"]
    assert json.loads((out / "classes.json").read_text())["classes"] == ["ground", "building"]
    image, ids = scenes["austin1"]
    ids = np.where(ids < 0, 255, ids)  # stored 0: no label
    sample = tiles[names.index("austin1_y36_x48.png")]
    assert np.array_equal(sample["image"], image[36:100, 48:112])
    assert np.array_equal(sample["label"], ids[36:100, 48:112])
    small = tiles[names.index("vienna2_y0_x0.png")]  # padded: image 0, no label
    assert small["image"].shape == (64, 64, 3) and not small["image"][30:].any() and (small["label"][30:] == 255).all()
    # Each scene is a group: `data split` holds out whole scenes.
    assert main(["data", "split", "folder", str(out), "--hold-out", "vienna2"]) == 0
    assert len(build_dataset("folder", out, "train_heldout")) == 1
    # Done scenes are skipped; --overwrite tiles them again; --drop-unlabelled leaves empty tiles out.
    assert main(["data", "tile", "folder", str(tmp_path / "aerial"), str(out), "--size", "64", "--overlap", "16",
                 "--workers", "0", "--no-progress"]) == 0
    assert "0 image(s) tiled, 2 already done" in capsys.readouterr().out
    report = tile_dataset("folder", tmp_path / "aerial", tmp_path / "narrow", size=8, drop_unlabelled=True,
                          workers=0, progress=False)
    assert report.converted == 2 and not report.failures
    assert not any(name.endswith("_x0.png") for name in build_dataset("folder", tmp_path / "narrow", "train")
                   .image_paths)  # the first 10 columns hold no label: the tiles at x 0 are left out


def test_bands_are_tiled_as_arrays_of_their_own_type(tmp_path):
    root = tmp_path / "fields"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "water"]}))
    bands = np.random.default_rng(1).integers(0, 4000, (40, 50, 6), dtype=np.uint16)
    np.save(root / "images" / "train" / "t.npy", bands)
    Image.fromarray((bands[:, :, 5] > 2000).astype(np.uint8)).save(root / "labels" / "train" / "t.png")
    report = tile_dataset("folder", root, tmp_path / "out", size=32, channels=6, workers=0, progress=False)
    assert report.converted == 1
    tile = np.load(tmp_path / "out" / "images" / "train" / "t_y8_x18.npy")
    assert tile.dtype == np.uint16 and np.array_equal(tile, bands[8:40, 18:50])
    assert len(build_dataset("folder", tmp_path / "out", "train", channels=6)) == 4
    failed = tile_dataset("folder", root, tmp_path / "wrong", size=32, channels=4, workers=0, progress=False)
    assert "t.npy: holds 6 channel(s), and the model takes 4" in failed.failures[0]
    with pytest.raises(ValueError, match="the tiles are written beside their source"):
        tile_dataset("folder", root, root, size=32)


def test_16_bit_colour_read_as_bands_is_tiled_at_all_its_bits(tmp_path, capsys):
    """`data tile --bands`: a 16-bit RGB scene's tiles keep its 16 bits (arrays of its type); read as
    8-bit RGB they would be PNGs of the top byte."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: no 16-bit colour PNG to read")
    root = tmp_path / "scenes"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["land", "water"]}))
    colour = np.random.default_rng(2).integers(1024, 1280, (40, 50, 3), dtype=np.uint16)
    cv2.imwrite(str(root / "images" / "train" / "s.png"), colour[:, :, ::-1])
    Image.fromarray((colour[:, :, 2] > 1150).astype(np.uint8)).save(root / "labels" / "train" / "s.png")
    assert main(["data", "tile", "folder", str(root), str(tmp_path / "out"), "--size", "32", "--bands",
                 "--workers", "0", "--no-progress"]) == 0
    assert f"segnext data preview folder {tmp_path / 'out'} --bands`" in capsys.readouterr().out
    tile = np.load(tmp_path / "out" / "images" / "train" / "s_y8_x18.npy")
    assert tile.dtype == np.uint16 and np.array_equal(tile, colour[8:40, 18:50])
    assert len(build_dataset("folder", tmp_path / "out", "train", bands=True)) == 4


# A scene's GeoTIFF tags in UTM zone 32N (EPSG:32632), 0.5 m pixels: scale, tie point, GeoKeys, their text.
GEO_TAGS = [(33550, 12, 3, (0.5, 0.5, 0.0)), (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 5600000.0, 0.0)),
            (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32632)),
            (34737, 2, 0, "WGS 84 / UTM zone 32N|")]


def test_a_tile_keeps_its_place_on_the_ground():
    from segnext.data.geotiff import tile_georeference

    tags = dict((code, value) for code, _, _, value in tile_georeference(GEO_TAGS, 36, 48))
    assert tags[33922] == (0.0, 0.0, 0.0, 500024.0, 5599982.0, 0.0)  # 48 columns east, 36 rows south
    assert tags[33550] == (0.5, 0.5, 0.0) and tags[34735] == GEO_TAGS[2][3] and tags[34737] == GEO_TAGS[3][3]
    # A tie point away from pixel (0, 0) is moved to the tile's (0, 0).
    away = [GEO_TAGS[0], (33922, 12, 6, (10.0, 20.0, 0.0, 500005.0, 5599990.0, 0.0))]
    assert dict((code, value) for code, _, _, value in tile_georeference(away, 36, 48))[33922] == \
        (0.0, 0.0, 0.0, 500024.0, 5599982.0, 0.0)
    # Control points (several tie points, no scale) keep their ground coordinates at pixels shifted.
    points = [(33922, 12, 12, (0, 0, 0, 1.0, 2.0, 0, 100, 50, 0, 3.0, 4.0, 0))]
    assert tile_georeference(points, 36, 48)[0][3] == (-48, -36, 0, 1.0, 2.0, 0, 52, 14, 0, 3.0, 4.0, 0)
    # A transformation matrix (here rotated and sheared): its translation is where pixel (y, x) was.
    matrix = (0.5, 0.1, 0.0, 1000.0, 0.2, -0.5, 0.0, 2000.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    moved = np.array(tile_georeference([(34264, 12, 16, matrix)], 36, 48)[0][3]).reshape(4, 4)
    original = np.array(matrix).reshape(4, 4)
    for column, row in [(0, 0), (7, 3)]:
        assert np.allclose(moved @ [column, row, 0, 1], original @ [column + 48, row + 36, 0, 1])


def test_the_tiles_of_a_geotiff_scene_are_geotiffs_that_keep_their_place(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): "
                                                      "georeferenced tiles untested")
    root = tmp_path / "fields"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "water"]}))
    bands = np.random.default_rng(2).integers(0, 4000, (100, 130, 4), dtype=np.uint16)
    extratags = [(*tag, True) for tag in GEO_TAGS]
    tifffile.imwrite(root / "images" / "train" / "scene.tif", bands, photometric="minisblack", planarconfig="contig",
                     extratags=extratags)
    rgb = bands[:, :, :3].astype(np.uint8)
    tifffile.imwrite(root / "images" / "train" / "photo.tif", rgb, photometric="rgb", extratags=extratags)
    for name in ("scene", "photo"):
        Image.fromarray((bands[:, :, 3] > 2000).astype(np.uint8)).save(root / "labels" / "train" / f"{name}.png")
    (root / "images" / "train" / "photo.tif").rename(tmp_path / "photo.tif")  # tiled on its own below

    assert main(["data", "tile", "folder", str(root), str(tmp_path / "out"), "--size", "64", "--overlap", "16",
                 "--channels", "4", "--workers", "0", "--no-progress"]) == 0
    assert "1 of them georeferenced scene(s): their tiles are GeoTIFFs" in capsys.readouterr().out
    path = tmp_path / "out" / "images" / "train" / "scene_y36_x48.tif"
    with tifffile.TiffFile(path) as written:
        page = written.pages[0]
        assert written.is_geotiff and page.geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
        assert page.geotiff_tags["ModelTiepoint"] == [0, 0, 0, 500024.0, 5599982.0, 0.0]
        assert np.array_equal(page.asarray(), bands[36:100, 48:112])  # the scene's own type, every band
    tiles = build_dataset("folder", tmp_path / "out", "train", channels=4)
    assert len(tiles) == 6 and all(name.endswith(".tif") for name in tiles.image_paths)
    assert np.array_equal(tiles[tiles.image_paths.index(str(path))]["image"], bands[36:100, 48:112])
    try:
        import rasterio
    except ImportError:  # optional: GDAL's own reading, where it is installed
        rasterio = None
    if rasterio is not None:  # GDAL puts the tile 24 m east and 18 m south of the scene's corner
        with rasterio.open(path) as raster:
            assert raster.crs.to_epsg() == 32632 and tuple(raster.transform)[:6] == (0.5, 0, 500024.0, 0, -0.5,
                                                                                     5599982.0)
    # An RGB GeoTIFF: RGB GeoTIFF tiles, read as the RGB images of a folder dataset.
    (tmp_path / "photo.tif").rename(root / "images" / "train" / "photo.tif")
    (root / "images" / "train" / "scene.tif").unlink()
    (root / "labels" / "train" / "scene.png").unlink()
    tile_dataset("folder", root, tmp_path / "rgb", size=64, workers=0, progress=False)
    rgb_tiles = build_dataset("folder", tmp_path / "rgb", "train")
    assert len(rgb_tiles) == 6 and np.array_equal(rgb_tiles[5]["image"], rgb[36:100, 66:130])
    with tifffile.TiffFile(tmp_path / "rgb" / "images" / "train" / "photo_y36_x66.tif") as written:
        assert written.pages[0].geotiff_tags["ModelTiepoint"] == [0, 0, 0, 500033.0, 5599982.0, 0.0]
    # A PNG orthophoto with a world file (and its coordinate system in a .prj): GeoTIFF tiles in its place.
    (root / "images" / "train" / "photo.tif").unlink()
    Image.fromarray(rgb).save(root / "images" / "train" / "photo.png")
    (root / "images" / "train" / "photo.pgw").write_text("0.5\n0\n0\n-0.5\n500000.25\n5599999.75\n")
    (root / "images" / "train" / "photo.prj").write_text('PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84"],'
                                                         'AUTHORITY["EPSG","32632"]]')
    tile_dataset("folder", root, tmp_path / "world", size=64, workers=0, progress=False)
    with tifffile.TiffFile(tmp_path / "world" / "images" / "train" / "photo_y36_x66.tif") as written:
        assert written.pages[0].geotiff_tags["ModelTiepoint"] == [0, 0, 0, 500033.0, 5599982.0, 0.0]
        assert written.pages[0].geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
        assert np.array_equal(written.pages[0].asarray(), rgb[36:100, 66:130])


def test_tiff_scenes_and_labels_are_tiled_from_windows_of_their_files(tmp_path, monkeypatch):
    """TIFF scenes (four bands, and RGB) and TIFF label maps are read a row of tiles at a time (the
    whole-image readers patched to fail): the tiles are those of the files read whole, to the byte."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data import tiles

    root = tmp_path / "fields"
    for folder in ("images/train", "labels/train", "images/val", "labels/val"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["field", "water", "road"]}))
    rng = np.random.default_rng(3)
    bands = rng.integers(0, 4000, (150, 170, 4), dtype=np.uint16)
    tifffile.imwrite(root / "images" / "train" / "scene.tif", np.moveaxis(bands, -1, 0), photometric="minisblack",
                     planarconfig="separate", tile=(32, 32), compression="zlib")
    label = rng.integers(0, 3, (150, 170), dtype=np.uint8)
    label[:20] = 255
    tifffile.imwrite(root / "labels" / "train" / "scene.tif", label, photometric="minisblack", rowsperstrip=5)
    tifffile.imwrite(root / "images" / "val" / "photo.tif", bands[:, :, :3].astype(np.uint8), photometric="rgb",
                     tile=(16, 16))
    colours = np.zeros((3, 256), dtype=np.uint16)
    tifffile.imwrite(root / "labels" / "val" / "photo.tif", label, photometric="palette", colormap=colours)

    def tiled(out, channels):  # the four-band scene for a model of four channels, the photo for an RGB one
        tile_dataset("folder", root, tmp_path / out, size=64, overlap=8, split="train" if channels == 4 else "val",
                     channels=channels, workers=0, progress=False, drop_unlabelled=True)
        return {path.relative_to(tmp_path / out): path.read_bytes()
                for path in sorted((tmp_path / out).rglob("*")) if path.is_file()}

    with monkeypatch.context() as whole:
        whole.setattr(tiles, "_read_in_windows", lambda *args, **kwargs: None)
        expected = {channels: tiled(f"whole{channels}", channels) for channels in (4, 3)}
    for reader in ("read_bands", "read_image", "read_label"):
        monkeypatch.setattr(tiles, reader, lambda *args, **kwargs: pytest.fail("read whole"))
    for channels in (4, 3):
        written = tiled(f"windows{channels}", channels)
        assert written.keys() == expected[channels].keys() and written == expected[channels]
    assert any(name.name.startswith("scene_y86") for name in expected[4])
    assert any(name.name.startswith("photo_y86") for name in expected[3])


def test_where_a_scene_holds_no_data_its_pixels_are_unlabelled_and_its_empty_tiles_left_out(tmp_path, capsys):
    """An RGBA orthophoto (its outside alpha 0) whose label map gives the outside a class (as rasterized
    polygons with a background do), and a scene of bands with a "no data" value: the outside is 255 in
    the tiles, the tiles of only no data are left out, RGB tiles carry the outside as their alpha band
    and tiles of bands the scene's value (GDAL sees both); --label-no-data keeps the label map."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data.geotiff import GDAL_NODATA, no_data_of

    root = tmp_path / "ortho"
    for folder in ("images/train", "labels/train", "images/val", "labels/val"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["background", "roof"]}))
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    outside = np.zeros((100, 130), dtype=bool)
    outside[:, 70:] = outside[:40, :] = True  # the top row of tiles and the last two columns: no data
    label = (rng.random((100, 130)) < 0.3).astype(np.uint8)  # background everywhere outside too
    extratags = [(*tag, True) for tag in GEO_TAGS]
    tifffile.imwrite(root / "images" / "train" / "ortho.tif", np.dstack([rgb, np.where(outside, 0, 255)
                                                                         .astype(np.uint8)]),
                     photometric="rgb", extrasamples=[2], tile=(16, 16), extratags=extratags)
    Image.fromarray(label).save(root / "labels" / "train" / "ortho.png")
    bands = rng.integers(1, 4000, (100, 130, 4), dtype=np.uint16)
    bands[outside] = 0
    tifffile.imwrite(root / "images" / "val" / "fields.tif", bands, photometric="minisblack", planarconfig="contig",
                     extratags=[*extratags, (GDAL_NODATA, 2, 0, "0", True)])
    Image.fromarray(label).save(root / "labels" / "val" / "fields.png")

    out = tmp_path / "tiles"
    assert main(["data", "tile", "folder", str(root), str(out), "--size", "32", "--split", "train",
                 "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    origins = [(y, x) for y in (0, 32, 64, 68) for x in (0, 32, 64, 96, 98)]
    empty = [(y, x) for y, x in origins if outside[y:y + 32, x:x + 32].all()]
    assert len(empty) == 11 and "1 of them with no data in places: those pixels unlabelled (255), 11 tile(s)" \
        in printed
    tiles = build_dataset("folder", out, "train")
    assert sorted(tiles.image_paths) == sorted(str(out / "images" / "train" / f"ortho_y{y}_x{x}.tif")
                                               for y, x in origins if (y, x) not in empty)
    expected_labels = np.where(outside, 255, label)
    for path in tiles.image_paths:
        y, x = (int(part[1:]) for part in path[:-len(".tif")].rsplit("_", 2)[1:])
        sample = tiles[tiles.image_paths.index(path)]
        assert np.array_equal(sample["image"], rgb[y:y + 32, x:x + 32])  # read as RGB: the alpha dropped
        assert np.array_equal(sample["label"], expected_labels[y:y + 32, x:x + 32])
        tile_outside = no_data_of(path)
        if outside[y:y + 32, x:x + 32].any():  # the tile's alpha band: where it holds no data
            assert np.array_equal(tile_outside, outside[y:y + 32, x:x + 32]), path
        else:
            assert tile_outside is None and tifffile.imread(path).shape == (32, 32, 3)

    # Bands with a "no data" value: the tiles declare it, GDAL's way.
    report = tile_dataset("folder", root, tmp_path / "fields", size=32, split="val", channels=4, workers=0,
                          progress=False)
    assert (report.converted, report.georeferenced, report.with_no_data, report.no_data_tiles) == (1, 1, 1, 11)
    path = tmp_path / "fields" / "images" / "val" / "fields_y32_x64.tif"
    assert np.array_equal(tifffile.imread(path), bands[32:64, 64:96])
    assert np.array_equal(no_data_of(path), outside[32:64, 64:96])
    try:
        import rasterio
    except ImportError:  # optional: GDAL's own reading, where it is installed
        rasterio = None
    if rasterio is not None:
        with rasterio.open(path) as raster:
            assert raster.nodata == 0 and np.array_equal(raster.dataset_mask() == 0, outside[32:64, 64:96])
        with rasterio.open(out / "images" / "train" / "ortho_y32_x64.tif") as raster:
            assert np.array_equal(raster.dataset_mask() == 0, outside[32:64, 64:96])

    # --label-no-data: the label map as it is, every tile written, no alpha.
    report = tile_dataset("folder", root, tmp_path / "kept", size=32, split="train", label_no_data=True, workers=0,
                          progress=False)
    assert (report.converted, report.with_no_data, report.no_data_tiles) == (1, 0, 0)
    kept = build_dataset("folder", tmp_path / "kept", "train")
    assert len(kept) == len(origins)
    sample = kept[kept.image_paths.index(str(tmp_path / "kept" / "images" / "train" / "ortho_y0_x0.tif"))]
    assert np.array_equal(sample["label"], label[:32, :32])
    assert tifffile.imread(tmp_path / "kept" / "images" / "train" / "ortho_y0_x0.tif").shape == (32, 32, 3)


def test_a_scene_s_tiles_are_its_group_whatever_underscores_its_name_holds(tmp_path, capsys):
    """Scenes named ortho_north and ortho_south: their tiles are two groups (the folder's default
    pattern would have made one, "ortho"), so `data split` holds out one scene; a source's own
    "groups" pattern is kept for its tiles."""
    root = tmp_path / "scenes"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["land", "water"]}))
    rng = np.random.default_rng(5)
    for name in ("ortho_north", "ortho_south"):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "images/train" / f"{name}.png")
        Image.fromarray(rng.integers(0, 2, (40, 40), dtype=np.uint8)).save(root / "labels/train" / f"{name}.png")
    tile_dataset("folder", root, tmp_path / "tiles", size=20, workers=0, progress=False)
    assert json.loads((tmp_path / "tiles" / "classes.json").read_text())["groups"] == r"^(.+)_y\d+_x\d+$"
    assert main(["data", "split", "folder", str(tmp_path / "tiles"), "--hold-out", "ortho_south"]) == 0
    capsys.readouterr()
    held_out = build_dataset("folder", tmp_path / "tiles", "train_heldout")
    assert len(held_out) == 4 and all("ortho_south_y" in path for path in held_out.image_paths)
    (root / "classes.json").write_text(json.dumps({"classes": ["land", "water"], "groups": "^[a-z]+"}))
    tile_dataset("folder", root, tmp_path / "by_prefix", size=20, workers=0, progress=False)
    assert json.loads((tmp_path / "by_prefix" / "classes.json").read_text())["groups"] == "^[a-z]+"
