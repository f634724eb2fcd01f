"""`segnext predict`: folders, globs, outputs, and a corrupt file among good ones."""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from segnext.cli.main import main
from segnext.inference import Segmenter, TestConfig, prepare

FAST = ["--img-scale", "96", "64", "--no-progress"]


def image_size(path):
    with Image.open(path) as image:
        return image.size


def _scene(height, width, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_scene(40, 56, 1)).save(folder / "a.png")
    Image.fromarray(_scene(33, 21, 2)).convert("L").save(folder / "b.jpg")
    Image.fromarray(_scene(25, 30, 3)).save(folder / "sub" / "c.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not an image")
    (folder / "notes.txt").write_text("not an image, not an input")
    return folder


def test_folder_with_a_corrupt_file(checkpoint_path, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["predict", "--checkpoint", str(checkpoint_path), str(image_folder), "--out", str(out),
                   "--overlay", "--probs", *FAST])
    err = capsys.readouterr().err
    assert status == 1
    assert "broken.jpg" in err and "1 input(s) failed" in err
    with Image.open(out / "a.png") as labels:
        assert labels.mode == "P" and labels.size == (56, 40)
        assert labels.getpalette()[:3] == [120, 120, 120]  # ADE20K's palette from the checkpoint
    assert image_size(out / "b.png") == (21, 33)
    assert image_size(out / "sub" / "c.png") == (30, 25)  # the sub-folder is kept
    assert image_size(out / "a_overlay.jpg") == (56, 40)
    probabilities = np.load(out / "a_probs.npy")
    assert probabilities.shape == (150, 40, 56) and probabilities.dtype == np.float16
    assert np.array_equal(probabilities.astype(np.float32).argmax(0)[probabilities.max(0) > 0.5],
                          np.asarray(labels)[probabilities.max(0) > 0.5])
    assert not (out / "broken.png").exists()


def test_names_with_dots_keep_them(checkpoint_path, tmp_path, capsys):
    """Frames exported as scene.0001.jpg, scene.0002.jpg: each its own label map (they were all
    written to scene.png, each over the last)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(_scene(24, 32, index)).save(folder / f"scene.{index:04d}.jpg")
    assert main(["predict", "-c", str(checkpoint_path), str(folder), "--out", str(tmp_path / "out"), "--overlay",
                 *FAST]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"scene.{index:04d}{ending}" for index in range(3) for ending in (".png", "_overlay.jpg")]


def test_names_that_differ_only_in_their_ending_keep_it_and_same_names_are_refused(checkpoint_path, tmp_path,
                                                                                    capsys):
    folder = tmp_path / "photos"
    (folder / "other").mkdir(parents=True)
    for name, seed in (("x.jpg", 1), ("x.png", 2), ("y.png", 3), ("other/x.jpg", 4)):
        Image.fromarray(_scene(24, 32, seed)).save(folder / name)
    assert main(["predict", "-c", str(checkpoint_path), str(folder / "x.jpg"), str(folder / "x.png"),
                 str(folder / "y.png"), "--out", str(tmp_path / "out"), *FAST]) == 0
    assert "2 image(s) share their name with another but for the ending" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg.png", "x.png.png", "y.png"]
    assert main(["predict", "-c", str(checkpoint_path), str(folder / "x.jpg"), str(folder / "other" / "x.jpg"),
                 "--out", str(tmp_path / "out2"), *FAST]) != 0
    assert re.search(r"x.jpg and .*x.jpg would both be written to .*out2/x; pass them in separate runs",
                     capsys.readouterr().err)
    assert not (tmp_path / "out2").exists()


def test_no_input_is_written_over_and_the_output_folder_is_not_searched(checkpoint_path, tmp_path, capsys):
    """photo.png segmented into its own folder would have become its label map; and a second run in
    the folder of the images would have segmented the first run's label maps."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, seed in (("a.png", 1), ("b.jpg", 2)):
        Image.fromarray(_scene(24, 32, seed)).save(folder / name)
    before = (folder / "a.png").read_bytes()
    assert main(["predict", "-c", str(checkpoint_path), str(folder), "--out", str(folder), *FAST]) == 1
    assert f"the prediction of {folder / 'a.png'} would be written over the input image" in capsys.readouterr().err
    assert (folder / "a.png").read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["a.png", "b.jpg"]
    for _ in range(2):  # the second run finds the same two images, not the first run's outputs too
        assert main(["predict", "-c", str(checkpoint_path), str(folder), "--out", str(folder / "labels"), *FAST]) == 0
        assert "2 image(s) -> " in capsys.readouterr().err
    assert sorted(p.name for p in (folder / "labels").iterdir()) == ["a.png", "b.png"]


def test_glob_and_single_file_and_missing_input(checkpoint_path, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["predict", "-c", str(checkpoint_path), str(image_folder / "*.png"), str(image_folder / "b.jpg"),
                   "--out", str(out), *FAST])
    assert status == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    status = main(["predict", "-c", str(checkpoint_path), str(tmp_path / "nothing_here.png"), "--out", str(out)])
    assert status == 1 and "nothing_here.png (no such file or folder)" in capsys.readouterr().err
    status = main(["predict", "-c", str(checkpoint_path), "https://example.com/street.jpg", "--out", str(out)])
    assert status == 1 and "https://example.com/street.jpg (a URL; only local files are read: download it " \
                           "first" in capsys.readouterr().err


def test_out_naming_a_png_file_for_one_image(checkpoint_path, image_folder, tmp_path, capsys):
    """`--out result.png` for one image writes its label map there (not a folder called result.png);
    for several images, or as a JPEG, it is refused before the model loads."""
    result = tmp_path / "results" / "street.png"
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out", str(result),
                 "--overlay", *FAST]) == 0
    assert f"wrote 1 prediction(s) to {result}" in capsys.readouterr().err
    assert sorted(p.name for p in result.parent.iterdir()) == ["street.png", "street_overlay.jpg"]
    assert result.is_file() and image_size(result) == image_size(image_folder / "a.png")
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "r.png")]) == 1
    assert "names one file, but 4 inputs are to be segmented; give a folder" in capsys.readouterr().err
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out",
                 str(tmp_path / "r.jpg")]) == 1
    assert f"label maps are written as PNG (.jpg would change the class ids at edges, or cannot hold them); give " \
           f"--out {tmp_path / 'r.png'}" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "r.jpg").exists()


def test_slide_and_multi_scale_flags(checkpoint_path, image_folder, tmp_path):
    out = tmp_path / "out"
    image = str(image_folder / "a.png")
    assert main(["predict", "-c", str(checkpoint_path), image, "--out", str(out / "slide"), "--mode", "slide",
                 "--crop-size", "32", "32", "--stride", "24", "24", *FAST]) == 0
    assert main(["predict", "-c", str(checkpoint_path), image, "--out", str(out / "ms"), "--scales", "0.5", "1.0",
                 "--flip", *FAST]) == 0
    for kind in ("slide", "ms"):
        assert image_size(out / kind / "a.png") == (56, 40)


def test_predict_with_onnxruntime(checkpoint_path, image_folder, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: `segnext predict --onnx` untested")
    model_file = tmp_path / "model.onnx"
    assert main(["export", "-c", str(checkpoint_path), "-o", str(model_file), "--shape", "64", "96"]) == 0
    assert main(["predict", "--onnx", str(model_file), str(image_folder / "a.png"), "--out", str(tmp_path / "onnx"),
                 *FAST]) == 0
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out", str(tmp_path / "torch"),
                 *FAST]) == 0
    through_onnx = np.asarray(Image.open(tmp_path / "onnx" / "a.png"))
    through_torch = np.asarray(Image.open(tmp_path / "torch" / "a.png"))
    assert (through_onnx == through_torch).mean() >= 0.99


