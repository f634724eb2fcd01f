"""`segnext data prepare folder`: colour masks and the exports of labelling tools (CVAT, Roboflow,
Label Studio, labelme, YOLO) on tiny synthetic sources give the expected ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic_data import blob_label, random_image, save_image, save_label, write_lines

from segnext.cli.main import main
from segnext.data import build_dataset, read_label
from segnext.data import classes as C
from segnext.data.prepare import prepare


def test_folder_colour_masks_to_class_ids_through_the_cli(tmp_path, capsys):
    """Masks as labelling tools export them: each pixel the colour of its class in classes.json's palette."""
    palette = [[70, 130, 180], [128, 64, 128], [0, 0, 142]]
    source, destination = tmp_path / "exported", tmp_path / "my_dataset"
    ids = blob_label(12, 16, (0, 1, 2, 255))
    colours = np.zeros((12, 16, 3), dtype=np.uint8)  # ignore (255) -> black, listed in ignore_colors
    for class_id, colour in enumerate(palette):
        colours[ids == class_id] = colour
    save_image(source / "images/train/a.jpg", random_image(12, 16))
    save_image(source / "labels/train/a.png", colours)
    save_image(source / "images/val/b.jpg", random_image(12, 16, seed=1))
    (source / "labels/val").mkdir(parents=True)
    Image.fromarray(colours).quantize(colors=8).save(source / "labels/val/b.png")  # palettised, the same colours
    (source / "classes.json").write_text(json.dumps({"classes": ["sky", "road", "car"], "palette": palette,
                                                     "ignore_colors": [[0, 0, 0]],
                                                     "reduce_zero_label": True}))  # of ids; colours say the class
    argv = ["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    assert "2 converted" in capsys.readouterr().out
    meta = json.loads((destination / "classes.json").read_text())
    assert meta == {"classes": ["sky", "road", "car"], "palette": palette, "ignore_index": 255}
    train = build_dataset("folder", destination, "train")
    assert len(train) == 1 and np.array_equal(train[0]["label"], ids)
    assert np.array_equal(build_dataset("folder", destination, "val")[0]["label"], ids)
    assert main(argv) == 0 and "2 already done" in capsys.readouterr().out


def test_folder_colour_masks_in_split_first_folders(tmp_path):
    """train/images + train/masks (colour masks), as many tools export: converted into the folder
    dataset's order, each split's images linked."""
    palette = [[0, 0, 0], [255, 255, 255]]
    source, destination = tmp_path / "exported", tmp_path / "my_dataset"
    ids = blob_label(12, 16, (0, 1))
    for split in ("train", "valid"):
        save_image(source / f"{split}/images/{split}_a.jpg", random_image(12, 16))
        save_label(source / f"{split}/masks/{split}_a.png", ids * 255)  # a binary mask of 0 and 255
    (source / "classes.json").write_text(json.dumps({"classes": ["background", "crack"], "palette": palette}))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert report.converted == 2 and not report.failures
    assert (destination / "images/val").resolve() == (source / "valid/images").resolve()  # valid: the val split
    valid = build_dataset("folder", destination, "val")
    assert len(valid) == 1 and np.array_equal(valid[0]["label"], ids)
    assert valid[0]["path"] == str(destination / "images/val/valid_a.jpg")


def test_folder_colour_masks_in_sequence_sub_folders(tmp_path):
    """Colour masks kept by sequence (labels/<split>/<sequence>/, <split>/masks/<sequence>/) are
    converted to the same relative paths, so that each still pairs with its image."""
    palette = [[0, 0, 0], [255, 255, 255]]
    source, destination = tmp_path / "exported", tmp_path / "my_dataset"
    ids = blob_label(12, 16, (0, 1))
    for frame in ("drive1/0001", "drive2/0001"):  # the same file name in two sequences
        save_image(source / f"train/images/{frame}.jpg", random_image(12, 16))
        save_label(source / f"train/masks/{frame}.png", ids * 255)
    (source / "classes.json").write_text(json.dumps({"classes": ["background", "lane"], "palette": palette}))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert report.converted == 2 and not report.failures
    train = build_dataset("folder", destination, "train")
    assert [s["path"] for s in train] == [str(destination / f"images/train/drive{i}/0001.jpg") for i in (1, 2)]
    assert all(np.array_equal(sample["label"], ids) for sample in train)


def test_folder_colour_masks_name_what_is_wrong(tmp_path, capsys):
    palette = [[70, 130, 180], [128, 64, 128]]
    source, destination = tmp_path / "exported", tmp_path / "out"
    colours = np.full((4, 6, 3), palette[0], dtype=np.uint8)
    colours[0, :2] = (1, 2, 3)  # an edge a tool anti-aliased, or a class left out of classes.json
    save_image(source / "labels/train/bad.png", colours)
    save_image(source / "labels/train/good.png", np.full((4, 6, 3), palette[1], dtype=np.uint8))
    save_image(source / "labels/train/lossy.jpg", np.full((4, 6, 3), palette[1], dtype=np.uint8))
    save_label(source / "labels/train/ids.png", np.zeros((4, 6)))
    save_image(source / "labels/train/good.bmp", np.full((4, 6, 3), palette[1], dtype=np.uint8))
    (source / "classes.json").write_text(json.dumps({"classes": ["sky", "road"], "palette": palette}))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert report.converted == 1 and len(report.failures) == 4
    failures = "\n".join(report.failures)
    assert "bad.png: colours in neither the palette" in failures and "[1, 2, 3] (2 px)" in failures
    assert "lossy.jpg: a JPEG mask" in failures
    assert "ids.png: a single-channel mask with values 0, not all grey colours [v, v, v] of classes.json's " \
           "palette or ignore_colors. If they are class ids, the folder dataset reads them as they are" in failures
    assert "good.png: a second mask for good (the first: " in failures
    assert read_label(destination / "labels/train/good.png").tolist() == np.ones((4, 6), int).tolist()
    assert not (destination / "labels/train/bad.png").exists()

    with pytest.raises(ValueError, match="DST must be another folder than SRC"):
        prepare("folder", source, source, progress=False)
    (source / "classes.json").write_text(json.dumps({"classes": ["sky", "road"]}))
    with pytest.raises(ValueError, match='no "palette"; colour masks need the colour of each class'):
        prepare("folder", source, destination, progress=False)
    (source / "classes.json").write_text(json.dumps({"classes": ["sky", "road"], "palette": [palette[0]] * 2}))
    with pytest.raises(ValueError, match=r"the colours \[\[70, 130, 180\]\] stand for more than one class"):
        prepare("folder", source, destination, progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/classes.json").write_text(json.dumps({"classes": ["sky"], "palette": [palette[0]]}))
    with pytest.raises(FileNotFoundError, match="no colour masks in labels/<split>/, <split>/labels/"):
        prepare("folder", tmp_path / "empty", tmp_path / "elsewhere", progress=False)


def _colour_mask(ids: np.ndarray, palette, ignore_colour=(0, 0, 0)) -> np.ndarray:
    colours = np.zeros(ids.shape + (3,), dtype=np.uint8)
    colours[ids == 255] = ignore_colour
    for class_id, colour in enumerate(palette):
        colours[ids == class_id] = colour
    return colours


def test_cvat_segmentation_mask_export_to_the_folder_layout(tmp_path, capsys):
    """CVAT's "Segmentation mask 1.1" export (Datumaro's too): the Pascal VOC layout with the task's
    classes in labelmap.txt and its subsets in ImageSets/Segmentation; read by `prepare folder` as it is."""
    palette = [[0, 0, 0], [250, 50, 83], [61, 61, 245]]
    source, destination = tmp_path / "task_export", tmp_path / "my_dataset"
    (source / "labelmap.txt").parent.mkdir(parents=True)
    (source / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                         "car:250,50,83::\nperson:61,61,245::\n")
    labels = {}
    for i, stem in enumerate(["frame 001", "frame_002", "cam2/frame_003"]):  # a space, a sub-folder
        labels[stem] = blob_label(12, 16, (0, 1, 2), seed=i)
        save_image(source / f"JPEGImages/{stem}.jpg", random_image(12, 16, seed=i))
        save_image(source / f"SegmentationClass/{stem}.png", _colour_mask(labels[stem], palette))
        save_label(source / f"SegmentationObject/{stem}.png", labels[stem])  # instances: not read
    write_lines(source / "ImageSets/Segmentation/train.txt", ["frame 001", "cam2/frame_003"])
    write_lines(source / "ImageSets/Segmentation/val.txt", ["frame_002"])
    with pytest.raises(ValueError, match=r"holds CVAT's \"Segmentation mask\" export, which the folder dataset "
                                         r"reads once converted: `segnext data prepare folder .* DST`"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 0
    assert "3 converted" in capsys.readouterr().out
    meta = json.loads((destination / "classes.json").read_text())
    assert meta == {"classes": ["background", "car", "person"], "palette": palette, "ignore_index": 255}
    train, val = build_dataset("folder", destination, "train"), build_dataset("folder", destination, "val")
    assert [s["path"] for s in train] == [str(destination / "images/train/cam2/frame_003.jpg"),
                                          str(destination / "images/train/frame 001.jpg")]
    assert np.array_equal(train[0]["label"], labels["cam2/frame_003"]) and len(val) == 1
    assert np.array_equal(val[0]["label"], labels["frame_002"])
    assert (destination / "images/val/frame_002.jpg").resolve() == (source / "JPEGImages/frame_002.jpg").resolve()


def test_cvat_export_without_subsets_labelmap_or_images(tmp_path):
    """One subset (`default`): images/ and labels/ not split yet, with the command that splits them;
    no labelmap.txt: Pascal VOC's classes, its outline colour ignored; no JPEGImages: the masks are
    converted and the report says where the images go; a listed image without a mask is named."""
    source, destination = tmp_path / "export", tmp_path / "voc"
    ids = blob_label(12, 16, (0, 15, 255))  # background, person, outline
    save_image(source / "SegmentationClass/a.png", _colour_mask(ids, C.VOC_PALETTE, ignore_colour=(224, 224, 192)))
    save_image(source / "JPEGImages/a.jpg", random_image(12, 16))
    write_lines(source / "ImageSets/Segmentation/default.txt", ["a", "missing"])
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert report.converted == 1 and report.failures == [
        f"{source / 'ImageSets/Segmentation/default.txt'}: missing has no mask in {source / 'SegmentationClass'}"]
    notes = "\n".join(report.notes)
    assert "read as Pascal VOC's 21 classes" in notes and "--split . --hold-out-fraction 0.2" in notes
    assert read_label(destination / "labels/a.png").tolist() == ids.tolist()
    assert (destination / "images/a.jpg").is_symlink()
    assert json.loads((destination / "classes.json").read_text())["classes"] == list(C.VOC_CLASSES)

    (source / "JPEGImages/a.jpg").unlink()
    (source / "JPEGImages").rmdir()
    (source / "labelmap.txt").write_text("background:0,0,0::\nperson\n")
    with pytest.raises(ValueError, match=r"labelmap.txt, line 2: 'person' is not `name:r,g,b::`"):
        prepare("folder", source, tmp_path / "other", progress=False)
    (source / "labelmap.txt").write_text("background:0,0,0::\nperson:192,128,128::\n")
    report = prepare("folder", source, tmp_path / "other", workers=1, progress=False)
    assert "export again with \"Save images\"" in "\n".join(report.notes) and report.converted == 0
    assert "[224, 224, 192] (" in report.failures[-1]  # the outline is no class of this labelmap


def test_roboflow_semantic_segmentation_masks_export(tmp_path, capsys):
    """Roboflow's "Semantic Segmentation Masks": <split>/NAME.jpg beside NAME_mask.png (pixel values)
    and <split>/_classes.csv; the classes are taken in the order of their values."""
    source, destination = tmp_path / "roboflow", tmp_path / "my_dataset"
    labels = {}
    for i, (split, name) in enumerate([("train", "a_jpg.rf.1f2e"), ("train", "b_jpg.rf.9c0d"), ("valid", "c.rf.77")]):
        labels[name] = blob_label(12, 16, (0, 2, 5), seed=i)  # values 0, 2, 5: background, crack, rust
        save_image(source / f"{split}/{name}.jpg", random_image(12, 16, seed=i))
        save_label(source / f"{split}/{name}_mask.png", labels[name])
        (source / f"{split}/_classes.csv").write_text("Pixel Value, Class\n0, background\n2, crack\n5, rust\n")
    save_image(source / "train/orphan_mask.png", np.zeros((4, 4, 3), dtype=np.uint8))
    save_label(source / "valid/d_mask.png", np.full((12, 16), 3, dtype=np.uint8))
    save_image(source / "valid/d.jpg", random_image(12, 16))
    with pytest.raises(ValueError, match=r"holds Roboflow's \"Semantic Segmentation Masks\" export"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "3 converted" in out and "orphan_mask.png: no image orphan.* beside it" in out
    assert "d_mask.png: pixel values 3 are no class of _classes.csv" in out
    assert "classes by pixel value: 0 background, 2 crack, 5 rust" in out
    assert "the split valid is written as val, the split training validates on" in out
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["background", "crack", "rust"]
    train = build_dataset("folder", destination, "train")
    assert [s["path"] for s in train] == [str(destination / f"images/train/{n}_jpg.rf.{h}.jpg")
                                          for n, h in (("a", "1f2e"), ("b", "9c0d"))]
    ids = {0: 0, 2: 1, 5: 2}
    assert np.array_equal(train[1]["label"], np.vectorize(ids.get)(labels["b_jpg.rf.9c0d"]))
    assert len(build_dataset("folder", destination, "val")) == 1  # Roboflow's valid: read by default

    (source / "valid/_classes.csv").write_text("Pixel Value, Class\n0, background\n1, crack\n")
    with pytest.raises(ValueError, match="lists other classes than"):
        prepare("folder", source, tmp_path / "other", progress=False)
    (source / "valid/_classes.csv").write_text("Pixel Value, Class\nzero, background\n")
    with pytest.raises(ValueError, match=r"_classes.csv, line 2: 'zero, background' is not `pixel value, class`"):
        prepare("folder", source, tmp_path / "other", progress=False)


@pytest.fixture
def coco_mask():
    return pytest.importorskip("pycocotools.mask", reason="pycocotools draws COCO-format annotations "
                                                          "(pip install pycocotools)")


def _coco(images, annotations, categories):
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories}


def _box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def test_roboflow_coco_segmentation_export(tmp_path, coco_mask, capsys):
    """Roboflow's "COCO Segmentation": <split>/_annotations.coco.json beside the images; its first
    category only groups the others. Objects are drawn as pycocotools draws them, the smaller on top."""
    source, destination = tmp_path / "roboflow", tmp_path / "my_dataset"
    categories = [{"id": 0, "name": "defects", "supercategory": "none"},
                  {"id": 1, "name": "crack", "supercategory": "defects"},
                  {"id": 2, "name": "rust", "supercategory": "defects"}]
    for split in ("train", "valid"):
        images, annotations = [], []
        for i in range(2):
            name = f"IMG_{i}_jpg.rf.{split}{i}.jpg"
            save_image(source / split / name, random_image(24, 32, seed=i))
            images.append({"id": i, "file_name": name, "height": 24, "width": 32})
            annotations += [  # a small rust spot listed before the crack it lies on
                {"id": 2 * i, "image_id": i, "category_id": 2, "segmentation": _box_polygon(8, 8, 12, 12),
                 "area": 16, "bbox": [8, 8, 4, 4], "iscrowd": 0},
                {"id": 2 * i + 1, "image_id": i, "category_id": 1, "segmentation": _box_polygon(2, 3, 20, 15),
                 "area": 216, "bbox": [2, 3, 18, 12], "iscrowd": 0}]
        (source / split / "_annotations.coco.json").write_text(json.dumps(_coco(images, annotations, categories)))
    with pytest.raises(ValueError, match="holds a COCO-format export"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 converted" in out and "left out the category defects: it only groups the others" in out
    assert f"next: look at it with `segnext data preview folder {destination} --split train`; train on it with " \
        f"`segnext train folder/segnext_t_folder_512x512_8k data.root={destination}`" in out
    assert "the split valid is written as val" in out
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["background", "crack", "rust"]
    train = build_dataset("folder", destination, "train")
    assert [s["path"] for s in train] == [str(destination / f"images/train/IMG_{i}_jpg.rf.train{i}.jpg")
                                          for i in (0, 1)]
    expected = np.zeros((24, 32), dtype=np.uint8)
    expected[3:15, 2:20] = 1  # pixels whose centres are inside, as pycocotools draws polygons
    expected[8:12, 8:12] = 2
    assert np.array_equal(train[0]["label"], expected)
    reference = coco_mask.decode(coco_mask.frPyObjects(_box_polygon(2, 3, 20, 15), 24, 32))[..., 0]
    assert np.array_equal(reference.astype(bool), expected > 0)
    assert len(build_dataset("folder", destination, "val")) == 2


def test_cvat_coco_export_with_masks_and_unlabelled_frames(tmp_path, coco_mask, capsys):
    """CVAT's "COCO 1.0": annotations/instances_default.json, images/default/; masks as run-length
    encoding (plain and compressed). Frames nobody labelled are left out, not taken for background."""
    source, destination = tmp_path / "cvat", tmp_path / "my_dataset"
    road = np.zeros((20, 30), dtype=bool)
    road[12:, :] = True
    runs = [int(n) for n in np.diff(np.flatnonzero(np.diff(np.r_[-1, road.T.ravel(), -1])))]  # column by column
    car = np.zeros((20, 30), dtype=np.uint8, order="F")
    car[10:16, 5:9] = 1
    compressed = coco_mask.encode(car)
    compressed["counts"] = compressed["counts"].decode()  # as JSON holds it
    images = [{"id": n + 1, "file_name": f"frame_{n:06d}.png", "height": 20, "width": 30} for n in range(3)]
    for image in images:
        save_image(source / "images/default" / image["file_name"], random_image(20, 30, seed=image["id"]))
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"counts": runs, "size": [20, 30]},
                    "area": int(road.sum()), "iscrowd": 1},
                   {"id": 2, "image_id": 1, "category_id": 2, "segmentation": compressed, "area": 24, "iscrowd": 1},
                   {"id": 3, "image_id": 2, "category_id": 2, "segmentation": _box_polygon(0, 0, 30, 20),
                    "area": 600, "iscrowd": 0},
                   {"id": 4, "image_id": 3, "category_id": 1, "segmentation": [], "bbox": [0, 0, 4, 4],
                    "area": 16, "iscrowd": 0}]
    categories = [{"id": 1, "name": "road", "supercategory": ""}, {"id": 2, "name": "car", "supercategory": ""}]
    (source / "annotations").mkdir(parents=True)
    (source / "annotations/instances_default.json").write_text(json.dumps(_coco(images, annotations, categories)))
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 converted" in out and "left out 1 images without any polygon or mask" in out
    assert "1 annotations are boxes without a region: not drawn" in out and "--split ." in out
    dataset = build_dataset("folder", destination, ".")
    assert [s["path"] for s in dataset] == [str(destination / f"images/frame_{n:06d}.png") for n in (0, 1)]
    assert np.array_equal(dataset[0]["label"], np.where(car == 1, 2, road.astype(np.uint8)))
    assert (dataset[1]["label"] == 2).all()


def test_label_studio_coco_export(tmp_path, coco_mask):
    """Label Studio's "COCO": result.json with file names under images/ (Windows separators too) and
    its own "Background" category, which is the class of the pixels no object covers."""
    source, destination = tmp_path / "label_studio", tmp_path / "my_dataset"
    for name in ("0a1b-leaf1.jpg", "3c4d-leaf2.jpg"):
        save_image(source / "images" / name, random_image(16, 16))
    images = [{"id": 0, "file_name": "images/0a1b-leaf1.jpg", "width": 16, "height": 16},
              {"id": 1, "file_name": "images\\3c4d-leaf2.jpg", "width": 16, "height": 16}]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "segmentation": _box_polygon(0, 0, 8, 16), "area": 128}
                   for i in (0, 1)]
    annotations[1]["segmentation"] = annotations[1]["segmentation"][0]  # one polygon written flat, as some tools do
    categories = [{"id": 0, "name": "Background"}, {"id": 1, "name": "Leaf"}]
    (source / "result.json").write_text(json.dumps(_coco(images, annotations, categories)))
    report = prepare("folder", source, destination, workers=1, progress=False)
    assert (report.converted, report.failures) == (2, [])
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["Background", "Leaf"]
    assert sorted(p.name for p in (destination / "labels").iterdir()) == ["0a1b-leaf1.png", "3c4d-leaf2.png"]
    assert read_label(destination / "labels/3c4d-leaf2.png")[:, :8].tolist() == [[1] * 8] * 16


