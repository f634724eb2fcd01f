"""The run report: what it says (stop reason, baseline, evaluations and their image counts), what it
draws (colour masks in the legend's colours, error maps, the confusion matrix), and that
`segnext report RUN_DIR` redraws exactly what the run wrote, from its files alone."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_helpers import tiny_config, write_config

from segnext.cli.main import main
from segnext.train import load_config, train
from segnext.train.report import (
    HARDEST_SHOWN,
    IGNORE_SHADES,
    MIN_PANEL_WIDTH,
    RunFiles,
    colour_mask,
    comparison_picture,
    draw_hardest,
    error_map,
    evaluations_text,
    facts,
    normalised_confusion,
    read_run,
    stop_text,
    weakest_first,
    write_html,
    write_report,
)

pytestmark = pytest.mark.charts  # the report's charts are drawn (tests/conftest.py)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, scenes) -> Path:
    """A 6-iteration run with two periodic evaluations on 4 val images, the final one on all 8, and 2 samples."""
    folder = tmp_path_factory.mktemp("report")
    config = tiny_config(scenes, train={"eval_interval": 2}, evaluation={"max_images": 4, "num_overlays": 2})
    train(load_config(str(write_config(folder / "c.yaml", config))), folder / "run", progress=False)
    return folder / "run"


def _html_text(path: Path) -> str:
    """The page's words, without tags and embedded images."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"src='data:[^']+'", "", path.read_text()))


def test_the_run_leaves_what_the_report_is_drawn_from(finished_run, scenes):
    final = json.loads((finished_run / "report_data" / "final_eval.json").read_text())
    confusion = np.asarray(final["confusion"])
    from segnext.data import build_dataset

    val = build_dataset("folder", scenes, "val")
    labelled = sum(int((np.asarray(val[i]["label"]) != 255).sum()) for i in range(len(val)))
    assert confusion.shape == (8, 8) and confusion.sum() == labelled  # every labelled val pixel, once
    assert final["class_names"][:3] == ["sky", "building", "road"] and len(final["samples"]) == 2
    for sample in final["samples"]:
        assert all((finished_run / "report_data" / name).is_file() for name in sample.values())
    results = json.loads((finished_run / "results.json").read_text())
    assert results["stop_reason"] == "finished" and results["iteration"] == 6
    # how far its confidence holds, over every labelled val pixel, in results.json and on the model card
    calibration = results["calibration"]
    assert calibration["pixels"] == labelled and sum(row["pixels"] for row in calibration["bins"]) == labelled
    assert calibration["accuracy"] == pytest.approx(results["aAcc"])
    card = (finished_run / "final_model" / "README.md").read_text()
    assert (f"Confidence (the probability it gives its label): {calibration['mean_confidence']:.1f}% on average over "
            f"the {labelled:,} labelled pixels, for an accuracy of {calibration['accuracy']:.1f}% (expected "
            f"calibration error {calibration['ECE']:.2f}%") in card
    assert (f"Calibration: over {labelled:,} labelled pixels the mean confidence is "
            f"{calibration['mean_confidence']:.1f}% for an accuracy of {calibration['accuracy']:.1f}%; ECE "
            f"{calibration['ECE']:.2f}%") in _html_text(finished_run / "report.html")
    # each val image's scores in the final evaluation, the hardest first
    rows = (finished_run / "per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and rows[0].startswith("image,label,pixels,aAcc,mIoU,IoU sky,")
    scored = [float(row.split(",")[4]) for row in rows[1:]]
    assert scored == sorted(scored)


def test_report_lists_the_hardest_val_images_and_how_to_draw_them(finished_run):
    text = _html_text(finished_run / "report.html")
    first = (finished_run / "per_image.csv").read_text().splitlines()[1].split(",")
    assert "The hardest val images (lowest mIoU; all in per_image.csv)" in text
    assert f"{Path(first[0]).name} {first[4]} {first[3]}" in " ".join(text.split())
    assert f"segnext eval {finished_run / 'config.yaml'} -c {finished_run / 'final_model'} --hardest 8" in text
    # the run drew them: image and ground truth above, prediction and errors below, hardest first
    rows = [line.split(",") for line in (finished_run / "per_image.csv").read_text().splitlines()[1:]]
    pictures = sorted((finished_run / "report_data" / "hardest").iterdir())
    assert [p.name for p in pictures] == [f"{rank:02d}_{Path(row[0]).stem}.jpg"
                                          for rank, row in enumerate(rows[:HARDEST_SHOWN], start=1)]
    page = (finished_run / "report.html").read_text()
    assert all(f"<figcaption>{picture.stem}</figcaption>" in page for picture in pictures)
    width, height = Image.open(rows[0][0]).size
    blocks = -(-MIN_PANEL_WIDTH // width)  # a small image is enlarged for its captions to fit
    assert Image.open(pictures[0]).size == (2 * width * blocks, 2 * (height * blocks + 14))  # 4 captioned panels


def test_no_hardest_images_to_draw_where_nothing_is_labelled(tmp_path):
    unlabelled = {"index": 0, "pixels": 0, "aAcc": float("nan"), "mIoU": float("nan"), "IoU": [float("nan")] * 8}
    assert draw_hardest(None, None, [unlabelled], None, "cpu", 3, tmp_path / "hardest") == []
    assert not (tmp_path / "hardest").exists()


def test_report_says_why_it_stopped_how_it_compares_with_the_baseline_and_which_images_were_scored(finished_run):
    text = _html_text(finished_run / "report.html")
    results = json.loads((finished_run / "results.json").read_text())
    assert "Finished: 6/6 iterations" in text
    assert f"baseline): mIoU {results['majority_class_mIoU']:.2f}" in text
    assert "Evaluations: 2 periodic on the first 4 val images (iterations 2-4); final on all 8 at iteration 6" in text
    for row in results["per_class"]:  # the per-class table lists every class with its IoU
        assert row["class"] in text and (f"{row['IoU']:.2f}" in text or row["IoU"] is None)


def test_report_html_is_one_file_with_its_images_embedded(finished_run):
    page = (finished_run / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", page)
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: the HTML has no charts to count")
    assert len(sources) == 1 + 2 * 4 + HARDEST_SHOWN  # the charts, 4 pictures per sample, the hardest
    assert all(source.startswith("data:image/") for source in sources)
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from elsewhere


def test_segnext_report_redraws_the_same_report_from_the_files(finished_run, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: no report.png to compare")
    written = (finished_run / "report.html").read_text()
    assert main(["report", str(finished_run), "--out-dir", str(tmp_path)]) == 0
    assert f"Report written to {tmp_path / 'report.png'}" in capsys.readouterr().out
    assert (tmp_path / "report.html").read_text() == written
    from PIL import Image

    with Image.open(finished_run / "report.png") as first, Image.open(tmp_path / "report.png") as again:
        assert first.size == again.size and np.array_equal(np.asarray(first), np.asarray(again))


def test_report_png_has_the_panels_rows(finished_run):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: no report.png")
    from PIL import Image

    with Image.open(finished_run / "report.png") as picture:
        width, height = picture.size
    # header + curves + classes + 2 samples + legend at 80 dpi, 16 inches wide
    assert width == 1280 and height > 80 * (1.3 + 3.2 + 4.5 + 2 * 3.2)


def test_the_report_png_lays_out_without_matplotlib_giving_up(finished_run, tmp_path):
    """matplotlib (3.9 here) skips the constrained layout, with only a warning, when an element
    cannot fit: panel titles then overlap the axes above them."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: no report.png")
    import warnings

    from segnext.train.report import draw_png, read_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw_png(read_run(finished_run), tmp_path / "report.png")
    assert not [w for w in caught if "layout" in str(w.message)]


def test_class_names_the_font_cannot_draw_give_one_warning_not_one_per_character(finished_run, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: no report.png")
    import dataclasses
    import warnings

    from segnext.train.report import draw_png, read_run

    run = read_run(finished_run)
    names = ["道路", "建筑物", "天空", "汽车"] + run.class_names[4:]  # Chinese class names, as many users have
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw_png(dataclasses.replace(run, class_names=names), tmp_path / "report.png")
    messages = [str(w.message) for w in caught if "font" in str(w.message)]
    assert not [m for m in messages if m.startswith("Glyph")]
    assert len(messages) <= 1  # none where the font has them
    if messages:
        assert "of the class names (" in messages[0] and "the HTML report shows them" in messages[0]


def test_the_report_of_a_run_that_is_still_going_shows_its_curves(finished_run, tmp_path):
    running = tmp_path / "running"
    running.mkdir()
    (running / "config.yaml").write_text((finished_run / "config.yaml").read_text())
    lines = (finished_run / "log.jsonl").read_text().splitlines()
    (running / "log.jsonl").write_text("\n".join(line for line in lines if '"final": true' not in line) + "\n")
    written = write_report(running)
    text = _html_text(written.html)
    assert "Not finished: last logged iteration 6/6" in text and "No final evaluation yet" in text
    assert "sky" in text  # class names from the dataset the config names, per-class IoU of the last evaluation


def test_without_matplotlib_the_html_is_still_written(finished_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    written = write_report(finished_run, tmp_path)
    assert written.png is None and not (tmp_path / "report.png").exists()
    assert "pip install 'segnext[plot]'" in capsys.readouterr().out
    page = written.html.read_text()
    assert "The charts need matplotlib" in page and page.count("<figure>") == 2 * 4 + HARDEST_SHOWN


def _run(**results) -> RunFiles:
    config = {"model": {"name": "segnext_t"}, "data": {"dataset": "camvid"},
              "train": {"max_iters": 500, "max_time_minutes": 60}}
    return RunFiles(Path("run"), config, [], [], results or None, ["a", "b"], [[255, 0, 0], [0, 0, 255]])


def test_stop_reasons_are_told_against_the_runs_bounds():
    assert stop_text(_run(stop_reason="time limit", iteration=432, train_seconds=3605.0)) == \
        "Stopped: time budget reached at 432/500 iterations (60 min) in 60.1 min"
    assert stop_text(_run(stop_reason="finished", iteration=500, train_seconds=90.0)) == \
        "Finished: 500/500 iterations in 90 s"
    running = _run()
    running.train = [{"iter": 120, "loss": 1.0, "elapsed_s": 30.0}]
    assert stop_text(running).startswith("Not finished: last logged iteration 120/500 (time budget 60 min)")
    running.diverged = {"iter": 121, "loss": float("nan")}
    assert stop_text(running) == "Diverged: the loss became nan at iteration 121"


def test_evaluations_are_grouped_by_the_images_they_used():
    run = _run(best={"mIoU": 55.5, "iteration": 300, "num_images": 20})
    run.evals = [{"iter": 100, "num_images": 20, "mIoU": 1.0}, {"iter": 200, "num_images": 20, "mIoU": 2.0},
                 {"iter": 300, "num_images": 20, "mIoU": 3.0}, {"iter": 432, "num_images": 101, "final": True}]
    assert evaluations_text(run) == ("Evaluations: 3 periodic on the first 20 val images (iterations 100-300); "
                                     "final on all 101 at iteration 432. best.pt: mIoU 55.50 at iteration 300 "
                                     "(on 20 images)")


def test_what_val_scores_are_worth_is_said_under_them():
    note = "val shares groups with train: 0016E5 (101 frames; 204 in train). Scores on val are optimistic ..."
    lines = facts(_run(stop_reason="finished", iteration=500, mIoU=60.0, validation_note=note))
    assert lines[1].startswith("Final evaluation") and lines[2] == f"Note: {note}" and len(lines) == 4
    assert len(facts(_run(stop_reason="finished", iteration=500, mIoU=60.0, validation_note=None))) == 3


def test_the_final_mious_interval_and_what_it_covers_are_said_with_it():
    interval = {"level": 0.95, "unit": "image", "mIoU": [58.123, 61.5], "note": "the 101 images come from 1 group"}
    lines = facts(_run(stop_reason="finished", iteration=500, mIoU=60.0, interval=interval))
    assert "mIoU 60.00 (95% interval 58.12-61.50 over resampled val images), aAcc" in lines[1]
    assert lines[2] == "Note: the 101 images come from 1 group" and len(lines) == 4
    interval.update(unit="group", note=None)
    lines = facts(_run(stop_reason="finished", iteration=500, mIoU=60.0, interval=interval))
    assert "over resampled groups of val images)" in lines[1] and len(lines) == 3


def test_the_page_scores_each_group_of_val_images_the_lowest_first(tmp_path):
    per_group = [{"group": "0016E5", "images": 204, "mIoU": 57.66, "aAcc": 89.76},
                 {"group": "0006R0", "images": 101, "mIoU": 39.51, "aAcc": 80.21}]
    run = _run(stop_reason="finished", iteration=500, mIoU=52.35, per_group=per_group)
    page = write_html(run, tmp_path / "report.html").read_text()
    assert "Val images by group" in page
    table = page[page.index("Val images by group"):]
    assert table.index("<td>0006R0</td><td class='num'>101</td><td class='num'>39.51</td>") < table.index("0016E5")
    assert "Val images by group" not in write_html(_run(mIoU=52.35), tmp_path / "other.html").read_text()


def test_colour_masks_use_exactly_the_palette_and_mark_unlabelled_pixels():
    palette = [[10, 20, 30], [200, 100, 0]]
    labels = np.array([[0, 1, 255], [1, 0, 255]], dtype=np.uint8)
    picture = colour_mask(labels, palette, 255)
    assert picture[0, 0].tolist() == palette[0] and picture[0, 1].tolist() == palette[1]
    assert picture[0, 2].tolist()[0] in IGNORE_SHADES and len(set(picture[0, 2].tolist())) == 1  # grey checker


def test_error_map_marks_disagreement_on_labelled_pixels_only():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1, 255], [1, 1, 0]], dtype=np.uint8)
    prediction = np.array([[0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    picture, share = error_map(image, labels, prediction, 255)
    red = [tuple(picture[y, x]) for y in range(2) for x in range(3)].count((230, 25, 25))
    assert red == 2 and share == pytest.approx(100 * 2 / 5)
    assert picture[0, 2].tolist()[0] in IGNORE_SHADES  # unlabelled: not an error


def test_a_comparison_picture_holds_the_image_its_labels_the_prediction_and_the_errors():
    rng = np.random.default_rng(0)
    palette = [[10, 20, 30], [200, 100, 0], [0, 250, 0]]
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (40, 60)).astype(np.uint8)
    prediction = labels.copy()
    prediction[:10] = (prediction[:10] + 1) % 3  # a quarter wrong
    picture = comparison_picture(image, labels, prediction, palette, 255)
    caption = 14

    def blocks(panel):  # 60 pixels wide is narrower than the captions: each pixel drawn as a 4x4 block
        return np.asarray(panel).repeat(4, 0).repeat(4, 1)

    assert picture.shape == (2 * (160 + caption), 480, 3)
    assert np.array_equal(picture[caption:caption + 160, :240], blocks(image))
    assert np.array_equal(picture[caption:caption + 160, 240:], blocks(colour_mask(labels, palette, 255)))
    assert np.array_equal(picture[2 * caption + 160:, :240], blocks(colour_mask(prediction, palette, 255)))
    assert np.array_equal(picture[2 * caption + 160:, 240:], blocks(error_map(image, labels, prediction, 255)[0]))
    assert (picture[:caption, :240] < 128).any()  # the caption's letters
    errors_caption = picture[caption + 160:2 * caption + 160, 240:]
    assert (errors_caption[:, 100:] < 128).any() and (errors_caption[:, -3:] == 255).all()  # whole, not cut
    # An image as wide as the captions is drawn as it is.
    image, labels = rng.integers(0, 256, (30, 240, 3), dtype=np.uint8), rng.integers(0, 3, (30, 240)).astype(np.uint8)
    picture = comparison_picture(image, labels, labels, palette, 255)
    assert picture.shape == (2 * (30 + caption), 480, 3) and np.array_equal(picture[caption:caption + 30, :240], image)
    # A large image is drawn smaller, its labels still in the palette's colours alone.
    labels = rng.integers(0, 3, (1000, 2000)).astype(np.uint8)
    picture = comparison_picture(np.zeros((1000, 2000, 3), np.uint8), labels, labels, palette, 255)
    assert picture.shape == (2 * (512 + caption), 2048, 3)
    assert {tuple(colour) for colour in picture[caption:caption + 512, 1024:].reshape(-1, 3)} <= \
        {tuple(colour) for colour in palette}


def test_confusion_rows_are_normalised_and_large_class_sets_show_the_weakest():
    matrix = normalised_confusion(np.array([[3, 1], [0, 0]]))
    assert matrix.tolist() == [[0.75, 0.25], [0.0, 0.0]]  # a class without pixels stays 0, no NaN
    iou = [float(v) for v in range(60)]
    iou[5] = math.nan
    shown = weakest_first(iou, limit=30)
    assert len(shown) == 25 and shown[:3] == [0, 1, 2] and 5 not in shown
    assert weakest_first(iou[:10], limit=30) == [i for i in range(10) if i != 5]  # few classes: all, in order


def test_read_run_of_an_empty_folder_is_empty_not_an_error(tmp_path):
    run = read_run(tmp_path)
    assert run.results is None and run.train == [] and run.samples == []
