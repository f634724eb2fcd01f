"""segnext.data.polygons: the polygons of a label map cover exactly its pixels of each class (drawn
back, they give the label map), in pixels or in the coordinates of the image the labels lie on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segnext.data.polygons import label_polygons, sieve_labels, write_polygons

rasterio = pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]'): polygons "
                                                  "untested")
tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")

NAMES = ["field", "water", "road"]
# UTM zone 33N (EPSG:32633), 0.5 m pixels, the top left corner at (500000, 4000000)
GEO_TAGS = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0.0), True),
            (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), True)]


def _labels() -> np.ndarray:
    """Fields with a pond holding an island, a road across, a pixel of water touching another only
    at a corner (two regions), pixels without a label."""
    labels = np.zeros((40, 50), dtype=np.uint8)
    labels[5:20, 5:25] = 1
    labels[10:14, 10:15] = 0  # an island in the pond: a hole in the water, a field of its own
    labels[:, 30:33] = 2
    labels[30, 40] = labels[31, 41] = 1
    labels[35:, :4] = 255
    return labels


def _drawn_back(features, shape, transform=None) -> np.ndarray:
    from rasterio.features import rasterize

    shapes = [(feature["geometry"], feature["properties"]["class_id"]) for feature in features]
    return rasterize(shapes, out_shape=shape, fill=255, dtype=np.uint8,
                     transform=transform or rasterio.Affine.identity())


def test_the_polygons_of_a_label_map_in_pixels_draw_it_back():
    labels = _labels()
    features = list(label_polygons(labels, NAMES))
    assert np.array_equal(_drawn_back(features, labels.shape), labels)
    for class_id, name in enumerate(NAMES):
        mine = [feature["properties"] for feature in features if feature["properties"]["class_id"] == class_id]
        assert all(properties["class"] == name for properties in mine)
        assert sum(properties["pixels"] for properties in mine) == (labels == class_id).sum(), name
        assert all(properties["area"] == properties["pixels"] for properties in mine)  # a pixel's area is 1
        assert not any("area_m2" in properties for properties in mine)  # no ground without a georeference
    water = [feature for feature in features if feature["properties"]["class_id"] == 1]
    assert len(water) == 3  # the pond and the two pixels that touch only at a corner
    pond = max(water, key=lambda feature: feature["properties"]["pixels"])
    assert len(pond["geometry"]["coordinates"]) == 2 and pond["properties"]["pixels"] == 15 * 20 - 4 * 5
    assert not any(feature["properties"]["class_id"] == 255 for feature in features)


def test_polygons_of_a_georeferenced_scene_lie_where_its_pixels_do(tmp_path):
    """In the scene's CRS (named in the file as GDAL's GeoJSON driver names it), the areas in square
    metres; drawn back with the scene's transform, the label map."""
    labels = _labels()
    tifffile.imwrite(tmp_path / "scene.tif", np.zeros((40, 50, 3), np.uint8), photometric="rgb", extratags=GEO_TAGS)
    assert write_polygons(tmp_path / "scene.geojson", labels, NAMES, tmp_path / "scene.tif") > 5
    collection = json.loads((tmp_path / "scene.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    with rasterio.open(tmp_path / "scene.tif") as scene:
        transform = scene.transform
    assert np.array_equal(_drawn_back(collection["features"], labels.shape, transform), labels)
    road = [feature for feature in collection["features"] if feature["properties"]["class"] == "road"]
    assert len(road) == 1 and road[0]["properties"]["area"] == pytest.approx(40 * 3 * 0.25)
    assert all(feature["properties"]["area_m2"] == feature["properties"]["area"] for feature in collection["features"])
    xs = [x for x, _ in road[0]["geometry"]["coordinates"][0]]
    assert min(xs) == 500000.0 + 30 * 0.5 and max(xs) == 500000.0 + 33 * 0.5


def test_polygons_in_longitude_and_latitude_have_their_area_on_the_ellipsoid(tmp_path):
    """In degrees of EPSG:4326 each polygon's area_m2 is the WGS 84 ellipsoid's under its pixels (the sum
    of their rows' pixel areas, a row's area the ellipsoid's between its edges); in feet, the square
    metres of its square feet."""
    from segnext.data.geotiff import row_ground_areas

    labels = _labels()
    degrees = [(33550, "d", 3, (0.001, 0.001, 0.0), True), (33922, "d", 6, (0, 0, 0, 11.0, 60.0, 0.0), True),
               (34735, "H", 12, (1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 4326), True)]
    tifffile.imwrite(tmp_path / "wgs84.tif", np.zeros((40, 50), np.uint8), extratags=degrees)
    rows = row_ground_areas(tmp_path / "wgs84.tif", 40)
    features = list(label_polygons(labels, NAMES, tmp_path / "wgs84.tif"))
    with rasterio.open(tmp_path / "wgs84.tif") as scene:
        transform = scene.transform
    for feature in features:  # each region's pixels, drawn back, weighed by their rows' areas
        alone = _drawn_back([feature], labels.shape, transform) != 255
        assert feature["properties"]["area_m2"] == pytest.approx(float(np.sum(alone * rows[:, None])), rel=1e-9)
    feet = [(33550, "d", 3, (2.0, 2.0, 0.0), True), (33922, "d", 6, (0, 0, 0, 1e6, 2e5, 0.0), True),
            (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 3072, 0, 1, 2263, 3076, 0, 1, 9002), True)]
    tifffile.imwrite(tmp_path / "feet.tif", np.zeros((40, 50), np.uint8), extratags=feet)
    for feature in label_polygons(labels, NAMES, tmp_path / "feet.tif"):
        properties = feature["properties"]
        assert properties["area_m2"] == pytest.approx(properties["area"] * 0.3048 ** 2)
        assert properties["area"] == properties["pixels"] * 4


def test_a_label_map_without_labels_or_of_another_shape(tmp_path):
    assert write_polygons(tmp_path / "none.geojson", np.full((4, 5), 255, np.uint8), NAMES) == 0
    assert json.loads((tmp_path / "none.geojson").read_text()) == {"type": "FeatureCollection", "features": []}
    with pytest.raises(ValueError, match=r"\(height, width\) class ids"):
        list(label_polygons(np.zeros((2, 3, 4), np.uint8), NAMES))
    many = np.full((3, 3), 300, dtype=np.int64)  # ids beyond uint8, named generically beyond the names
    (feature,) = label_polygons(many, NAMES)
    assert feature["properties"]["class"] == "class 300" and feature["properties"]["pixels"] == 9


def _georeferenced_scene(path) -> None:
    tifffile.imwrite(path, np.zeros((40, 50, 3), np.uint8), photometric="rgb", extratags=GEO_TAGS)


def test_polygons_drawn_back_on_their_scene_give_its_label_map(tmp_path):
    """write_polygons, then read_polygons and rasterize_polygons on the same scene: the label map, in
    the scene's CRS as written and reprojected to GeoJSON's WGS 84 and back; classes by name or id."""
    from rasterio.warp import transform_geom

    from segnext.data.polygons import rasterize_polygons, read_polygons

    labels = _labels()
    _georeferenced_scene(tmp_path / "scene.tif")
    write_polygons(tmp_path / "scene.geojson", labels, NAMES, tmp_path / "scene.tif")
    features, crs = read_polygons(tmp_path / "scene.geojson")
    assert crs == "urn:ogc:def:crs:EPSG::32633"
    assert np.array_equal(rasterize_polygons(features, tmp_path / "scene.tif", NAMES, crs=crs), labels)
    in_degrees = [dict(feature, geometry=transform_geom(crs, "EPSG:4326", feature["geometry"], precision=-1),
                       properties={"kind": feature["properties"]["class_id"]}) for feature in features]
    assert -180 < in_degrees[0]["geometry"]["coordinates"][0][0][0] < 180  # longitude, latitude
    drawn = rasterize_polygons(in_degrees, tmp_path / "scene.tif", NAMES, class_property="kind")  # WGS 84
    assert np.array_equal(drawn, labels)


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")  # rasterio's, of a photo
def test_the_pixels_no_polygon_holds_and_the_thin_ones(tmp_path):
    """Outside every polygon: background (255 by default); a polygon thinner than a pixel holds no
    pixel's centre, and with all_touched marks each pixel it touches; the later polygon wins."""
    from segnext.data.polygons import rasterize_polygons

    photo = tmp_path / "photo.tif"
    tifffile.imwrite(photo, np.zeros((10, 12), np.uint8))  # no georeference: coordinates are pixels
    square = dict(type="Polygon", coordinates=[[(2, 2), (6, 2), (6, 6), (2, 6), (2, 2)]])
    sliver = dict(type="Polygon", coordinates=[[(0, 8.2), (12, 8.2), (12, 8.4), (0, 8.4), (0, 8.2)]])
    inner = dict(type="Polygon", coordinates=[[(3, 3), (4, 3), (4, 4), (3, 4), (3, 3)]])
    features = [dict(type="Feature", geometry=geometry, properties={"class": name})
                for geometry, name in ((square, "water"), (sliver, "road"), (inner, "field"))]
    labels = rasterize_polygons(features, photo, NAMES)
    expected = np.full((10, 12), 255, np.uint8)
    expected[2:6, 2:6] = 1
    expected[3, 3] = 0
    assert np.array_equal(labels, expected)
    touched = rasterize_polygons(features, photo, NAMES, all_touched=True, background=0)
    assert (touched[8] == 2).all() and touched[0, 0] == 0


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")  # rasterio's, of a photo
def test_polygons_of_unknown_classes_or_crs_and_other_files_are_named(tmp_path):
    from segnext.data import DataError
    from segnext.data.polygons import rasterize_polygons, read_polygons

    tifffile.imwrite(tmp_path / "photo.tif", np.zeros((10, 12), np.uint8))
    pixel = [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]]  # the top left pixel
    feature = dict(type="Feature", geometry=dict(type="Polygon", coordinates=pixel),
                   properties={"class": "forest"})
    with pytest.raises(DataError, match=r"feature 0: its 'class' is 'forest', which names none of the 3 classes"):
        rasterize_polygons([feature], tmp_path / "photo.tif", NAMES)
    with pytest.raises(DataError, match=r"photo\.tif carries no georeference, and the polygons lie in EPSG:32633"):
        rasterize_polygons([dict(feature, properties={"class": "road"})], tmp_path / "photo.tif", NAMES,
                           crs="EPSG:32633")
    for value in ("2", 2, 2.0):  # an id, as a number or its digits
        feature["properties"]["class"] = value
        assert (rasterize_polygons([feature], tmp_path / "photo.tif", NAMES) == 2).sum() == 1
    (tmp_path / "notes.json").write_text('{"type": "Topology"}')
    (tmp_path / "bad.geojson").write_text("{")
    for name, message in (("notes.json", "holds no GeoJSON features"), ("bad.geojson", "cannot read this GeoJSON")):
        with pytest.raises(DataError, match=message):
            read_polygons(tmp_path / name)
    (tmp_path / "one.geojson").write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}')
    assert read_polygons(tmp_path / "one.geojson")[0][0]["geometry"]["type"] == "Polygon"