def test_coco_export_problems_are_named(tmp_path, coco_mask, monkeypatch):
    source = tmp_path / "export"
    categories = [{"id": 1, "name": "cat"}]
    save_image(source / "images/a.jpg", random_image(10, 12))
    save_image(source / "images/b.jpg", random_image(12, 10))  # not the size the file gives
    images = [{"id": n, "file_name": f"{name}.jpg", "width": 12, "height": 10} for n, name in enumerate("abc")]
    annotations = [{"id": n, "image_id": n, "category_id": 1, "segmentation": _box_polygon(1, 1, 5, 5), "area": 16}
                   for n in range(3)]
    (source / "result.json").write_text(json.dumps(_coco(images, annotations, categories)))
    report = prepare("folder", source, tmp_path / "out", workers=1, progress=False)
    assert report.converted == 1 and len(report.failures) == 2
    failures = "\n".join(report.failures)
    assert "b.jpg: 10x12 pixels (EXIF orientation applied), but" in failures
    assert "gives 12x10: its annotations would not fit this image" in failures
    assert "(c.jpg): image not found beside the annotations" in failures
    annotations.append({"id": 9, "image_id": 0, "category_id": 7, "segmentation": _box_polygon(1, 1, 5, 5)})
    (source / "result.json").write_text(json.dumps(_coco(images, annotations, categories)))
    with pytest.raises(ValueError, match="annotation 9 refers to image 0 or category 7, which the file does not"):
        prepare("folder", source, tmp_path / "other", progress=False)
    boxes = [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": []}]
    (source / "result.json").write_text(json.dumps(_coco(images, boxes, categories)))
    with pytest.raises(FileNotFoundError, match=r"no image has a polygon or mask to draw \(1 annotations are boxes"):
        prepare("folder", source, tmp_path / "other", progress=False)
    monkeypatch.setitem(__import__("sys").modules, "pycocotools", None)
    with pytest.raises(ValueError, match="drawn with pycocotools, which is not installed: pip install pycocotools"):
        prepare("folder", source, tmp_path / "other", progress=False)


def _labelme_file(path, shapes, image_path, size=(16, 24), image_data=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path,
                                "imageData": image_data, "imageHeight": size[0], "imageWidth": size[1]}))


