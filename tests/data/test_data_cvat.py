"""CVAT's XML export, "CVAT for images 1.1" (segnext.data.formats.cvat, and its conversion by
`segnext data prepare folder`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_data import random_image, save_image

from segnext.cli.main import main
from segnext.data import build_dataset, read_label
from segnext.data.prepare import prepare

pytest.importorskip("pycocotools", reason="CVAT's polygons are drawn with pycocotools (pip install pycocotools)")

HEIGHT, WIDTH = 20, 25
LABELS = """
      <labels>
        <label><name>road</name><color>#804080</color><type>polygon</type><attributes></attributes></label>
        <label><name>car</name><color>#00008e</color><type>any</type><attributes></attributes></label>
        <label><name>sign</name><color>#dcdc00</color><type>any</type><attributes></attributes></label>
        <label><name>lane</name><color>#ffffff</color><type>polyline</type><attributes></attributes></label>
        <label><name>weather</name><color>#333333</color><type>tag</type><attributes></attributes></label>
      </labels>"""


def annotations_xml(images: str, meta: str = f"<task><id>3</id><name>drive</name>{LABELS}</task>") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
            f"  <meta>{meta}<dumped>2026-12-06 10:00:00.000000+00:00</dumped></meta>\n{images}\n</annotations>\n")


def test_cvat_for_images_xml_to_the_folder_layout(tmp_path, capsys):
    """Polygons, rotated boxes, ellipses and masks drawn by z_order in the labels' colours; shapes
    without area counted; labels that never cover pixels (tags, polylines) left out of the classes."""
    source, destination = tmp_path / "cvat_export", tmp_path / "my_dataset"
    save_image(source / "images/frame_000.png", random_image(HEIGHT, WIDTH, seed=1))
    save_image(source / "images/seq2/frame_001.png", random_image(HEIGHT, WIDTH, seed=2))
    images = f"""
  <image id="0" name="frame_000.png" width="{WIDTH}" height="{HEIGHT}">
    <polygon label="car" source="manual" occluded="0" points="0.00,0.00;24.00,0.00;24.00,19.00" z_order="-1"/>
    <polygon label="road" source="manual" occluded="0" points="0.00,10.00;25.00,10.00;25.00,20.00;0.00,20.00"
             z_order="0"><attribute name="wet">false</attribute></polygon>
    <box label="sign" source="manual" occluded="0" xtl="10.00" ytl="0.00" xbr="18.00" ybr="2.00" rotation="90.00"
         z_order="1"/>
    <ellipse label="sign" source="manual" occluded="0" cx="20.00" cy="15.00" rx="2.00" ry="2.00" z_order="1"/>
    <mask label="car" source="manual" occluded="0" rle="1, 2, 3, 2" left="2" top="12" width="4" height="2"
          z_order="2"/>
    <polyline label="lane" source="manual" occluded="0" points="0.00,15.00;24.00,15.00" z_order="3"/>
    <tag label="weather" source="manual"/>
  </image>
  <image id="1" name="seq2/frame_001.png" width="{WIDTH}" height="{HEIGHT}">
  </image>
  <image id="2" name="missing.png" width="{WIDTH}" height="{HEIGHT}">
  </image>"""
    (source / "annotations.xml").write_text(annotations_xml(images))
    with pytest.raises(ValueError, match="holds CVAT's XML export, which the folder dataset reads once converted"):
        build_dataset("folder", source, ".")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 converted" in out and "(missing.png): image not found in images/default/, images/ or below" in out
    assert "1 shapes without area (polylines, points, skeletons, cuboids) not drawn" in out
    assert "background, road, car, sign (pixels no shape covers: background)" in out and "--split ." in out
    meta = json.loads((destination / "classes.json").read_text())
    assert meta["classes"] == ["background", "road", "car", "sign"]
    assert meta["palette"] == [[0, 0, 0], [128, 64, 128], [0, 0, 142], [220, 220, 0]]  # CVAT's colours
    dataset = build_dataset("folder", destination, ".")
    assert [s["path"] for s in dataset] == [str(destination / "images/frame_000.png"),
                                            str(destination / "images/seq2/frame_001.png")]
    label = dataset[0]["label"]
    assert (label[10:, :] != 0).all() and label[5, 20] == 2  # road over the car of z_order -1, not under it
    assert (label[10:12, :] == 1).all() and label[12, 3] == 2 and label[12, 2] == 1  # the mask's first row
    assert (label[12, 3:5] == 2).all() and (label[13, 4:6] == 2).all() and label[13, 3] == 1  # ... and second
    assert (label[0:4, 14] == 3).all() and label[0, 11] != 3  # the box turned upright about its centre (14, 1)
    assert label[15, 20] == 3 and label[15, 24] == 1  # the ellipse
    assert (dataset[1]["label"] == 0).all()
    assert np.array_equal(dataset[1]["image"], random_image(HEIGHT, WIDTH, seed=2))


def test_cvat_project_export_with_subsets(tmp_path):
    source, destination = tmp_path / "project_export", tmp_path / "out"
    for subset, seed in (("Train", 1), ("Validation", 2)):
        save_image(source / f"images/{subset}/a.png", random_image(HEIGHT, WIDTH, seed=seed))
    box = '<box label="car" source="manual" occluded="0" xtl="0" ytl="0" xbr="4" ybr="4" z_order="0"/>'
    images = "".join(f'<image id="{i}" name="a.png" subset="{subset}" task_id="1" width="{WIDTH}" height="{HEIGHT}">'
                     f"{box if subset == 'Train' else ''}</image>" for i, subset in enumerate(("Train", "Validation")))
    (source / "annotations.xml").write_text(annotations_xml(images, f"<project><id>1</id>{LABELS}</project>"))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert (report.converted, report.failures) == (2, [])
    assert "the split Validation is written as val, the split training validates on" in report.notes
    train, val = build_dataset("folder", destination, "train"), build_dataset("folder", destination, "val")
    assert np.array_equal(train[0]["image"], random_image(HEIGHT, WIDTH, seed=1))  # each subset's own a.png
    assert np.array_equal(val[0]["image"], random_image(HEIGHT, WIDTH, seed=2))
    assert (train[0]["label"][1:4, 1:4] == 2).all() and (val[0]["label"] == 0).all()


def test_cvat_problems_are_named(tmp_path):
    source = tmp_path / "export"
    source.mkdir()
    track = ('<track id="0" label="car" source="manual"><box frame="0" keyframe="1" outside="0" occluded="0" '
             'xtl="0" ytl="0" xbr="4" ybr="4" z_order="0"/></track>')
    (source / "annotations.xml").write_text(annotations_xml(track))
    with pytest.raises(FileNotFoundError, match="no <image> in it but tracks: export the task as \"CVAT for images "
                                                "1.1\""):
        prepare("folder", source, tmp_path / "out", progress=False)
    images = f"""<image id="0" name="a.png" width="{WIDTH}" height="{HEIGHT}">
      <polygon label="truck" points="0,0;4,0;4,4" z_order="0"/></image>
      <image id="1" name="b.png" width="{WIDTH}" height="{HEIGHT}">
      <mask label="car" rle="1, 2" left="0" top="0" width="4" height="4" z_order="0"/></image>
      <image id="2" name="c.png" width="{WIDTH}" height="{HEIGHT}"></image>"""
    (source / "annotations.xml").write_text(annotations_xml(images))
    save_image(source / "c.png", random_image(HEIGHT * 2, WIDTH))
    save_image(source / "a.png", random_image(HEIGHT, WIDTH))
    save_image(source / "b.png", random_image(HEIGHT, WIDTH))
    report = prepare("folder", source, tmp_path / "out", workers=1, progress=False)
    failures = "\n".join(report.failures)
    assert report.converted == 0
    assert "(a.png), polygon 0 (truck)" not in failures and "(a.png): label 'truck' is not among the export's " \
                                                               "labels (background, road, car, sign)" in failures
    assert "a mask's run lengths add up to 3, not its 4x4 box" in failures
    assert f"{source / 'c.png'}: 25x40 pixels (EXIF orientation applied), but" in failures


def test_an_annotations_xml_without_its_images_is_drawn_anyway(tmp_path):
    source = tmp_path / "annotations_only"
    source.mkdir()
    box = '<box label="car" source="manual" occluded="0" xtl="0" ytl="0" xbr="4" ybr="4" z_order="0"/>'
    (source / "annotations.xml").write_text(annotations_xml(
        f'<image id="0" name="frames/a.png" width="{WIDTH}" height="{HEIGHT}">{box}</image>'))
    report = prepare("folder", source, tmp_path / "out", workers=1, progress=False)
    assert report.converted == 1 and any("the labels are drawn anyway; give the images' folder with --images" in note
                                         for note in report.notes)
    assert (read_label(tmp_path / "out/labels/frames/a.png")[1:4, 1:4] == 2).all()