def test_a_sieve_merges_the_small_regions_into_their_largest_neighbour():
    """Regions of one class below the size (joined across pixels' sides, a diagonal neighbour is not
    one) take the class of their largest neighbouring region, as gdal_sieve.py gives them; pixels
    without a label are left as they are, and a region only they surround keeps its class."""
    labels = np.zeros((12, 12), dtype=np.uint8)
    labels[6:12, 6:12] = 2  # 36 pixels
    labels[6:8, 3:6] = 1  # 6 pixels, beside 0 (larger) and 2: becomes 0 (the largest neighbour)
    labels[9, 9] = 3  # a speck inside 2: becomes 2
    labels[0, 0] = 4  # a corner speck: 0
    labels[2, 9] = labels[3, 10] = 5  # two specks touching at corners only: two regions of 1, both 0
    labels[0:3, 4:7] = 255  # no label ...
    labels[1, 5] = 3  # ... around a speck that keeps its class
    sieved = sieve_labels(labels, 7)
    expected = labels.copy()
    expected[6:8, 3:6] = expected[0, 0] = expected[2, 9] = expected[3, 10] = 0
    expected[9, 9] = 2
    assert sieved.dtype == np.uint8 and np.array_equal(sieved, expected)
    assert np.array_equal(sieve_labels(labels.astype(np.int64), 7), expected) and \
        sieve_labels(labels.astype(np.int64), 7).dtype == np.int64
    assert np.array_equal(sieve_labels(labels, 1), labels)  # every region has a pixel
    # no region left below the size, but for the one behind the unlabelled pixels
    pixels = [feature["properties"]["pixels"] for feature in label_polygons(sieved, [str(i) for i in range(6)])]
    assert sorted(pixels)[:2] == [1, 36]
    with pytest.raises(ValueError, match="min_pixels must be at least 1"):
        sieve_labels(labels, 0)