def _outputs(folder):
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def test_batches_and_workers_write_the_single_image_outputs(checkpoint_path, image_folder, tmp_path, capsys):
    """Images of different sizes, a corrupt one among them: the same files and the same label maps
    and probabilities with --batch-size 3 and a reader process as one by one in the main process."""
    Image.fromarray(_scene(41, 57, 4)).save(image_folder / "d.png")
    ade20k = TestConfig(img_scale=(96, 64), size_divisor=32)  # the checkpoint's settings with FAST's scale
    assert prepare(image_folder / "d.png", ade20k).group_key == prepare(image_folder / "a.png", ade20k).group_key
    runs = {}
    for name, options in (("single", ["--batch-size", "1", "--workers", "0"]),
                          ("batched", ["--batch-size", "3", "--workers", "1"])):
        out = tmp_path / name
        status = main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--probs",
                       *options, *FAST])
        err = capsys.readouterr().err
        assert status == 1 and "broken.jpg" in err and "1 input(s) failed" in err
        runs[name] = _outputs(out)
    assert sorted(runs["single"]) == sorted(runs["batched"]) == [
        "a.png", "a_probs.npy", "b.png", "b_probs.npy", "d.png", "d_probs.npy", "sub/c.png", "sub/c_probs.npy"]
    for name, single in runs["single"].items():
        batched = runs["batched"][name]
        if name.endswith(".npy"):
            assert np.array_equal(np.load(single), np.load(batched)), name
        else:
            assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(batched))), name


def test_video_gets_an_overlay_video_and_label_maps(checkpoint_path, image_folder, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'segnext[opencv]'): videos untested")
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (56, 40))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v video: video prediction untested")
    for index in range(10):
        writer.write(np.ascontiguousarray(_scene(40, 80, 7)[:, index * 2:index * 2 + 56]))
    writer.release()
    out = tmp_path / "out"
    status = main(["predict", "-c", str(checkpoint_path), str(clip), str(image_folder / "a.png"), "--out", str(out),
                   "--batch-size", "4", "--img-scale", "96", "64", "--confidence"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert f"wrote {out / 'clip' / 'confidence.csv'}: each frame's mean confidence, least confident first" in err
    assert re.search(r"\n  confidence +[0-9.]+%  unsure pixels +[0-9.]+%  frame 0000[0-9][0-9] \([0-9.]+ s\)\n", err)
    assert "1 image(s), 1 video(s)" in err and "10 frames" in err
    assert "clip.mp4:   0%|" in err and "0/10 [" in err and "frame/s" in err  # a progress bar over the frames
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_confidence.png", "clip", "clip_overlay.mp4",
                                                     "confidence.csv"]
    assert sorted(p.name for p in (out / "clip").iterdir()) == sorted(
        ["confidence.csv"] + [f"{i:06d}{kind}.png" for i in range(10) for kind in ("", "_confidence")])
    assert main(["predict", "-c", str(checkpoint_path), str(clip), "--out", str(tmp_path / "alone"), "--img-scale",
                 "96", "64", "--confidence", "--no-progress"]) == 0  # a video alone: no table of images
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == ["clip", "clip_overlay.mp4"]
    capture = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 56
    capture.release()


def test_video_without_opencv_says_how_to_get_it_before_any_work(checkpoint_path, tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: the check comes first")
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert main(["predict", "-c", str(checkpoint_path), str(clip), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Segmenting videos (clip.mp4) needs the opencv-python-headless package: pip install 'segnext[opencv]'" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("options,message", [
    (["--batch-size", "0"], "argument --batch-size: must be a whole number of at least 1, got '0'"),
    (["--workers", "-1"], "argument --workers: must be a whole number of at least 0, got '-1'"),
    (["--mode", "slide", "--crop-size", "0", "0", "--stride", "8", "8"], "argument --crop-size: must be a whole"),
])
def test_execution_options_are_checked_before_any_work(checkpoint_path, image_folder, tmp_path, capsys, options,
                                                       message):
    with pytest.raises(SystemExit):
        main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "out"), *options])
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_amp_is_a_noted_no_op_on_the_cpu_and_refused_for_onnx(checkpoint_path, image_folder, tmp_path, capsys):
    assert main(["predict", "-c", str(checkpoint_path), "--amp", str(image_folder / "a.png"),  # a flag: takes no file
                 "--out", str(tmp_path / "amp"), "--device", "cpu", *FAST]) == 0
    assert "--amp has no effect on the CPU" in capsys.readouterr().err
    assert main(["predict", "--onnx", str(tmp_path / "m.onnx"), str(image_folder), "--amp-dtype", "fp16"]) == 1
    assert "--amp applies to PyTorch checkpoints" in capsys.readouterr().err


def test_reader_processes_by_default_only_where_the_model_is_fast(monkeypatch):
    from segnext.devices import reading_workers

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert reading_workers(100, "cpu") == 0  # the model takes nearly all the time on the CPU
    assert reading_workers(100, "cuda:1") == 2 and reading_workers(1, "cuda") == 0 and reading_workers(2, "mps") == 1
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert reading_workers(100, "cuda") == 1  # a core stays with the main process


def test_a_full_disk_stops_prediction_naming_the_file_and_its_size(checkpoint_path, image_folder, tmp_path, capsys,
                                                                  full_disk):
    out = tmp_path / "out"
    out.mkdir()
    full_disk(out, free=0)
    status = main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), str(image_folder / "b.jpg"),
                   "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    message = rf"{re.escape(str(out / 'a.png'))}: no space left on the device: writing it needs [\d.]+ (bytes|KB)"
    assert re.search(message, err), err
    assert "b.jpg" not in err and list(out.iterdir()) == []  # stopped at once; no partial file left


def test_coco_predictions_read_back_as_the_labels_predicted(checkpoint_path, image_folder, tmp_path, capsys):
    """--coco: one COCO-format file of every image's labels (an RLE mask per class), as labelling tools
    import pre-annotations; `data prepare folder` reads it back to the same labels (the classes after
    the background class it puts first: the ADE20K model has none)."""
    pytest.importorskip("pycocotools", reason="pycocotools writes the masks (pip install pycocotools)")
    import json
    import shutil

    from segnext.data import build_dataset, read_label
    from segnext.data import classes as C

    export = tmp_path / "export"
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "out"),
                 "--coco", str(export / "result.json"), *FAST]) == 1  # broken.jpg fails, the others are written
    assert "wrote " + str(export / "result.json") + ": " in capsys.readouterr().err
    document = json.loads((export / "result.json").read_text())
    assert [image["file_name"] for image in document["images"]] == ["a.png", "b.jpg", "sub/c.png"]
    assert len(document["categories"]) == 150 and document["categories"][0] == {"id": 1, "name": "wall",
                                                                               "supercategory": ""}
    shutil.copytree(image_folder, export / "images", ignore=shutil.ignore_patterns("broken.jpg", "notes.txt"))
    assert main(["data", "prepare", "folder", str(export), str(tmp_path / "again"), "--workers", "1",
                 "--no-progress"]) == 0
    again = build_dataset("folder", tmp_path / "again", ".")
    assert again.class_names == ["background"] + [name.strip() for name in C.ADE20K_CLASSES]  # ADE's "bed "
    for sample in again:
        stem = sample["label_path"].split("labels/")[-1][: -len(".png")]
        assert np.array_equal(sample["label"], read_label(tmp_path / "out" / f"{stem}.png") + 1)


