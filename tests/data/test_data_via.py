"""The VGG Image Annotator's JSON (segnext.data.formats.via, and its conversion by `segnext data
prepare folder`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic_data import random_image, save_image

from segnext.cli.main import main
from segnext.data import build_dataset, read_label
from segnext.data.io import DataError
from segnext.data.prepare import prepare

HEIGHT, WIDTH = 20, 25


def entry(filename: str, regions, size: int = 1234) -> dict:
    return {f"{filename}{size}": {"filename": filename, "size": size, "regions": regions, "file_attributes": {}}}


def region(shape: dict, **attributes) -> dict:
    return {"shape_attributes": shape, "region_attributes": attributes}


def polygon(x0, y0, x1, y1) -> dict:
    return {"name": "polygon", "all_points_x": [x0, x1, x1, x0], "all_points_y": [y0, y0, y1, y1]}


def test_exported_annotations_of_one_class_in_split_folders(tmp_path, capsys):
    """VIA's balloons: SRC/train/ and SRC/val/, each with its via_region_data.json beside the images,
    regions without attributes (one class); VIA 1's regions as an object."""
    source, destination = tmp_path / "balloon", tmp_path / "my_dataset"
    save_image(source / "train/a.jpg", random_image(HEIGHT, WIDTH))
    save_image(source / "val/b.png", random_image(HEIGHT, WIDTH, seed=2))
    (source / "train/via_region_data.json").write_text(json.dumps({
        **entry("a.jpg", [region(polygon(2, 3, 6, 8))]), **entry("missing.jpg", [])}))
    (source / "val/via_region_data.json").write_text(json.dumps(entry("b.png", {"0": region(polygon(0, 0, 4, 4))})))
    with pytest.raises(ValueError, match="holds the VGG Image Annotator's export, which the folder dataset reads once"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 converted" in out and "(missing.jpg): image not found beside via_region_data.json" in out
    assert "classes (the regions carry no attribute: all one class, 'object'): background, object" in out
    train = build_dataset("folder", destination, "train")
    expected = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    expected[3:9, 2:7] = 1  # the polygon with its edge pixels, as Pillow fills it
    assert np.array_equal(train[0]["label"], expected)
    assert (read_label(destination / "labels/val/b.png")[:5, :5] == 1).all()


def test_a_saved_project_with_its_class_options_and_every_shape(tmp_path, capsys):
    source, destination = tmp_path / "project", tmp_path / "out"
    save_image(source / "images/street.png", random_image(HEIGHT, WIDTH))
    regions = [
        region(polygon(0, 10, 24, 19), kind="road", occluded={"yes": False}),
        region({"name": "rect", "x": 2, "y": 12, "width": 4, "height": 3}, kind={"car": True, "sign": False}),
        region({"name": "circle", "cx": 20, "cy": 4, "r": 2}, kind="sign"),
        region({"name": "ellipse", "cx": 10, "cy": 4, "rx": 4, "ry": 1, "theta": math.pi / 2}, kind="sign"),
        region({"name": "polyline", "all_points_x": [0, 24], "all_points_y": [9, 9]}, kind="road"),
        region({"name": "point", "cx": 1, "cy": 1}, kind="sign"),
        region(polygon(20, 15, 22, 17), kind=""),  # no class given
    ]
    project = {"_via_settings": {}, "_via_img_metadata": entry("street.png", regions),
               "_via_attributes": {"region": {
                   "kind": {"type": "dropdown", "options": {"sign": "", "car": "", "road": ""}, "default_options": {}},
                   "occluded": {"type": "checkbox", "options": {"yes": ""}, "default_options": {}}}, "file": {}},
               "_via_data_format_version": "2.0.10", "_via_image_id_list": ["street.png1234"]}
    source.mkdir(exist_ok=True)
    (source / "via_project_6Dec2026_10h00m.json").write_text(json.dumps(project))
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "classes (region attribute 'kind'): background, sign, car, road" in out  # the project's order
    assert "3 regions without area (polylines, points) or without a class not drawn" in out and "--split ." in out
    label = read_label(destination / "labels/street.png")
    assert (label[10:12, :] == 3).all() and (label[12:16, 2:7] == 2).all() and label[12, 7] == 3
    assert (label[2:7, 20] == 1).all() and label[4, 23] == 0  # the circle
    assert (label[0:9, 10] == 1).all() and label[4, 13] == 0  # the ellipse turned upright (theta: a quarter turn)
    assert label[16, 21] == 3  # the region without a class is not drawn


def test_which_attribute_is_the_class_must_be_clear(tmp_path):
    source = tmp_path / "export"
    save_image(source / "a.png", random_image(HEIGHT, WIDTH))
    (source / "via_export_json.json").write_text(json.dumps(entry("a.png", [
        region(polygon(0, 0, 4, 4), colour="red", shape_kind="round")])))
    with pytest.raises(DataError, match="which region attribute is the class\\? Its regions have colour, "
                                        "shape_kind; name the class's attribute \"class\" in VIA"):
        prepare("folder", source, tmp_path / "out", progress=False)
    (source / "via_export_json.json").write_text(json.dumps(entry("a.png", [
        region({"name": "polygon", "all_points_x": [0, 4, 4], "all_points_y": [0, 0]}, label="car")])))
    report = prepare("folder", source, tmp_path / "out", workers=1, progress=False)
    assert "region 0: a polygon of 3 x and 2 y coordinates; draw it again in VIA" in "\n".join(report.failures)