def _shape(label, points, shape_type="polygon", **extra):
    return {"label": label, "points": points, "group_id": None, "shape_type": shape_type, "flags": {}, **extra}


def test_labelme_files_drawn_as_labelme2voc_draws_them(tmp_path, capsys):
    """labelme: NAME.json beside each image, shapes drawn in order with Pillow, classes from labels.txt
    (`__ignore__` -> 255, `_background_` the pixels no shape covers); the image may be in the file."""
    import base64
    import io

    source, destination = tmp_path / "labelme", tmp_path / "my_dataset"
    (source).mkdir()
    (source / "labels.txt").write_text("__ignore__\n_background_\nroad\ncar\nsign\n")
    save_image(source / "drive1/0001.jpg", random_image(16, 24, seed=1))
    mask = np.zeros((3, 4), dtype=bool)
    mask[1:, 1:] = True
    packed = io.BytesIO()
    Image.fromarray(mask).save(packed, format="PNG")
    _labelme_file(source / "drive1/0001.json", [
        _shape("road", [[0, 10], [23, 10], [23, 15], [0, 15]]),
        _shape("car", [[2, 8], [6, 12]], "rectangle"),  # over the road: later shapes are drawn on top
        _shape("sign", [[18, 3], [18, 5]], "circle"),
        _shape("__ignore__", [[12, 0], [14, 2]], "rectangle"),
        _shape("road", [[0, 0], [3, 2]], "mask", mask=base64.b64encode(packed.getvalue()).decode())], "0001.jpg")
    embedded = io.BytesIO()
    Image.fromarray(random_image(16, 24, seed=2)).save(embedded, format="PNG")
    _labelme_file(source / "drive2/0007.json", [_shape("car", [[0, 0], [4, 4]], "rectangle")],
                  "..\\\\originals\\\\0007.png", image_data=base64.b64encode(embedded.getvalue()).decode())
    _labelme_file(source / "drive2/0008.json", [_shape("truck", [[0, 0], [4, 4]], "rectangle")], "0008.jpg")
    save_image(source / "drive2/0008.jpg", random_image(16, 24))
    with pytest.raises(ValueError, match="holds labelme's export"):
        build_dataset("folder", source, ".")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 converted" in out and "0008.json: label 'truck' is not in labels.txt; add it there" in out
    assert f"classes from {source / 'labels.txt'}: background, road, car, sign" in out and "--split ." in out
    assert json.loads((destination / "classes.json").read_text())["classes"] == ["background", "road", "car", "sign"]
    dataset = build_dataset("folder", destination, ".")
    assert [s["path"] for s in dataset] == [str(destination / "images/drive1/0001.jpg"),
                                            str(destination / "images/drive2/0007.png")]
    expected = np.zeros((16, 24), dtype=np.uint8)
    expected[10:16, :] = 1  # the polygon with its edge pixels, as Pillow fills it
    expected[8:13, 2:7] = 2  # the rectangle from corner to corner pixel, both included
    expected[1:6, 17:20] = 3  # a disc of radius 2 around (18, 3): Pillow's ellipse in the box 16..20, 1..5
    expected[2:5, 16:21] = 3
    expected[0:3, 12:15] = 255
    expected[1:3, 1:4] = 1  # the mask's set pixels, in its box from (0, 0)
    assert np.array_equal(dataset[0]["label"], expected)
    assert np.array_equal(dataset[1]["image"], random_image(16, 24, seed=2))  # written from the file's imageData
    assert (dataset[1]["label"][:5, :5] == 2).all() and (dataset[1]["label"][5:, 5:] == 0).all()