def test_label_studio_predictions_read_back_as_the_labels_predicted(checkpoint_path, image_folder, tmp_path, capsys,
                                                                     monkeypatch):
    """--label-studio: every image a Label Studio task (a local file below the current folder) with a
    brush per class as its predictions, and the labelling interface of the classes; accepted as they
    are and exported, `data prepare folder` reads them back to the same labels."""
    import json
    import shutil

    from segnext.data import build_dataset, read_label
    from segnext.data import classes as C

    monkeypatch.chdir(tmp_path)  # Label Studio's document root for local files
    assert main(["predict", "-c", str(checkpoint_path), "images", "--out", "out", "--label-studio", "tasks.json",
                 *FAST]) == 1  # broken.jpg fails, the others are written
    err = capsys.readouterr().err
    assert "wrote tasks.json: 3 Label Studio task(s) with predictions, and tasks.xml" in err
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={tmp_path}" in err
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d=images/{name}"
                                                   for name in ("a.png", "b.jpg", "sub/c.png")]
    result = tasks[0]["predictions"][0]["result"][0]
    assert (result["type"], result["from_name"], result["to_name"]) == ("brushlabels", "tag", "image")
    # images in cloud storage: their URL is the storage's and their path below the folder given
    assert main(["predict", "-c", str(checkpoint_path), "images", "--out", "out", "--label-studio", "cloud.json",
                 "--label-studio-url", "s3://bucket/photos/", *FAST]) == 1
    assert "the images at s3://bucket/photos/" in capsys.readouterr().err
    assert [t["data"]["image"] for t in json.loads((tmp_path / "cloud.json").read_text())] == [
        "s3://bucket/photos/a.png", "s3://bucket/photos/b.jpg", "s3://bucket/photos/sub/c.png"]
    assert main(["predict", "-c", str(checkpoint_path), "images", "--label-studio-url", "s3://bucket", *FAST]) == 1
    assert "--label-studio-url names the images of --label-studio FILE" in capsys.readouterr().err
    config = (tmp_path / "tasks.xml").read_text()
    assert config.count("<Label value=") == 150 and '<Label value="wall" background="#787878"/>' in config
    assert '<BrushLabels name="tag" toName="image">' in config and '<Image name="image" value="$image"' in config

    export = tmp_path / "export"  # the predictions accepted as they are, exported with the images
    export.mkdir()
    for task in tasks:
        task["annotations"] = [{"id": 1, "result": task["predictions"][0]["result"], "was_cancelled": False}]
    (export / "project-1-at-2026-12-06.json").write_text(json.dumps(tasks))
    shutil.copytree(image_folder, export / "images", ignore=shutil.ignore_patterns("broken.jpg", "notes.txt"))
    assert main(["data", "prepare", "folder", str(export), str(tmp_path / "again"), "--workers", "1",
                 "--no-progress"]) == 0
    again = build_dataset("folder", tmp_path / "again", ".")
    assert again.class_names[0] == "background" and len(again) == 3
    assert sorted(again.class_names[1:], key=str.lower) == again.class_names[1:]
    ade = [name.strip() for name in C.ADE20K_CLASSES]
    for sample in again:
        stem = sample["label_path"].split("labels/images/")[-1][: -len(".png")]
        predicted = read_label(tmp_path / "out" / f"{stem}.png")
        assert np.array_equal(np.array(again.class_names)[sample["label"]], np.array(ade)[predicted])


def test_confidence_maps_and_the_images_least_confident_first(checkpoint_path, image_folder, tmp_path, capsys,
                                                             monkeypatch):
    """--confidence: a greyscale PNG of each pixel's confidence, the table of the images' mean
    confidence (least confident first), and that mean as the score of Label Studio's predictions."""
    import csv
    import json

    from segnext.inference import Segmenter

    monkeypatch.chdir(tmp_path)
    assert main(["predict", "-c", str(checkpoint_path), "images", "--out", "out", "--confidence",
                 "--label-studio", "tasks.json", *FAST]) == 1  # broken.jpg fails, the others are written
    err = capsys.readouterr().err
    segmenter = Segmenter.from_checkpoint(checkpoint_path, device="cpu",
                                          test_config=TestConfig(img_scale=(96, 64), size_divisor=32))
    means = {}
    for name in ("a.png", "b.jpg", "sub/c.png"):
        labels, confidence = segmenter.predict_with_confidence(image_folder / name)
        stem = name.rsplit(".", 1)[0]
        with Image.open(tmp_path / "out" / f"{stem}_confidence.png") as written:
            assert written.mode == "L" and np.array_equal(np.asarray(written), np.round(confidence * 255))
        means[f"images/{name}"] = confidence
    with open(tmp_path / "out" / "confidence.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["image"] for row in rows] == sorted(means, key=lambda name: means[name].mean())
    for row in rows:
        assert float(row["confidence"]) == pytest.approx(100 * means[row["image"]].mean(), abs=0.006)
        assert float(row["unsure_pixels"]) == pytest.approx(100 * (means[row["image"]] < 0.5).mean(), abs=0.006)
    assert "wrote out/confidence.csv: the mean confidence of 3 image(s)" in err and "least confident first" in err
    assert f"  {rows[0]['image']}\n" in err
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [task["predictions"][0]["score"] for task in tasks] == pytest.approx(
        [means[f"images/{name}"].mean() for name in ("a.png", "b.jpg", "sub/c.png")], abs=1e-4)
    # one image written to a file of its own name: its confidence map beside it, no table
    assert main(["predict", "-c", str(checkpoint_path), "images/a.png", "--out", "one/street.png", "--confidence",
                 *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["street.png", "street_confidence.png"]


def test_unsure_pixels_are_left_unlabelled(checkpoint_path, image_folder, tmp_path, capsys):
    """--unsure-below P: the pixels whose confidence is under P get 255 (no label) in the label maps and
    keep the image's colour in the overlays; the others keep the model's label."""
    import csv

    from segnext.data import overlay, write_image
    from segnext.inference import Segmenter

    segmenter = Segmenter.from_checkpoint(checkpoint_path, device="cpu",
                                          test_config=TestConfig(img_scale=(96, 64), size_divisor=32))
    labels, confidence = segmenter.predict_with_confidence(image_folder / "a.png")
    below = float(np.median(confidence))  # about half the pixels unsure
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out", str(out),
                 "--unsure-below", str(below), "--overlay", *FAST]) == 0
    unsure = confidence < below
    assert 0.3 < unsure.mean() < 0.7
    written = np.asarray(Image.open(out / "a.png"))
    assert np.array_equal(written, np.where(unsure, 255, labels))
    image = np.asarray(Image.open(image_folder / "a.png").convert("RGB"))
    write_image(tmp_path / "expected.jpg", overlay(image, written, segmenter.palette, 0.5, ignore_index=255),
                quality=90)
    assert np.array_equal(np.asarray(Image.open(out / "a_overlay.jpg")),
                          np.asarray(Image.open(tmp_path / "expected.jpg")))
    assert not (out / "a_confidence.png").exists()  # only with --confidence
    # with --confidence, the table's unsure pixels are those left unlabelled
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), str(image_folder / "b.jpg"),
                 "--out", str(tmp_path / "both"), "--unsure-below", str(below), "--confidence", *FAST]) == 0
    assert f"their share of pixels under {below:.0%}" in capsys.readouterr().err
    with open(tmp_path / "both" / "confidence.csv", newline="") as file:
        rows = {row["image"]: row for row in csv.DictReader(file)}
    assert float(rows[str(image_folder / "a.png")]["unsure_pixels"]) == pytest.approx(100 * unsure.mean(), abs=0.006)
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "test"),
                 "--unsure-below", "0.5", "--submission", "ade20k", *FAST]) == 1
    assert "--submission's server scores every pixel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "-c", str(checkpoint_path), str(image_folder), "--unsure-below", "1", *FAST])
    assert "a probability between 0 and 1 (not 0 or 1)" in capsys.readouterr().err


def test_class_areas_give_each_image_s_share_of_every_class(checkpoint_path, image_folder, tmp_path, capsys):
    """--class-areas FILE: a CSV row per image (as the inputs came) with its size and each class's share
    of its pixels, as the label maps written hold them; with --unsure-below, the unlabelled share too."""
    import csv

    from segnext.data import classes as C
    from segnext.data import read_label

    for extra in ([], ["--unsure-below", "0.2"]):
        out, table = tmp_path / f"out{len(extra)}", tmp_path / f"areas{len(extra)}.csv"
        assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out),
                     "--class-areas", str(table), *extra, *FAST]) == 1  # broken.jpg fails, the others are written
        assert f"wrote {table}: the share of the pixels of 3 image(s) given each of the 150 classes" in \
            capsys.readouterr().err
        with open(table, newline="") as file:
            rows = list(csv.reader(file))
        names = C.ADE20K_CLASSES
        assert rows[0] == ["image", "width", "height", *names] + (["unlabelled"] if extra else [])
        assert [row[0] for row in rows[1:]] == ["a.png", "b.jpg", "sub/c.png"]
        for row in rows[1:]:
            labels = read_label(out / (row[0].rsplit(".", 1)[0] + ".png"))
            assert [int(row[1]), int(row[2])] == [labels.shape[1], labels.shape[0]]
            shares = 100 * np.bincount(labels.ravel(), minlength=256) / labels.size
            expected = list(shares[:150]) + ([shares[255]] if extra else [])
            assert [float(value) for value in row[3:]] == pytest.approx(expected, abs=0.006)
            assert sum(float(value) for value in row[3:]) == pytest.approx(100, abs=0.01 * len(row))
    assert float(rows[1][-1]) > 0  # some pixels under 20% with 150 classes of random weights