def test_data_rasterize_writes_the_label_map_of_a_scene_to_train_on(tmp_path, capsys):
    """`segnext data rasterize`: the polygons `predict --polygons` wrote (or a GIS), drawn on their
    scene as a GeoTIFF in its place with the classes' palette and 255 declared no data, or a PNG;
    --background names the class of the pixels no polygon holds; bad requests are one error each."""
    import json

    from segnext.cli.main import main

    labels = _labels()
    _georeferenced_scene(tmp_path / "scene.tif")
    write_polygons(tmp_path / "scene.geojson", labels, NAMES, tmp_path / "scene.tif")
    palette = [[0, 200, 0], [0, 0, 200], [120, 120, 120]]
    (tmp_path / "classes.json").write_text(json.dumps({"classes": NAMES, "palette": palette}))
    run = ["data", "rasterize", str(tmp_path / "scene.geojson"), str(tmp_path / "scene.tif")]
    classes = ["--classes", str(tmp_path / "classes.json")]
    assert main([*run, str(tmp_path / "labels.tif"), *classes]) == 0
    printed = capsys.readouterr().out
    assert "50x40 pixels from 7 feature(s): field 78.9%, water 14.1%, road 6.0%, no label 1.0%" in printed
    with tifffile.TiffFile(tmp_path / "labels.tif") as written:
        assert np.array_equal(written.asarray(), labels)
        page = written.pages[0]
        assert page.tags[42113].value == "255" and page.tags[33922].value[3:5] == (500000.0, 4000000.0)
        assert tuple(page.colormap[:, 2] // 257) == (120, 120, 120)
    assert main([*run, str(tmp_path / "labels.png"), *classes, "--background", "field"]) == 0
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "labels.png")), np.where(labels == 255, 0, labels))
    for extra, message in ((["--background", "forest"], "--background 'forest' is none of the classes"),
                           (["--class-property", "kind"], "feature 0: its 'kind' is None")):
        capsys.readouterr()
        assert main([*run, str(tmp_path / "more.tif"), *classes, *extra]) != 0
        assert message in capsys.readouterr().err and not (tmp_path / "more.tif").exists()
    assert main([*run, str(tmp_path / "labels.jpg"), *classes]) == 1
    assert "write the label map as .tif" in capsys.readouterr().err