def test_labelme_splits_sorted_classes_and_problems(tmp_path, capsys):
    source, destination = tmp_path / "labelme", tmp_path / "my_dataset"
    for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
        save_image(source / split / f"{name}.jpg", random_image(16, 24))
        _labelme_file(source / split / f"{name}.json", [_shape("zebra", [[0, 0], [5, 5]], "rectangle"),
                                                        _shape("ant", [[10, 10], [12, 10]], "line")], f"{name}.jpg")
    _labelme_file(source / "train/d.json", [_shape("ant", [[0, 0], [5, 5]], "rectangle")], "d.jpg", size=(24, 16))
    save_image(source / "train/d.jpg", random_image(16, 24))
    _labelme_file(source / "train/e.json", [_shape("ant", [[0, 0], [5, 5]], "rectangle")], "gone.jpg")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "3 converted" in out and "the labels in the files, sorted" in out and "background, ant, zebra" in out
    assert "d.jpg: 24x16 pixels (EXIF orientation applied), but" in out and "gives 16x24: its shapes would" in out
    assert "e.json: its image 'gone.jpg' is neither there nor beside the file" in out and "--split ." not in out
    assert len(build_dataset("folder", destination, "train")) == 2
    label = build_dataset("folder", destination, "val")[0]["label"]
    assert (label[:6, :6] == 2).all() and (label[6:16, 10:13] == 1).all()  # the line is 10 pixels wide