def test_coco_output_without_pycocotools_is_named_before_any_work(checkpoint_path, image_folder, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "out"),
                 "--coco", str(tmp_path / "p.json"), *FAST]) == 1
    assert "drawn with pycocotools, which is not installed: pip install pycocotools" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_polygons_without_rasterio_are_named_before_any_work(checkpoint_path, image_folder, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "out"),
                 "--polygons", *FAST]) == 1
    assert "--polygons needs the rasterio package: pip install 'segnext[gis]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ade20k_submission_is_the_labels_one_based_packed_with_this_runs_files(checkpoint_path, image_folder,
                                                                               tmp_path, capsys):
    import zipfile

    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(tmp_path / "plain"),
                 *FAST]) == 1  # broken.jpg
    out = tmp_path / "ade_test"
    out.mkdir()
    (out / "earlier.png").write_bytes(b"an earlier run's file, not to be uploaded")
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--submission",
                 "ade20k", *FAST]) == 1
    err = capsys.readouterr().err
    assert f"wrote {tmp_path / 'ade_test.zip'}: 3 label map(s) as the ade20k evaluation server takes them; upload " \
           f"this file (1 image(s) failed and are not in it)" in err
    with zipfile.ZipFile(tmp_path / "ade_test.zip") as packed:
        assert sorted(packed.namelist()) == ["a.png", "b.png", "sub/c.png"]
    for name in ("a.png", "b.png", "sub/c.png"):
        with Image.open(out / name) as submitted:
            assert submitted.mode == "L"
            np.testing.assert_array_equal(np.asarray(submitted), np.asarray(Image.open(tmp_path / "plain" / name)) + 1)


@pytest.mark.parametrize("benchmark", ["cityscapes", "voc"])
def test_cityscapes_and_voc_submissions_read_back_as_the_labels_predicted(benchmark, image_folder, tmp_path, capsys):
    import tarfile
    import zipfile

    import segnext
    from segnext.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_ID_TO_TRAIN_ID, VOC_CLASSES, VOC_PALETTE

    classes = CITYSCAPES_CLASSES if benchmark == "cityscapes" else VOC_CLASSES
    segnext.save_model(segnext.create_model("segnext_t", len(classes), class_names=list(classes)), tmp_path / "model")
    image = str(image_folder / "a.png")
    assert main(["predict", "-c", str(tmp_path / "model"), image, "--out", str(tmp_path / "plain"), *FAST]) == 0
    assert main(["predict", "-c", str(tmp_path / "model"), image, "--out", str(tmp_path / "test"),
                 "--submission", benchmark, *FAST]) == 0, capsys.readouterr().err
    predicted = np.asarray(Image.open(tmp_path / "plain" / "a.png"))
    if benchmark == "cityscapes":
        with zipfile.ZipFile(tmp_path / "test.zip") as packed:
            assert packed.namelist() == ["a.png"]
        label_ids = np.asarray(Image.open(tmp_path / "test" / "a.png"))
        np.testing.assert_array_equal(np.vectorize(CITYSCAPES_ID_TO_TRAIN_ID.get)(label_ids), predicted)
    else:
        folder = "results/VOC2012/Segmentation/comp6_test_cls"
        with tarfile.open(tmp_path / "test.tar.gz") as packed:
            assert packed.getnames() == [f"{folder}/a.png"]
        with Image.open(tmp_path / "test" / folder / "a.png") as submitted:
            assert submitted.mode == "P" and submitted.getpalette()[:63] == [c for rgb in VOC_PALETTE for c in rgb]
            np.testing.assert_array_equal(np.asarray(submitted), predicted)


def test_submission_refuses_other_outputs_videos_a_file_and_a_model_of_other_classes(checkpoint_path, image_folder,
                                                                                   tmp_path, capsys):
    image = str(image_folder / "a.png")
    out = str(tmp_path / "out")
    for extra, message in [
            (["--overlay", "--probs"], "--submission writes only the label maps to upload; run --overlay, --probs "
                                       "separately, with another --out"),
            (["--out", str(tmp_path / "a.png")], f"--out {tmp_path / 'a.png'}: --submission writes a folder and its "
                                                 f"archive; give a folder (e.g. --out cityscapes_test)")]:
        assert main(["predict", "-c", str(checkpoint_path), image, "--out", out, "--submission", "cityscapes",
                     *extra, *FAST]) == 1
        assert message in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert main(["predict", "-c", str(checkpoint_path), str(tmp_path / "clip.mp4"), "--out", out, "--submission",
                 "ade20k", *FAST]) == 1
    assert f"--submission is for a benchmark's test images, not videos ({tmp_path / 'clip.mp4'})" in \
        capsys.readouterr().err
    assert main(["predict", "-c", str(checkpoint_path), image, "--out", out, "--submission", "cityscapes",
                 *FAST]) == 1
    assert "the model has 150 classes, but cityscapes has 19" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.zip").exists()


def test_skip_existing_goes_on_where_an_interrupted_run_stopped(checkpoint_path, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder / "a.png"), "--out", str(out), "--overlay",
                 *FAST]) == 0
    written = (out / "a.png").stat().st_mtime_ns
    (out / "a_overlay.jpg").unlink()  # as if interrupted between a's two files
    (image_folder / "broken.jpg").unlink()
    capsys.readouterr()
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--skip-existing",
                 *FAST]) == 0
    err = capsys.readouterr().err
    assert f"1 image(s) skipped: their outputs are in {out} already (--skip-existing)" in err  # a.png: labels only
    assert "wrote 2 prediction(s)" in err and (out / "b.png").is_file() and (out / "sub" / "c.png").is_file()
    assert (out / "a.png").stat().st_mtime_ns == written
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--skip-existing",
                 "--overlay", *FAST]) == 0  # the overlays asked for now: every image again
    err = capsys.readouterr().err
    assert "skipped" not in err and (out / "a_overlay.jpg").is_file() and "wrote 3 prediction(s)" in err
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--skip-existing",
                 "--overlay", *FAST]) == 0
    assert "3 image(s) skipped" in capsys.readouterr().err
    assert main(["predict", "-c", str(checkpoint_path), str(image_folder), "--out", str(out), "--skip-existing",
                 "--confidence", *FAST]) == 1
    assert "--skip-existing would leave the skipped images out of what --confidence writes for all of them" in \
        capsys.readouterr().err


def test_cityscapes_submission_files_score_as_the_model_through_eval_predictions(tmp_path, capsys):
    """Predict a Cityscapes-like split with --submission cityscapes (label ids), then score those files
    with `eval --predictions-format cityscapes`: the model's own evaluation, number for number."""
    import json

    import segnext
    from segnext.data import write_image, write_label
    from segnext.data.classes import CITYSCAPES_CLASSES

    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(0)
    for city, frame in (("ulm", 19), ("ulm", 20), ("bonn", 3)):
        name = f"{city}_000000_{frame:06d}"
        write_image(root / "leftImg8bit" / "val" / city / f"{name}_leftImg8bit.png", _scene(32, 64, frame))
        write_label(root / "gtFine" / "val" / city / f"{name}_gtFine_labelTrainIds.png",
                    rng.integers(0, 19, (32, 64)).astype(np.uint8))
    model = segnext.create_model("segnext_t", 19, class_names=list(CITYSCAPES_CLASSES))
    model.config.test_settings = TestConfig(img_scale=(64, 32)).to_dict()
    segnext.save_model(model, tmp_path / "model")
    config = ["cityscapes/segnext_t_cityscapes_1024x1024_160k", f"data.root={root}"]
    assert main(["eval", *config, "-c", str(tmp_path / "model"), "--out", str(tmp_path / "model.json"),
                 "--no-progress"]) == 0
    assert main(["predict", "-c", str(tmp_path / "model"), str(root / "leftImg8bit" / "val"), "--submission",
                 "cityscapes", "--out", str(tmp_path / "test"), "--no-progress"]) == 0
    assert main(["eval", *config, "--predictions", str(tmp_path / "test"), "--predictions-format", "cityscapes",
                 "--out", str(tmp_path / "files.json"), "--no-progress"]) == 0
    model_results, file_results = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("model", "files"))
    assert file_results["confusion"] == model_results["confusion"]
    assert file_results["category_mIoU"] == model_results["category_mIoU"]
    capsys.readouterr()
    assert main(["eval", *config, "--predictions", str(tmp_path / "test"), "--no-progress"]) == 1  # label ids
    assert "the prediction holds class id" in capsys.readouterr().err
    assert main(["eval", *config, "-c", str(tmp_path / "model"), "--predictions-format", "voc"]) == 1
    assert "--predictions-format says what the --predictions files hold" in capsys.readouterr().err
    assert main(["eval", *config, "--predictions", str(tmp_path / "test"), "--predictions-format", "voc",
                 "--no-progress"]) == 1
    assert "the dataset has 19 classes, but voc has 21" in capsys.readouterr().err


