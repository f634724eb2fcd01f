"""segnext.data.polygons: the polygons of a label map cover exactly its pixels of each class (drawn
back, they give the label map), in pixels or in the coordinates of the image the labels lie on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segnext.data.polygons import label_polygons, write_polygons

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
    xs = [x for x, _ in road[0]["geometry"]["coordinates"][0]]
    assert min(xs) == 500000.0 + 30 * 0.5 and max(xs) == 500000.0 + 33 * 0.5


def test_a_label_map_without_labels_or_of_another_shape(tmp_path):
    assert write_polygons(tmp_path / "none.geojson", np.full((4, 5), 255, np.uint8), NAMES) == 0
    assert json.loads((tmp_path / "none.geojson").read_text()) == {"type": "FeatureCollection", "features": []}
    with pytest.raises(ValueError, match=r"\(height, width\) class ids"):
        list(label_polygons(np.zeros((2, 3, 4), np.uint8), NAMES))
    many = np.full((3, 3), 300, dtype=np.int64)  # ids beyond uint8, named generically beyond the names
    (feature,) = label_polygons(many, NAMES)
    assert feature["properties"]["class"] == "class 300" and feature["properties"]["pixels"] == 9