def test_yolo_segmentation_dataset_roboflow_layout(tmp_path, capsys):
    """Roboflow's "YOLOv8": data.yaml, <split>/images/ and <split>/labels/ (`class x1 y1 ...` polygons
    as fractions of the size); boxes cannot be drawn; an empty label file is a background image."""
    source, destination = tmp_path / "yolo", tmp_path / "my_dataset"
    source.mkdir()
    (source / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['crack', 'rust']\n")
    polygons = ("0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n1 0.5 0.5 0.625 0.5 0.625 0.625 0.5 0.625\n"
                "0 0.5 0.5 0.2 0.2\n")
    for split in ("train", "valid"):
        for name, lines in (("a_jpg.rf.1", polygons), ("b_jpg.rf.2", "")):
            save_image(source / split / "images" / f"{name}.jpg", random_image(16, 32))
            (source / split / "labels").mkdir(parents=True, exist_ok=True)
            (source / split / "labels" / f"{name}.txt").write_text(lines)
    with pytest.raises(ValueError, match="holds a YOLO segmentation export"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 converted" in out and "background, crack, rust (pixels no polygon covers: background)" in out
    assert "2 lines are boxes (class cx cy w h), not polygons: not drawn" in out
    assert "the split valid is written as val" in out and len(build_dataset("folder", destination, "val")) == 2
    train = build_dataset("folder", destination, "train")
    assert [s["path"] for s in train] == [str(destination / f"images/train/{n}.jpg")
                                          for n in ("a_jpg.rf.1", "b_jpg.rf.2")]
    expected = np.zeros((16, 32), dtype=np.uint8)
    expected[4:13, 8:25] = 1  # corners (8, 4) .. (24, 12) in pixels, edges included as Pillow draws
    expected[8:11, 16:21] = 2  # the smaller polygon, drawn last
    assert np.array_equal(train[0]["label"], expected)
    assert (train[1]["label"] == 0).all()


def test_yolo_segmentation_dataset_ultralytics_layout_and_problems(tmp_path, capsys):
    """Ultralytics' layout (images/<split>/, labels/<split>/, names as {id: name}): an image without
    a label file is a background image; a label file without an image, or naming a class data.yaml
    does not have, is named."""
    source, destination = tmp_path / "yolo", tmp_path / "my_dataset"
    source.mkdir()
    (source / "data.yaml").write_text("path: ../datasets/x\ntrain: images/train\nval: images/val\n"
                                      "names:\n  0: person\n  1: background\n")
    for split in ("train", "val"):
        save_image(source / f"images/{split}/0.png", random_image(8, 8))
        save_image(source / f"images/{split}/1.png", random_image(8, 8))
        (source / f"labels/{split}").mkdir(parents=True)
        (source / f"labels/{split}/1.txt").write_text("0.0 0 0 1 0 1 1 0 1\r\n")  # a class as a float, CRLF
    (source / "labels/train/orphan.txt").write_text("0 0 0 1 0 1 1\n")
    (source / "labels/train.cache").write_bytes(b"\x00")  # what Ultralytics leaves there
    save_image(source / "images/val/2.png", random_image(8, 8))
    (source / "labels/val/2.txt").write_text("5 0 0 1 0 1 1\n")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "4 converted" in out and "classes from" in out and "person, background (pixels no polygon covers: " \
        "background)" in out and "2 images have no label file: background images" in out
    assert "orphan.txt: no image orphan.* in" in out
    assert "2.txt, line 1: class 5 is not one of the 2 names of data.yaml (0..1)" in out
    val = build_dataset("folder", destination, "val")
    assert [s["path"] for s in val] == [str(destination / f"images/val/{n}.png") for n in (0, 1)]
    assert (val[0]["label"] == 1).all() and (val[1]["label"] == 0).all()


def _supervisely_bitmap(mask: np.ndarray, origin) -> dict:
    """A bitmap as Supervisely writes it: a 1-bit palette PNG, zlib-compressed, in base64."""
    import base64
    import io
    import zlib

    image = Image.fromarray(mask.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    packed = io.BytesIO()
    image.save(packed, format="PNG", transparency=0)
    return {"data": base64.b64encode(zlib.compress(packed.getvalue())).decode(), "origin": list(origin)}


def test_supervisely_project_to_the_folder_layout(tmp_path, capsys):
    """Supervisely: meta.json (classes, colours), <dataset>/img/ and <dataset>/ann/NAME.jpg.json;
    bitmaps, polygons with holes and rectangles drawn in order, points counted, not drawn."""
    source, destination = tmp_path / "project", tmp_path / "my_dataset"
    source.mkdir()
    (source / "meta.json").write_text(json.dumps({"classes": [
        {"title": "road", "shape": "polygon", "color": "#804080"},
        {"title": "car", "shape": "bitmap", "color": "#00008E"},
        {"title": "sign", "shape": "rectangle", "color": "#DCDC00"},
        {"title": "lamp", "shape": "point", "color": "#FFFFFF"}], "tags": []}))
    car = np.zeros((3, 4), dtype=bool)
    car[1:, 1:] = True
    objects = [
        {"classTitle": "road", "geometryType": "polygon",
         "points": {"exterior": [[0, 6], [15, 6], [15, 11], [0, 11]],
                    "interior": [[[2, 8], [4, 8], [4, 10], [2, 10]]]}},
        {"classTitle": "car", "geometryType": "bitmap", "bitmap": _supervisely_bitmap(car, (10, 5))},
        {"classTitle": "sign", "geometryType": "rectangle", "points": {"exterior": [[1, 1], [3, 2]], "interior": []}},
        {"classTitle": "lamp", "geometryType": "point", "points": {"exterior": [[7, 7]], "interior": []}}]
    for split, name in (("train", "a.jpg"), ("train", "b.jpg"), ("val", "c.jpg")):
        save_image(source / split / "img" / name, random_image(12, 16))
        (source / split / "ann").mkdir(parents=True, exist_ok=True)
        (source / split / "ann" / f"{name}.json").write_text(json.dumps(
            {"description": "", "tags": [], "size": {"height": 12, "width": 16}, "objects": objects}))
    (source / "val/ann/d.jpg.json").write_text(json.dumps({"size": {"height": 12, "width": 16}, "objects": []}))
    save_image(source / "val/img/e.jpg", random_image(12, 16))
    (source / "val/ann/e.jpg.json").write_text(json.dumps(
        {"size": {"height": 12, "width": 16}, "objects": [{"classTitle": "truck", "geometryType": "rectangle"}]}))
    with pytest.raises(ValueError, match="holds a Supervisely project's export, which the folder dataset reads once"):
        build_dataset("folder", source, "train")
    assert main(["data", "prepare", "folder", str(source), str(destination), "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "3 converted" in out and "3 objects without area (points, lines) not drawn" in out
    assert "classes from" in out and "background, road, car, sign, lamp (pixels no object covers: background)" in out
    assert "d.jpg.json: no image" in out and "e.jpg.json: object 0 is of class 'truck', which meta.json does not" in out
    classes = json.loads((destination / "classes.json").read_text())
    assert classes["palette"][:3] == [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    train = build_dataset("folder", destination, "train")
    assert [s["path"] for s in train] == [str(destination / f"images/train/{n}.jpg") for n in "ab"]
    expected = np.zeros((12, 16), dtype=np.uint8)
    expected[6:12, :] = 1  # the polygon, its edges included
    expected[8:11, 2:5] = 0  # its hole
    expected[6:8, 11:14] = 2  # the bitmap's set pixels, from its origin (10, 5)
    expected[1:3, 1:4] = 3  # the rectangle, corners included
    assert np.array_equal(train[0]["label"], expected)
    assert len(build_dataset("folder", destination, "val")) == 1


def test_an_exports_split_names_become_the_ones_training_reads(tmp_path):
    """images/valid + labels/valid (Roboflow's name) is written as val, the split training validates
    on, the images linked split by split; CVAT's subsets Train and Validation as train and val; an
    export with val and valid keeps both names."""
    palette = [[0, 0, 0], [255, 255, 255]]
    ids = blob_label(12, 16, (0, 1))
    for splits, written in ((("train", "valid"), ("train", "val")), (("Train", "Validation"), ("train", "val")),
                            (("train", "val", "valid"), ("train", "val", "valid"))):
        source, destination = tmp_path / "-".join(splits), tmp_path / ("out-" + "-".join(splits))
        for split in splits:
            save_image(source / f"images/{split}/{split}_a.jpg", random_image(12, 16))
            save_label(source / f"labels/{split}/{split}_a.png", ids * 255)
        (source / "classes.json").write_text(json.dumps({"classes": ["background", "crack"], "palette": palette}))
        report = prepare("folder", source, destination, workers=1, progress=False)
        assert report.converted == len(splits) and not report.failures
        for split, name in zip(splits, written):
            assert (destination / "images" / name).resolve() == (source / "images" / split).resolve()
            assert [s["path"] for s in build_dataset("folder", destination, name)] == \
                [str(destination / f"images/{name}/{split}_a.jpg")]
        assert ("the split Validation is written as val, the split training validates on" in report.notes) == \
            (splits[1] == "Validation")


def test_a_conversion_resumed_with_other_classes_is_refused_unless_overwritten(tmp_path):
    """The labels of DST hold the ids of the classes they were made with: converting again after the
    classes changed would skip them and mix both, so it stops, saying so; --overwrite redoes them."""
    source, destination = tmp_path / "labelme", tmp_path / "my_dataset"
    save_image(source / "a.jpg", random_image(16, 24))
    _labelme_file(source / "a.json", [_shape("car", [[0, 0], [4, 4]], "rectangle")], "a.jpg")
    (source / "labels.txt").write_text("_background_\ncar\n")
    assert prepare("folder", source, destination, workers=1, progress=False).converted == 1
    assert prepare("folder", source, destination, workers=1, progress=False).skipped == 1  # the same classes: resumed
    (source / "labels.txt").write_text("_background_\nroad\ncar\n")
    with pytest.raises(ValueError, match=r"classes.json names other classes or colours \(\['background', 'car'\]\) "
                                         r"than this conversion's \(\['background', 'road', 'car'\]\).*--overwrite"):
        prepare("folder", source, destination, workers=1, progress=False)
    assert read_label(destination / "labels/a.png")[0, 0] == 1  # untouched
    assert prepare("folder", source, destination, workers=1, overwrite=True, progress=False).converted == 1
    assert read_label(destination / "labels/a.png")[0, 0] == 2


def test_a_folder_of_no_known_export_is_told_which_exports_are_read(tmp_path):
    save_image(tmp_path / "photos/images/a.jpg", random_image(8, 8))
    (tmp_path / "photos/export.json").write_text('{"tasks": []}')
    with pytest.raises(FileNotFoundError, match=r"none of the exports segnext reads \(CVAT's or Datumaro's "
                                                r"\"Segmentation mask\", .* a Supervisely project; docs/datasets.md\)"):
        prepare("folder", tmp_path / "photos", tmp_path / "out", progress=False)


def test_an_export_zip_as_downloaded_is_extracted_beside_it_and_read(tmp_path, capsys):
    """Tools hand exports out as .zip files, often with one folder inside: `data prepare` takes the
    .zip, extracts it beside itself (the converted dataset links to its images), and reads the
    extraction again the next time; a member named with ".." stays inside."""
    import zipfile

    from segnext.data.conversion import extract_download

    archive = tmp_path / "downloads/labelme_export.zip"
    archive.parent.mkdir()
    image = tmp_path / "a.png"
    save_image(image, random_image(16, 24))
    shapes = [_shape("car", [[0, 0], [4, 4]], "rectangle")]
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(image, "project-1/a.png")
        zipped.writestr("project-1/a.json", json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes,
                                                         "imagePath": "a.png", "imageData": None,
                                                         "imageHeight": 16, "imageWidth": 24}))
    destination = tmp_path / "my_dataset"
    assert main(["data", "prepare", "folder", str(archive), str(destination), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"extracted {archive} to {tmp_path / 'downloads/labelme_export'}" in out and "1 converted" in out
    assert (destination / "images/a.png").resolve() == tmp_path / "downloads/labelme_export/project-1/a.png"
    assert (read_label(destination / "labels/a.png")[:5, :5] == 1).all()
    assert main(["data", "prepare", "folder", str(archive), str(destination), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"read {tmp_path / 'downloads/labelme_export'}, extracted from {archive} before" in out
    assert "1 already done" in out
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zipped:
        zipped.writestr("../../escaped.txt", "a member that would land outside")
    folder, _ = extract_download(tmp_path / "evil.zip")
    assert folder == tmp_path / "evil" and (folder / "escaped.txt").is_file()
    assert not (tmp_path.parent / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