def test_a_model_of_other_input_channels_predicts_files_of_its_bands(image_folder, checkpoint_path, tmp_path,
                                                                      capsys):
    """A 4-channel model reads a folder's .npy arrays (and any file) as bands, labels equal to the
    Segmenter's and overlays drawn on a picture of the bands; RGB files and videos are named as what
    they are. An RGB model leaves arrays out, saying so, or refuses when there is nothing else."""
    import segnext

    model = segnext.create_model("segnext_t", 3, in_channels=4)
    model.config.test_settings = TestConfig(img_scale=None, mean=(100, 110, 120, 500), std=(50, 55, 60, 200)).to_dict()
    folder = segnext.save_model(model, tmp_path / "rgbn")
    bands_dir = tmp_path / "bands"
    (bands_dir / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"a": rng.uniform(0, 1000, (40, 56, 4)).astype(np.float32),
              "sub/b": rng.integers(0, 4000, (33, 21, 4)).astype(np.uint16)}
    for name, array in arrays.items():
        np.save(bands_dir / f"{name}.npy", array)
    out = tmp_path / "out"
    assert main(["predict", "-c", str(folder), str(bands_dir), "--out", str(out), "--overlay", "--no-progress"]) == 0
    # Random bands, not in the units of the settings: the library's warning, said once as the command's.
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("segnext predict: warning: the test settings normalise an image "
                                                     "to channel means of ")
    segmenter = Segmenter.from_checkpoint(folder)
    for name, array in arrays.items():
        labels = np.asarray(Image.open(out / f"{name}.png"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same random bands
            assert np.array_equal(labels, segmenter.predict(array))
        assert image_size(out / f"{name}_overlay.jpg") == (array.shape[1], array.shape[0])
    assert main(["predict", "-c", str(folder), str(image_folder / "a.png"), "--out", str(tmp_path / "rgb"),
                 "--no-progress"]) == 1
    assert "a.png: holds 3 channel(s), and the model takes 4 (in_channels)" in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_bytes(b"not decoded: refused before")
    assert main(["predict", "-c", str(folder), str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "video")]) == 1
    assert "rgbn takes 4 input channels (in_channels), and videos are 8-bit RGB" in capsys.readouterr().err
    rgb = ["predict", "-c", str(checkpoint_path), *FAST, "--out"]
    assert main([*rgb, str(tmp_path / "rgb_out"), str(bands_dir)]) == 1
    assert "takes 8-bit RGB images, and the inputs are NumPy arrays" in capsys.readouterr().err
    np.save(image_folder / "extra.npy", arrays["a"])
    main([*rgb, str(tmp_path / "mixed"), str(image_folder)])
    assert "1 NumPy array(s) left out (extra.npy): " in capsys.readouterr().err
    assert (tmp_path / "mixed" / "a.png").is_file() and not (tmp_path / "mixed" / "extra.png").exists()


def test_label_studio_shows_arrays_of_bands_from_pictures_and_the_export_comes_back_to_them(tmp_path, capsys,
                                                                                           monkeypatch):
    """--label-studio with .npy inputs, which no browser shows: each task's "picture" names a PNG of
    the first three bands (written beside the label maps) and the labelling interface shows it, while
    "image" names the array; the export read back by `data prepare folder` pairs the labels with the
    arrays, as predicted."""
    import json
    import shutil

    import segnext
    from segnext.data import build_dataset, display_rgb

    monkeypatch.chdir(tmp_path)  # Label Studio's document root for local files
    model = segnext.create_model("segnext_t", 3, in_channels=4, class_names=["field", "water", "road"])
    model.config.test_settings = TestConfig(img_scale=None, mean=(100, 110, 120, 500), std=(50, 55, 60, 200)).to_dict()
    segnext.save_model(model, tmp_path / "rgbn")
    (tmp_path / "tiles" / "sub").mkdir(parents=True)
    arrays = {"a": np.random.default_rng(0).uniform(0, 1000, (40, 56, 4)).astype(np.float32),
              "sub/b": np.random.default_rng(1).integers(0, 4000, (33, 21, 4)).astype(np.uint16)}
    for name, array in arrays.items():
        np.save(tmp_path / "tiles" / f"{name}.npy", array)
    run = ["predict", "-c", "rgbn", "tiles", "--out", "out", "--no-progress"]
    assert main([*run, "--label-studio", "tasks.json"]) == 0
    assert "2 image(s) a browser cannot show (arrays, TIFFs) are shown from pictures" in capsys.readouterr().err
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [task["data"] for task in tasks] == [
        {"image": f"/data/local-files/?d=tiles/{name}.npy", "picture": f"/data/local-files/?d=out/{name}_picture.png"}
        for name in ("a", "sub/b")]
    assert '<Image name="image" value="$picture"' in (tmp_path / "tasks.xml").read_text()
    for name, array in arrays.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{name}_picture.png")), display_rgb(array))
    assert main([*run, "--label-studio", "cloud.json", "--label-studio-url", "s3://bucket/tiles"]) == 0
    assert "NAME_picture.png in out (copy them to s3://bucket/tiles beside the images)" in capsys.readouterr().err
    assert json.loads((tmp_path / "cloud.json").read_text())[1]["data"] == {
        "image": "s3://bucket/tiles/sub/b.npy", "picture": "s3://bucket/tiles/sub/b_picture.png"}

    export = tmp_path / "export"  # the predictions accepted as they are, exported with the arrays
    export.mkdir()
    for task in tasks:
        task["annotations"] = [{"id": 1, "result": task["predictions"][0]["result"], "was_cancelled": False}]
    (export / "project-2-at-2026-12-07.json").write_text(json.dumps(tasks))
    shutil.copytree(tmp_path / "tiles", export / "tiles")
    assert main(["data", "prepare", "folder", str(export), "again", "--workers", "1", "--no-progress"]) == 0
    again = build_dataset("folder", tmp_path / "again", ".", channels=4)
    assert len(again) == 2
    for path, sample in zip(again.image_paths, again):
        name = path.split("images/tiles/")[-1][: -len(".npy")]
        assert np.array_equal(sample["image"], arrays[name])
        predicted = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        names = np.array(model.config.class_names)
        assert np.array_equal(np.array(again.class_names)[sample["label"]], names[predicted])


# GeoTIFF tags of a tile in UTM zone 32N (EPSG:32632), 0.5 m pixels: scale, tie point, GeoKeys, their text.
GEO_TAGS = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 500000.0, 5600000.0, 0.0), True),
            (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32632), True),
            (34737, "s", 0, "WGS 84 / UTM zone 32N|", True)]