def test_one_layer_is_drawn_on_every_geotiff_of_a_folder(tmp_path, capsys):
    """`data rasterize LAYER FOLDER OUT`: the polygons of one layer (in WGS 84) drawn on each GeoTIFF
    below the folder, in its own place and CRS (the scene they came from, one shifted east, one in
    another UTM zone over the same ground, one far away), each as `rasterize_polygons` draws it alone;
    an image without a georeference is named and fails the command."""
    import json

    from rasterio.warp import transform, transform_geom

    from segnext.cli.main import main
    from segnext.data.polygons import rasterize_polygons

    labels = _labels()
    _georeferenced_scene(tmp_path / "scene.tif")
    features = list(label_polygons(labels, NAMES, tmp_path / "scene.tif"))
    for feature in features:  # the layer in GeoJSON's own WGS 84, as most GIS export it
        feature["geometry"] = transform_geom("EPSG:32633", "EPSG:4326", feature["geometry"])
    (tmp_path / "layer.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    (tmp_path / "classes.json").write_text(json.dumps({"classes": NAMES}))
    images = tmp_path / "images"
    (images / "zone32").mkdir(parents=True)

    def scene(path, x, y, epsg=32633):
        keys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, epsg)
        tags = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, x, y, 0.0), True),
                (34735, "H", 16, keys, True)]
        tifffile.imwrite(path, np.zeros((40, 50, 3), np.uint8), photometric="rgb", extratags=tags)

    scene(images / "same.tif", 500000.0, 4000000.0)
    scene(images / "east.tif", 500012.5, 4000000.0)  # 25 pixels east
    scene(images / "far.tif", 600000.0, 4000000.0)
    (x,), (y,) = transform("EPSG:32633", "EPSG:32632", [500000.0], [4000000.0])
    scene(images / "zone32" / "over.tif", x, y, epsg=32632)
    from PIL import Image

    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(images / "ortho.jpg")  # where "same" is, by a world file
    (images / "ortho.jgw").write_text("0.5\n0\n0\n-0.5\n500000.25\n3999999.75\n")
    (images / "ortho.prj").write_text('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84"],AUTHORITY["EPSG","32633"]]')
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(images / "snapshot.jpg")  # no place: not drawn on
    assert main(["data", "rasterize", str(tmp_path / "layer.geojson"), str(images), str(tmp_path / "labels"),
                 "--classes", str(tmp_path / "classes.json")]) == 0
    printed = capsys.readouterr().out
    assert np.array_equal(tifffile.imread(tmp_path / "labels" / "ortho.tif"), labels)
    assert not (tmp_path / "labels" / "snapshot.tif").exists()
    assert f"wrote 5 label map(s) to {tmp_path / 'labels'} from 7 polygon(s): field " in printed
    assert "1 of them hold only no label" in printed
    for name in ("same", "east", "far", "zone32/over"):
        drawn = tifffile.imread(tmp_path / "labels" / f"{name}.tif")
        assert np.array_equal(drawn, rasterize_polygons(features, images / f"{name}.tif", NAMES)), name
    assert np.array_equal(tifffile.imread(tmp_path / "labels" / "same.tif"), labels)
    assert np.array_equal(tifffile.imread(tmp_path / "labels" / "east.tif")[:, :25], labels[:, 25:])
    assert (tifffile.imread(tmp_path / "labels" / "far.tif") == 255).all()
    over = tifffile.imread(tmp_path / "labels" / "zone32" / "over.tif")
    assert 0.5 < (over == labels).mean() < 1  # the same ground on a grid turned by the other zone
    tifffile.imwrite(images / "plain.tif", np.zeros((4, 4), np.uint8))
    assert main(["data", "rasterize", str(tmp_path / "layer.geojson"), str(images), str(tmp_path / "again"),
                 "--classes", str(tmp_path / "classes.json")]) == 1
    assert "plain.tif: carries no georeference" in capsys.readouterr().out


def test_data_rasterize_without_rasterio_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    import sys

    from segnext.cli.main import main

    monkeypatch.setitem(sys.modules, "rasterio", None)
    assert main(["data", "rasterize", "a.geojson", "a.tif", str(tmp_path / "out.tif"), "--classes", "c.json"]) == 1
    assert "data rasterize needs the rasterio package: pip install 'segnext[gis]'" in capsys.readouterr().err
