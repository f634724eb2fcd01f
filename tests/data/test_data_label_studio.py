"""Label Studio's JSON and JSON-MIN exports (segnext.data.formats.label_studio, and their conversion
by `segnext data prepare folder`)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from synthetic_data import random_image, save_image

from segnext.cli.main import main
from segnext.data import build_dataset, read_label
from segnext.data.formats.label_studio import decode_rle, encode_rle, image_names
from segnext.data.io import DataError
from segnext.data.prepare import prepare

HEIGHT, WIDTH = 20, 25  # 1 % of the width is 0.25 pixels, of the height 0.2: the test's corners are exact


def brush(alpha: np.ndarray) -> dict:
    """A brush region's value: the RGBA of the editor's canvas, each channel the alpha."""
    return {"format": "rle", "rle": encode_rle(np.repeat(alpha.ravel(), 4))}


def result(value: dict, kind: str, region_id: str, size=(WIDTH, HEIGHT), **extra) -> dict:
    return {"original_width": size[0], "original_height": size[1], "image_rotation": 0, "value": value,
            "id": region_id, "from_name": "label", "to_name": "image", "type": kind, "origin": "manual", **extra}


def task(task_id: int, image: str, annotations: list) -> dict:
    return {"id": task_id, "annotations": annotations, "predictions": [], "data": {"image": image},
            "file_upload": image.rsplit("/", 1)[-1], "project": 1}


def annotation(results: list, **extra) -> dict:
    return {"id": 1, "completed_by": 1, "result": results, "was_cancelled": False, "ground_truth": False,
            "created_at": "2026-12-01T10:00:00.000000Z", "updated_at": "2026-12-01T10:00:00.000000Z", **extra}


def percent_polygon(x0, y0, x1, y1) -> list:
    """The corners, in percent, of the pixel box x0..x1, y0..y1."""
    xs, ys = (x0 * 100 / WIDTH, x1 * 100 / WIDTH), (y0 * 100 / HEIGHT, y1 * 100 / HEIGHT)
    return [[xs[0], ys[0]], [xs[1], ys[0]], [xs[1], ys[1]], [xs[0], ys[1]]]


def test_the_brush_code_decodes_as_label_studio_encodes_it():
    # Label Studio's converter (label_studio_converter.brush.encode_rle) gave this code for the RGBA
    # of a 6x5 image: a 3x3 square of (200, 10, 10, 255), (200, 10, 10, 100) at the top left pixel
    # and (200, 10, 10, 150) at the bottom right one, the rest zero
    official = [0, 0, 0, 120, 57, 27, 248, 25, 16, 133, 0, 201, 134, 192, 0, 200, 132, 40, 15, 240, 50, 33, 10, 3,
                252, 12, 136, 66, 128, 255, 182, 0, 6, 68, 33, 64, 127, 129, 145, 8, 80, 31, 224, 100, 66, 20, 7,
                253, 176, 0, 50, 33, 10, 3, 252, 12, 136, 66, 128, 255, 3, 34, 16, 160, 63, 240, 184, 0, 25, 16,
                133, 1, 44]
    rgba = np.zeros((5, 6, 4), dtype=np.uint8)
    rgba[1:4, 2:5] = (200, 10, 10, 255)
    rgba[0, 0] = (200, 10, 10, 100)
    rgba[4, 5] = (200, 10, 10, 150)
    assert np.array_equal(decode_rle(official, "official"), rgba.ravel())
    # a group of values written one after the other (which that converter never writes; the editor does)
    group = f"{3:032b}{7:05b}0010001101111111" + "0" + "00" + "010" + f"{5:08b}{200:08b}{17:08b}"
    group += "0" * (-len(group) % 8)
    assert decode_rle([int(group[i:i + 8], 2) for i in range(0, len(group), 8)], "group").tolist() == [5, 200, 17]
    values = np.random.default_rng(0).integers(0, 3, size=70_000).astype(np.uint8)
    values[100:69_000] = 7  # a run longer than the longest run-length field
    assert np.array_equal(decode_rle(encode_rle(values), "long"), values)
    values = np.random.default_rng(0).integers(0, 256, size=140_000).astype(np.uint8)  # a group longer than one
    assert np.array_equal(decode_rle(encode_rle(values), "singles"), values)
    with pytest.raises(DataError, match=r"task 3: a brush's \"rle\" ends before its last run"):
        decode_rle(official[:40], "task 3")
    with pytest.raises(DataError, match=r"a brush's \"rle\" must be a list of bytes \(0..255\)"):
        decode_rle([0, 300], "task 3")


def test_image_names_from_what_label_studio_keeps():
    assert image_names("/data/upload/3/0a1b2c3d-photo.jpg") == [
        "data/upload/3/0a1b2c3d-photo.jpg", "upload/3/0a1b2c3d-photo.jpg", "3/0a1b2c3d-photo.jpg",
        "0a1b2c3d-photo.jpg", "photo.jpg"]
    assert image_names("/data/local-files/?d=photos/drive%201/a.jpg") == ["photos/drive 1/a.jpg", "drive 1/a.jpg",
                                                                           "a.jpg"]
    assert image_names("s3://bucket/frames/b.png") == ["frames/b.png", "b.png"]
    assert image_names("C:\\labels\\c.jpg")[-1] == "c.jpg"


def test_label_studio_json_export_to_the_folder_layout(tmp_path, capsys):
    """Brushes, polygons, rotated rectangles (a shape tool with a <Labels> tag: two results of one id),
    ellipses; the annotation chosen; tasks not labelled, without image or without regions."""
    source, destination = tmp_path / "export", tmp_path / "my_dataset"
    save_image(source / "images/street.png", random_image(HEIGHT, WIDTH, seed=1))  # the name without the prefix
    save_image(source / "drive2/0001.png", random_image(HEIGHT, WIDTH, seed=2))
    road = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    road[10:] = 255
    road[9, 0], road[9, 1] = 100, 200  # the brush's soft edge: in from 128
    rectangle = {"x": 48.0, "y": 0.0, "width": 12.0, "height": 20.0, "rotation": 90}  # 3x4 pixels at (12, 0)
    chosen = annotation([
        result({**brush(road), "brushlabels": ["road"]}, "brushlabels", "a"),
        result({"points": percent_polygon(2, 8, 6, 12), "closed": True, "polygonlabels": ["car"]}, "polygonlabels",
               "b"),
        result(rectangle, "rectangle", "c"),
        result({**rectangle, "labels": ["sign"]}, "labels", "c"),
        result({"x": 80.0, "y": 75.0, "radiusX": 8.0, "radiusY": 10.0, "rotation": 0, "ellipselabels": ["sign"]},
               "ellipselabels", "d"),
        result({"x": 10.0, "y": 10.0, "width": 1.0, "keypointlabels": ["car"]}, "keypointlabels", "e"),
        result({"points": percent_polygon(0, 0, 5, 5)}, "polygon", "f"),  # a shape nobody labelled
        result({"choices": ["daytime"]}, "choices", "g"),
        {"from_id": "a", "to_id": "b", "type": "relation", "direction": "right"},
    ], ground_truth=True, updated_at="2026-11-01T10:00:00Z")
    later = annotation([result({"points": percent_polygon(0, 0, 24, 19), "polygonlabels": ["car"]}, "polygonlabels",
                               "z")], updated_at="2026-12-02T10:00:00Z")
    cancelled = annotation([], was_cancelled=True, updated_at="2026-12-03T10:00:00Z")
    export = [
        task(1, "/data/upload/1/0a1b2c3d-street.png", [later, chosen, cancelled]),  # the ground truth is chosen
        task(2, "/data/local-files/?d=drive2/0001.png", [annotation([])]),  # submitted empty: all background
        task(3, "/data/upload/1/5e6f7a8b-not_labelled.jpg", []),
        task(4, "/data/upload/1/9c8d7e6f-missing.jpg", [annotation([])]),
    ]
    source.mkdir(exist_ok=True)
    (source / "project-1-at-2026-12-06-10-00-1a2b3c4d.json").write_text(json.dumps(export))
    with pytest.raises(DataError, match="holds Label Studio's JSON export, which the folder dataset reads once "
                                        "converted"):
        build_dataset("folder", source, ".")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 converted" in out and "task 4: its image /data/upload/1/9c8d7e6f-missing.jpg is not under" in out
    assert "left out 1 tasks without a submitted annotation" in out
    assert "2 regions without area or without a label (keypoints, unlabelled shapes) not drawn" in out
    assert "classes: background, car, road, sign (pixels no region covers: background)" in out and "--split ." in out
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["background", "car", "road", "sign"]
    dataset = build_dataset("folder", destination, ".")
    assert [s["path"] for s in dataset] == [str(destination / "images/drive2/0001.png"),
                                            str(destination / "images/street.png")]
    assert (dataset[0]["label"] == 0).all()
    label = dataset[1]["label"]
    expected_road = np.zeros((HEIGHT, WIDTH), dtype=bool)
    expected_road[10:], expected_road[9, 1] = True, True
    car = np.zeros((HEIGHT, WIDTH), dtype=bool)
    car[8:13, 2:7] = True  # the polygon with its edge pixels, as Pillow fills it
    assert np.array_equal(label == 1, car)
    assert np.array_equal(label == 2, expected_road & ~car & (label != 3))
    assert (label[0:4, 8:13] == 3).all() and (label[0:4, 13:16] == 0).all()  # turned clockwise about (12, 0)
    assert (label[14:17, 19:22] == 3).all() and label[15, 24] == 2 and label[12, 20] == 2  # the ellipse
    assert (label[:8, :8] == 0).all()  # the unlabelled polygon is not drawn
    assert np.array_equal(dataset[1]["image"], random_image(HEIGHT, WIDTH, seed=1))


def test_label_studio_json_min_export(tmp_path, capsys):
    source, destination = tmp_path / "export", tmp_path / "out"
    save_image(source / "upload/7/0a1b2c3d-a.png", random_image(HEIGHT, WIDTH))  # Label Studio's media folder
    save_image(source / "upload/7/1a1b2c3d-a.png", random_image(HEIGHT, WIDTH))  # another photo named a.png
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[:5] = 255
    export = [{"image": "/data/upload/7/0a1b2c3d-a.png", "id": 1, "tag": [
        {"original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0, **brush(mask),
         "brushlabels": ["Sky"]},
        {"original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
         "points": percent_polygon(0, 10, 24, 19), "polygonlabels": ["road"]}],
        "annotator": 1, "annotation_id": 3, "created_at": "2026-12-01", "updated_at": "2026-12-01", "lead_time": 9.5},
        {"image": "/data/upload/7/2a1b2c3d-b.png", "id": 2}]  # not labelled
    export.append({**export[0], "image": "/data/upload/7/1a1b2c3d-a.png", "id": 3})
    (source / "project.json").write_text(json.dumps(export))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert (report.converted, report.failures) == (2, [])
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["background", "road", "Sky"]
    label = read_label(destination / "labels/a.png")  # named as uploaded: the prefix would make it a sequence
    assert (label[:5] == 2).all() and (label[5:10] == 0).all() and (label[10:] == 1).all()
    assert (destination / "images/a.png").resolve() == (source / "upload/7/0a1b2c3d-a.png").resolve()
    assert (destination / "images/1a1b2c3d-a.png").is_file()  # the second a.png keeps Label Studio's name


def test_label_studio_exports_as_splits_and_their_problems(tmp_path):
    source, destination = tmp_path / "export", tmp_path / "out"
    for folder in ("a", "b"):
        save_image(source / f"{folder}/same.jpg", random_image(HEIGHT, WIDTH))
    save_image(source / "c.jpg", random_image(HEIGHT, WIDTH))
    save_image(source / "d.jpg", random_image(HEIGHT, WIDTH))
    box = [result({"points": percent_polygon(0, 0, 4, 4), "polygonlabels": ["car"]}, "polygonlabels", "a")]
    bitmask = io.BytesIO()
    alpha = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    alpha[:, :3, 3] = 255
    Image.fromarray(alpha, "RGBA").save(bitmask, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(bitmask.getvalue()).decode()
    (source / "train.json").write_text(json.dumps([
        task(1, "/data/upload/1/0a1b2c3d-same.jpg", [annotation(box)]),  # a/same.jpg or b/same.jpg?
        task(2, "/data/local-files/?d=a/same.jpg", [annotation(box)]),  # this one is a/same.jpg
        task(3, "/data/upload/1/0a1b2c3d-c.jpg", [annotation(
            [result({"imageDataURL": url, "bitmasklabels": ["pole"]}, "bitmasklabels", "p")])]),
        task(4, "/data/upload/1/0a1b2c3d-c.jpg", [annotation(box)]),  # c again
    ]))
    (source / "valid.json").write_text(json.dumps([
        task(5, "d.jpg", [annotation([result({**box[0]["value"]}, "polygonlabels", "a", size=(50, 40))])]),
        task(6, "c.jpg", [annotation([{**box[0], "image_rotation": 90}])]),
        {"id": 7, "data": {"text": "a text-labelling task"}, "annotations": [annotation([])]},
    ]))
    report = prepare("folder", source, destination, workers=1, progress=False)
    failures = "\n".join(report.failures)
    assert report.converted == 2, failures
    assert "train.json, task 1: 2 images under" in failures and "end with same.jpg" in failures
    assert f"train.json, task 4: a second task for {source / 'c.jpg'} (the first:" in failures
    assert f"{source / 'd.jpg'}: 25x20 pixels (EXIF orientation applied), but" in failures and "gives 50x40" in failures
    assert "task 6: the image was turned by 90 degrees in the editor" in failures
    assert "task 7: its \"data\" names no image" in failures
    assert "the split valid is written as val, the split training validates on" in report.notes
    assert (read_label(destination / "labels/train/a/same.png")[:5, :5] == 1).all()
    pole = read_label(destination / "labels/train/c.png")
    assert (pole[:, :3] == 2).all() and (pole[:, 3:] == 0).all()


def test_an_export_without_images_or_submitted_annotations(tmp_path):
    source = tmp_path / "export"
    source.mkdir()
    (source / "export.json").write_text(json.dumps([task(1, "/data/upload/1/0a1b2c3d-x.jpg", [])]))
    with pytest.raises(FileNotFoundError, match="no task has a submitted annotation; label some images"):
        prepare("folder", source, tmp_path / "out", progress=False)
    predicted = {**task(1, "/data/upload/1/0a1b2c3d-x.jpg", []), "predictions": [{"result": []}]}
    (source / "export.json").write_text(json.dumps([predicted]))
    with pytest.raises(FileNotFoundError, match=r"no task has a submitted annotation \(1 tasks hold predictions only: "
                                                r"open each in Label Studio, correct it and submit it\)"):
        prepare("folder", source, tmp_path / "out", progress=False)
    box = [result({"points": percent_polygon(0, 0, 4, 4), "polygonlabels": ["car"]}, "polygonlabels", "a")]
    (source / "export.json").write_text(json.dumps([task(1, "/data/upload/1/0a1b2c3d-x.jpg", [annotation(box)])]))
    report = prepare("folder", source, tmp_path / "out", workers=1, progress=False)
    assert report.converted == 1 and any("no image of" in note and "the labels are drawn anyway" in note
                                         for note in report.notes)
    assert read_label(tmp_path / "out/labels/x.png").shape == (HEIGHT, WIDTH)


def test_the_brush_png_export_is_told_to_be_exported_as_json(tmp_path):
    source = tmp_path / "export"
    save_image(source / "task-3-annotation-5-by-1-tag-Car-0.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="Label Studio's \"Brush labels to PNG\" export, a mask per region that "
                                                "does not say which image it belongs to; export the project as JSON"):
        prepare("folder", source, tmp_path / "out", progress=False)


def test_the_images_may_stay_in_label_studios_media_folder(tmp_path, capsys):
    """`--images DIR`: an export downloaded alone finds its images in another folder (here Label
    Studio's media/upload/), and DST's images link there; refused for exports that keep their images
    in their own layout."""
    source, media = tmp_path / "export", tmp_path / "label-studio/media"
    save_image(media / "upload/3/0a1b2c3d-street.png", random_image(HEIGHT, WIDTH))
    box = [result({"points": percent_polygon(0, 0, 4, 4), "polygonlabels": ["car"]}, "polygonlabels", "a")]
    source.mkdir()
    (source / "project-3.json").write_text(json.dumps([task(1, "/data/upload/3/0a1b2c3d-street.png",
                                                             [annotation(box)])]))
    assert main(["data", "prepare", "folder", str(source), str(tmp_path / "out"), "--images", str(media),
                 "--workers", "1", "--no-progress"]) == 0
    assert (tmp_path / "out/images/street.png").resolve() == media / "upload/3/0a1b2c3d-street.png"
    assert (read_label(tmp_path / "out/labels/street.png")[:5, :5] == 1).all()
    labelme_export = tmp_path / "labelme"
    save_image(labelme_export / "a.png", random_image(HEIGHT, WIDTH))
    (labelme_export / "a.json").write_text(json.dumps({"shapes": [], "imagePath": "a.png"}))
    assert main(["data", "prepare", "folder", str(labelme_export), str(tmp_path / "out2"), "--images", str(media),
                 "--no-progress"]) == 1
    assert "only exports that name their images look for them elsewhere" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="--images nowhere: no such folder"):
        prepare("folder", source, tmp_path / "out3", images="nowhere")
    with pytest.raises(ValueError, match="--images is for `segnext data prepare folder`"):
        prepare("camvid", source, tmp_path / "out3", images=media)