def test_class_areas_of_geotiffs_are_in_square_metres_where_their_georeference_gives_them(checkpoint_path, tmp_path,
                                                                                          capsys):
    """--class-areas: a GeoTIFF in UTM (0.5 m pixels) gets each class's area in square metres beside
    its shares; one in longitude and latitude and a PNG get none (blank)."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import csv

    scenes = tmp_path / "scenes"
    scenes.mkdir()
    tifffile.imwrite(scenes / "utm.tif", _scene(40, 56, 4), photometric="rgb", extratags=GEO_TAGS)
    degrees = [(33550, "d", 3, (1e-5, 1e-5, 0.0), True), (33922, "d", 6, (0, 0, 0, 11.0, 48.0, 0.0), True),
               (34735, "H", 8, (1, 1, 0, 1, 1024, 0, 1, 2), True)]  # GTModelTypeGeoKey 2: geographic
    tifffile.imwrite(scenes / "wgs84.tif", _scene(40, 56, 5), photometric="rgb", extratags=degrees)
    coded = [*degrees[:2], (34735, "H", 12, (1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 4326), True)]
    tifffile.imwrite(scenes / "epsg4326.tif", _scene(40, 56, 7), photometric="rgb", extratags=coded)
    Image.fromarray(_scene(30, 20, 6)).save(scenes / "plain.png")
    table = tmp_path / "areas.csv"
    assert main(["predict", "-c", str(checkpoint_path), *FAST, str(scenes), "--out", str(tmp_path / "out"),
                 "--class-areas", str(table)]) == 0
    assert "and their areas in square metres for the 2 whose georeference gives them" in capsys.readouterr().err
    with open(table, newline="") as file:
        rows = {row["image"]: row for row in csv.DictReader(file)}
    labels = np.asarray(Image.open(tmp_path / "out" / "utm.png"))
    counts = np.bincount(labels.ravel(), minlength=150)
    from segnext.data.classes import ADE20K_CLASSES

    assert float(rows["utm.tif"]["pixel m2"]) == 0.25
    assert [float(rows["utm.tif"][f"{name} m2"]) for name in ADE20K_CLASSES] == pytest.approx(counts * 0.25)
    assert sum(float(rows["utm.tif"][f"{name} m2"]) for name in ADE20K_CLASSES) == 40 * 56 * 0.25
    for name in ("wgs84.tif", "plain.png"):  # degrees of no named datum, no georeference
        assert rows[name]["pixel m2"] == "" and rows[name]["wall m2"] == "" and rows[name]["wall"] != ""
    # EPSG:4326 at 48 N: each row's pixels the ellipsoid's area between its edges
    from segnext.data.geotiff import row_ground_areas

    row_areas = row_ground_areas(scenes / "epsg4326.tif", 40)
    assert 0.8 < row_areas[0] < row_areas[-1] < 0.9  # 1e-5 degrees: about 0.74 m x 1.11 m, larger to the south
    labels = np.asarray(Image.open(tmp_path / "out" / "epsg4326.png"))
    expected = [float(np.sum((labels == index) * row_areas[:, None])) for index in range(len(ADE20K_CLASSES))]
    assert [float(rows["epsg4326.tif"][f"{name} m2"]) for name in ADE20K_CLASSES] == pytest.approx(expected, abs=0.01)
    assert float(rows["epsg4326.tif"]["pixel m2"]) == pytest.approx(row_areas.mean(), rel=1e-5)


def test_geotiff_label_maps_keep_where_their_image_lies(checkpoint_path, tmp_path, capsys):
    """--geotiff: the label map of a GeoTIFF as a GeoTIFF with the image's georeference (read back by
    tifffile, and by GDAL where rasterio is installed), the class colours as its palette, 255 as no
    data with --unsure-below; the labels those of the PNG; scored back by eval --predictions."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile): --geotiff "
                                                      "untested")
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    scene = _scene(40, 56, 4)
    tifffile.imwrite(tiles / "tile.tif", scene, photometric="rgb", extratags=GEO_TAGS)
    Image.fromarray(_scene(30, 20, 5)).save(tiles / "plain.png")  # no georeference: named in a note
    run = ["predict", "-c", str(checkpoint_path), *FAST, str(tiles)]
    assert main([*run, "--out", str(tmp_path / "png")]) == 0
    assert main([*run, "--out", str(tmp_path / "geo"), "--geotiff", "--unsure-below", "0.3"]) == 0
    assert ("1 of the 2 image(s) carry no georeference (GeoTIFF tags or a world file), e.g. plain.png: their label "
            "maps are TIFFs without one") in capsys.readouterr().err
    with tifffile.TiffFile(tmp_path / "geo" / "tile.tif") as written:
        page = written.pages[0]
        assert written.is_geotiff and page.geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
        assert page.geotiff_tags["ModelTiepoint"] == [0, 0, 0, 500000.0, 5600000.0, 0.0]
        assert page.tags[42113].value == "255"  # GDAL's no data: the unsure pixels
        labels = page.asarray()
    assert not tifffile.TiffFile(tmp_path / "geo" / "plain.tif").is_geotiff
    png = np.asarray(Image.open(tmp_path / "png" / "tile.png"))
    assert labels.shape == png.shape and np.array_equal(labels[labels != 255], png[labels != 255])
    assert Image.open(tmp_path / "geo" / "tile.tif").mode == "P"  # the class colours as its palette
    try:
        import rasterio
    except ImportError:
        rasterio = None
    if rasterio is not None:  # GDAL reads where the label map lies
        with rasterio.open(tmp_path / "geo" / "tile.tif") as raster:
            assert raster.crs.to_epsg() == 32632 and raster.transform.c == 500000.0 and raster.transform.a == 0.5
            assert raster.nodata == 255

    assert main([*run, "--out", str(tmp_path / "geo_all"), "--geotiff", "--probs", "--confidence", "--overlay"]) == 0
    capsys.readouterr()
    with tifffile.TiffFile(tmp_path / "geo_all" / "tile.tif") as written:
        assert np.array_equal(written.asarray(), png) and 42113 not in written.pages[0].tags
    # the probabilities and the confidence in the same place: float16 bands of the .npy's values, named
    # after the classes; the confidence the probability of each label
    assert main([*run, "--out", str(tmp_path / "npy"), "--probs"]) == 0
    probabilities = np.load(tmp_path / "npy" / "tile_probs.npy")
    with tifffile.TiffFile(tmp_path / "geo_all" / "tile_probs.tif") as written:
        assert written.is_geotiff and written.pages[0].geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
        assert np.array_equal(written.asarray(), probabilities.transpose(1, 2, 0))
        class_names = Segmenter.from_checkpoint(checkpoint_path).class_names
        assert f">{class_names[0]}</Item>" in written.pages[0].tags[42112].value
    with tifffile.TiffFile(tmp_path / "geo_all" / "tile_confidence.tif") as written:
        confidence = written.asarray()
        assert written.is_geotiff and confidence.dtype == np.float32 and confidence.shape == png.shape
    label_probabilities = np.take_along_axis(probabilities, png[None].astype(np.int64), 0)[0]
    assert np.abs(confidence - label_probabilities).max() <= 1e-3  # float16's rounding of the .npy
    assert not (tmp_path / "geo_all" / "tile_confidence.png").exists()
    with tifffile.TiffFile(tmp_path / "geo_all" / "tile_overlay.tif") as written:  # the overlay in place, RGB
        from segnext.data import overlay

        assert written.is_geotiff and written.pages[0].geotiff_tags["ProjectedCSTypeGeoKey"] == 32632
        palette = Segmenter.from_checkpoint(checkpoint_path).palette
        assert np.array_equal(written.asarray(), overlay(scene, png, palette, 0.5))
    assert main(["predict", "-c", str(checkpoint_path), *FAST, str(tiles / "tile.tif"), "--geotiff", "--out",
                 str(tmp_path / "one.png")]) == 1
    assert "one.png: --geotiff writes the label map as a GeoTIFF; give --out " in capsys.readouterr().err
    assert main(["predict", "-c", str(checkpoint_path), *FAST, str(tiles / "tile.tif"), "--geotiff", "--out",
                 str(tmp_path / "one.tif")]) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "one.tif"), png)
    assert main([*run, "--geotiff", "--submission", "cityscapes", "--out", str(tmp_path / "sub")]) == 1
    assert "--geotiff writes GeoTIFFs, and --submission the files its server takes" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:the test settings normalise")  # random bands, not in the settings' units
def test_a_large_scene_read_in_windows_gives_the_files_of_the_scene_read_whole(tmp_path, monkeypatch):
    """predict --geotiff of a four-band TIFF scene at its own size in sliding windows, with flip: read
    whole and read from its file a band of rows at a time (READ_IN_WINDOWS_ABOVE lowered, read_bands
    patched to fail), the label map, overlay, confidence and probabilities are the same files."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import segnext
    from segnext.inference import preprocess

    model = segnext.create_model("segnext_t", 3, in_channels=4, class_names=["field", "water", "road"])
    model.config.test_settings = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24),
                                            flip=True, mean=(500,) * 4, std=(200,) * 4).to_dict()
    segnext.save_model(model, tmp_path / "rgbn")
    image = np.random.default_rng(0).integers(0, 1000, (70, 90, 4)).astype(np.uint16)
    image[20:50, 30:70] += 1500
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig", tile=(16, 16),
                     compression="zlib", extratags=GEO_TAGS)
    run = ["predict", "-c", str(tmp_path / "rgbn"), str(tmp_path / "scene.tif"), "--geotiff", "--overlay",
           "--confidence", "--probs", "--no-progress"]
    assert main([*run, "--out", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    monkeypatch.setattr(preprocess, "read_bands", lambda *args, **kwargs: pytest.fail("read whole"))
    assert main([*run, "--out", str(tmp_path / "windows")]) == 0
    names = sorted(path.name for path in (tmp_path / "whole").iterdir())
    assert {"scene.tif", "scene_confidence.tif", "scene_overlay.tif", "scene_probs.tif"} <= set(names), names
    for name in names:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "windows" / name).read_bytes(), name


@pytest.mark.filterwarnings("ignore:the test settings normalise")  # random bands, not in the settings' units
@pytest.mark.parametrize("windows", [False, True])
def test_geotiff_leaves_the_pixels_a_scene_declares_no_data_unlabelled(tmp_path, monkeypatch, windows):
    """A four-band scene declaring 0 "no data" (GDAL's tag), with a border of it: --geotiff gives those
    pixels 255, the label map's no data, uncoloured in the overlay and 'unlabelled' in --class-areas,
    NaN in the confidence and probabilities (and out of confidence.csv's mean); a pixel with 0 in some
    bands only keeps its label. --label-no-data labels them all, as without
    --geotiff. The same read whole or in windows."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import csv

    import segnext
    from segnext.data import overlay
    from segnext.inference import preprocess

    if windows:
        monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    model = segnext.create_model("segnext_t", 3, in_channels=4, class_names=["field", "water", "road"])
    model.config.test_settings = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24),
                                            mean=(500,) * 4, std=(200,) * 4).to_dict()
    segnext.save_model(model, tmp_path / "rgbn")
    image = np.random.default_rng(0).integers(1, 1000, (50, 60, 4)).astype(np.uint16)
    image[:, :12] = 0  # outside the scene's footprint
    image[30, 40, :3] = 0  # a dark pixel in three bands: data
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig", tile=(16, 16),
                     extratags=[*GEO_TAGS, (42113, "s", 0, "0", True)])
    run = ["predict", "-c", str(tmp_path / "rgbn"), str(tmp_path / "scene.tif"), "--no-progress", "--overlay"]
    assert main([*run, "--out", str(tmp_path / "png")]) == 0
    assert main([*run, "--geotiff", "--out", str(tmp_path / "geo"), "--class-areas", str(tmp_path / "areas.csv"),
                 "--confidence", "--probs"]) == 0
    assert main([*run, "--geotiff", "--label-no-data", "--out", str(tmp_path / "all")]) == 0
    labelled = np.asarray(Image.open(tmp_path / "png" / "scene.png"))
    with tifffile.TiffFile(tmp_path / "geo" / "scene.tif") as written:
        labels = written.asarray()
        assert written.pages[0].tags[42113].value == "255"
    assert (labels[:, :12] == 255).all() and np.array_equal(labels[:, 12:], labelled[:, 12:])
    assert labelled.max() < 3 and labels[30, 40] == labelled[30, 40]
    picture = tifffile.imread(tmp_path / "geo" / "scene_overlay.tif")
    palette = Segmenter.from_checkpoint(tmp_path / "rgbn").palette
    from segnext.data import display_rgb

    assert np.array_equal(picture, overlay(display_rgb(image), labels, palette, 0.5, ignore_index=255))
    with open(tmp_path / "areas.csv", newline="") as file:
        row = list(csv.DictReader(file))[0]
    assert float(row["unlabelled"]) == pytest.approx(100 * 12 / 60, abs=0.01)
    # No confidence and no probabilities there: NaN, declared GDAL's no data; the mean confidence of the rest
    for name in ("scene_confidence.tif", "scene_probs.tif"):
        with tifffile.TiffFile(tmp_path / "geo" / name) as written:
            values = written.asarray().reshape(50, 60, -1)
            assert np.isnan(float(written.pages[0].tags[42113].value))  # tifffile may parse the text
        assert np.isnan(values[:, :12]).all() and not np.isnan(values[:, 12:]).any(), name
    with open(tmp_path / "geo" / "confidence.csv", newline="") as file:
        mean_confidence = float(next(iter(csv.DictReader(file)))["confidence"])
    confidence = tifffile.imread(tmp_path / "geo" / "scene_confidence.tif")
    assert mean_confidence == pytest.approx(100 * confidence[:, 12:].astype(np.float64).mean(), abs=0.01)
    assert np.array_equal(tifffile.imread(tmp_path / "all" / "scene.tif"), labelled)
    assert main([*run, "--label-no-data", "--out", str(tmp_path / "x")]) == 1


def test_the_no_data_value_of_a_tiff_and_the_pixels_holding_it(tmp_path):
    """nodata_value reads GDAL's tag (numbers, NaN; None without it, for junk, for other files);
    no_data_mask is where every band holds it, the same for an array and a TiffScene."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from segnext.data import open_tiff_scene
    from segnext.data.geotiff import no_data_mask, nodata_value

    image = np.random.default_rng(0).random((40, 30, 2), dtype=np.float32)
    image[5:9] = np.nan
    image[20, :, 0] = np.nan  # NaN in one band only: data
    for text, value in (("-9999", -9999.0), ("nan", None), ("0\x00", 0.0), ("junk", None), (None, None)):
        tags = [(42113, "s", 0, text, True)] if text is not None else []
        tifffile.imwrite(tmp_path / "scene.tif", image, photometric="minisblack", planarconfig="contig",
                         rowsperstrip=4, extratags=tags)
        read = nodata_value(tmp_path / "scene.tif")
        assert (np.isnan(read) if text == "nan" else read == value), text
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert nodata_value(tmp_path / "plain.png") is None
    expected = np.zeros((40, 30), dtype=bool)
    expected[5:9] = True
    for source in (image, open_tiff_scene(tmp_path / "scene.tif")):
        assert np.array_equal(no_data_mask(source, float("nan")), expected)
    assert no_data_mask(np.full((40, 30), 7, np.int16), 7.0).all()


@pytest.mark.parametrize("scene", ["alpha", "gdal_orthophoto"])
def test_geotiff_leaves_an_orthophoto_s_masked_pixels_unlabelled(tmp_path, monkeypatch, scene):
    """An RGB model on an orthophoto whose footprint is its alpha band (RGBA) or its internal mask
    (GDAL's JPEG in YCbCr, the fixture): with --geotiff the pixels outside get 255 and the rest the
    labels predicted without --geotiff; read whole and in windows, the same files."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import shutil
    from pathlib import Path

    import segnext
    from segnext.inference import preprocess

    if scene == "gdal_orthophoto":
        pytest.importorskip("imagecodecs", reason="imagecodecs is not installed (pip install imagecodecs): "
                                                  "tifffile decodes no JPEG without it")
        shutil.copy(Path(__file__).parents[1] / "fixtures" / "gdal_orthophoto.tif", tmp_path / "scene.tif")
        outside = np.ones((70, 90), dtype=bool)
        outside[10:60, 15:80] = False
    else:
        image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
        outside = np.zeros((50, 60), dtype=bool)
        outside[:, 50:] = outside[:7] = True
        tifffile.imwrite(tmp_path / "scene.tif", np.dstack([image, np.where(outside, 0, 255).astype(np.uint8)]),
                         photometric="rgb", extrasamples=[2], tile=(16, 16), extratags=GEO_TAGS)
    model = segnext.create_model("segnext_t", 3, class_names=["roof", "tree", "road"])
    model.config.test_settings = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32),
                                            stride=(24, 24)).to_dict()
    segnext.save_model(model, tmp_path / "model")
    run = ["predict", "-c", str(tmp_path / "model"), str(tmp_path / "scene.tif"), "--no-progress"]
    assert main([*run, "--out", str(tmp_path / "png")]) == 0
    assert main([*run, "--geotiff", "--overlay", "--out", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr(preprocess, "READ_IN_WINDOWS_ABOVE", 0)
    monkeypatch.setattr(preprocess, "to_rgb_array", lambda *args, **kwargs: pytest.fail("read whole"))
    assert main([*run, "--geotiff", "--overlay", "--out", str(tmp_path / "windows")]) == 0
    labelled = np.asarray(Image.open(tmp_path / "png" / "scene.png"))
    labels = tifffile.imread(tmp_path / "whole" / "scene.tif")
    assert (labels[outside] == 255).all() and np.array_equal(labels[~outside], labelled[~outside])
    for name in ("scene.tif", "scene_overlay.tif"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "windows" / name).read_bytes(), name


def test_a_sieve_leaves_no_region_below_its_size_in_every_output(tmp_path, capsys):
    """--sieve N: the label map (and the polygons made from it) without a region of
    fewer than N pixels, the rest of the labels as predicted; the confidence the model's. Refused with
    --submission and for a video, before any work."""
    pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]')")
    import json

    from rasterio.features import rasterize

    import segnext
    from segnext.data.polygons import label_polygons

    segnext.save_model(segnext.create_model("segnext_t", 3, class_names=["roof", "tree", "road"]), tmp_path / "model")
    Image.fromarray(_scene(60, 80, 7)).save(tmp_path / "photo.png")
    run = ["predict", "-c", str(tmp_path / "model"), str(tmp_path / "photo.png"), "--polygons", "--confidence",
           "--no-progress"]
    assert main([*run, "--out", str(tmp_path / "plain")]) == 0
    assert main([*run, "--sieve", "40", "--out", str(tmp_path / "sieved")]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain" / "photo.png"))
    sieved = np.asarray(Image.open(tmp_path / "sieved" / "photo.png"))
    before = [feature["properties"]["pixels"] for feature in label_polygons(plain, ["roof", "tree", "road"])]
    after = json.loads((tmp_path / "sieved" / "photo.geojson").read_text())["features"]
    assert min(before) < 40 <= min(feature["properties"]["pixels"] for feature in after)  # random weights: specks
    assert len(after) < len(before) and (sieved == plain).mean() > 0.5
    kept = np.ones_like(plain, dtype=bool)  # the pixels of the regions of 40 or more keep their labels
    for feature in label_polygons(plain, ["roof", "tree", "road"]):
        if feature["properties"]["pixels"] < 40:
            kept &= rasterize([(feature["geometry"], 1)], out_shape=plain.shape, fill=0, dtype=np.uint8) == 0
    assert np.array_equal(sieved[kept], plain[kept])
    confidence = "photo_confidence.png"
    assert (tmp_path / "plain" / confidence).read_bytes() == (tmp_path / "sieved" / confidence).read_bytes()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    for inputs, extra in (([str(tmp_path / "photo.png")], ["--submission", "cityscapes"]), ([str(video)], [])):
        capsys.readouterr()
        assert main(["predict", "-c", str(tmp_path / "model"), *inputs, "--sieve", "4", *extra,
                     "--out", str(tmp_path / "refused")]) == 1
        assert "--sieve" in capsys.readouterr().err and not (tmp_path / "refused").exists()


def test_an_orthophoto_with_a_world_file_gets_label_maps_polygons_and_areas_in_its_place(tmp_path, capsys):
    """A JPEG with a world file and an ESRI .prj: --geotiff's label map lies where GDAL puts the JPEG,
    in the .prj's coordinate system (which GDAL does not read beside a JPEG); the polygons are in map
    coordinates and name it; --class-areas knows the pixel's square metres."""
    import csv
    import json

    rasterio = pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]')")
    pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    from rasterio.crs import CRS

    import segnext

    segnext.save_model(segnext.create_model("segnext_t", 3, class_names=["roof", "tree", "road"]), tmp_path / "model")
    (tmp_path / "in").mkdir()
    Image.fromarray(_scene(40, 50, 7)).save(tmp_path / "in" / "ortho.jpg")
    (tmp_path / "in" / "ortho.jgw").write_text("0.5\n0\n0\n-0.5\n500000.25\n6000000.75\n")
    (tmp_path / "in" / "ortho.prj").write_text(CRS.from_epsg(32633).to_wkt(version="WKT1_ESRI"))
    assert main(["predict", "-c", str(tmp_path / "model"), str(tmp_path / "in"), "--geotiff", "--polygons",
                 "--class-areas", str(tmp_path / "areas.csv"), "--no-progress", "--out", str(tmp_path / "out")]) == 0
    assert "carry no georeference" not in capsys.readouterr().err
    with rasterio.open(tmp_path / "in" / "ortho.jpg") as source, \
            rasterio.open(tmp_path / "out" / "ortho.tif") as written:
        assert written.transform == source.transform == rasterio.Affine(0.5, 0, 500000.0, 0, -0.5, 6000001.0)
        assert written.crs.to_epsg() == 32633 and source.crs is None
        labels = written.read(1)
    collection = json.loads((tmp_path / "out" / "ortho.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    xs = [x for feature in collection["features"] for ring in feature["geometry"]["coordinates"] for x, _ in ring]
    assert min(xs) == 500000.0 and max(xs) == 500025.0
    assert sum(feature["properties"]["area_m2"] for feature in collection["features"]) == 40 * 50 * 0.25
    with open(tmp_path / "areas.csv", newline="") as file:
        row = next(csv.DictReader(file))
    assert float(row["pixel m2"]) == 0.25
    assert [float(row[f"{name} m2"]) for name in ("roof", "tree", "road")] == pytest.approx(
        np.bincount(labels.ravel(), minlength=3)[:3] * 0.25)


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")  # the PNG's label map, read back by rasterio
def test_polygons_of_each_image_draw_its_label_map_back(tmp_path, capsys):
    """--polygons: NAME.geojson beside each label map, whose polygons drawn back give it: in the
    scene's coordinate system for a georeferenced TIFF (its pixels without data, 255, in none), in
    pixels for a PNG. Refused for a video, and with --submission, before any work."""
    rasterio = pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]')")
    tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (pip install tifffile)")
    import json

    from rasterio.features import rasterize

    import segnext

    segnext.save_model(segnext.create_model("segnext_t", 3, class_names=["roof", "tree", "road"]), tmp_path / "model")
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    alpha = np.full((40, 50), 255, np.uint8)
    alpha[:, 45:] = 0  # outside the scene's footprint
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "scene.tif", np.dstack([image, alpha]), photometric="rgb", extrasamples=[2],
                     extratags=GEO_TAGS)
    Image.fromarray(image).save(tmp_path / "in" / "photo.png")
    assert main(["predict", "-c", str(tmp_path / "model"), str(tmp_path / "in"), "--geotiff", "--polygons",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 0
    for name in ("scene", "photo"):
        collection = json.loads((tmp_path / "out" / f"{name}.geojson").read_text())
        with rasterio.open(tmp_path / "out" / f"{name}.tif") as written:
            labels, transform = written.read(1), written.transform
        assert transform == (rasterio.Affine(0.5, 0, 500000.0, 0, -0.5, 5600000.0) if name == "scene" else
                             rasterio.Affine.identity())
        shapes = [(feature["geometry"], feature["properties"]["class_id"]) for feature in collection["features"]]
        drawn = rasterize(shapes, out_shape=labels.shape, fill=255, dtype=np.uint8, transform=transform)
        assert np.array_equal(drawn, labels), name
        assert (labels[:, 45:] == 255).all() == (name == "scene") and (labels[:, :45] < 3).all()
        assert ("crs" in collection) == (name == "scene")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    for inputs, extra in (([str(tmp_path / "in" / "photo.png")], ["--submission", "cityscapes"]), ([str(video)], [])):
        capsys.readouterr()
        assert main(["predict", "-c", str(tmp_path / "model"), *inputs, "--polygons", *extra,
                     "--out", str(tmp_path / "refused")]) == 1
        assert "--polygons" in capsys.readouterr().err and not (tmp_path / "refused").exists()
