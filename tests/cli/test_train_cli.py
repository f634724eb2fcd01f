"""`segnext train` and `segnext eval` from the command line (in-process, through cli.main)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import segnext
from segnext.cli.main import main
from segnext.evaluation import areas_from_json


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    from segnext.data.scenes import make_scene_dataset

    return make_scene_dataset(tmp_path_factory.mktemp("scenes"), num_train=8, num_val=4, size=(48, 64), seed=1)


@pytest.fixture()
def config_file(tmp_path, scenes) -> Path:
    config = {
        "model": {"name": "segnext_t"},
        "data": {"dataset": "folder", "root": str(scenes), "crop_size": [48, 48], "img_scale": [64, 48],
                 "num_workers": 0},
        "train": {"max_iters": 2, "batch_size": 2, "micro_batch_size": 2, "log_interval": 1,
                  "checkpoint_interval": 2, "eval_interval": 0, "threads": 1},
        "evaluation": {"img_scale": [64, 48], "num_overlays": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_list_and_print_configs(capsys):
    assert main(["train", "--list-configs"]) == 0
    listed = capsys.readouterr().out.split()
    assert "ade20k/segnext_t_ade20k_512x512_160k" in listed and "camvid/segnext_t_camvid_cpu_60min" in listed
    assert main(["train", "segnext_b_cityscapes_1024x1024_160k", "train.max_iters=10", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["max_iters"] == 10 and printed["evaluation"]["mode"] == "slide"


def test_config_errors_are_one_clear_line(capsys, config_file, tmp_path):
    assert main(["train", str(config_file), "train.max_iter=5"]) == 1
    error = capsys.readouterr().err
    assert "Did you mean 'train.max_iters'?" in error and "Traceback" not in error
    assert main(["train", "no_such_config"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["train", str(config_file), "data.root=/nonexistent/data", "--work-dir", str(tmp_path / "w")]) == 1
    assert "data.root /nonexistent/data does not exist" in capsys.readouterr().err
    assert main(["train", str(config_file), "model.backbone_checkpoint=pretrained/mscan_t.pth",
                 "--work-dir", str(tmp_path / "w")]) == 1
    assert "model.backbone_checkpoint pretrained/mscan_t.pth does not exist" in capsys.readouterr().err


def test_train_then_eval_a_checkpoint(capsys, config_file, tmp_path):
    work_dir = tmp_path / "run"
    assert main(["train", str(config_file), "--work-dir", str(work_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and (work_dir / "results.json").is_file() and (work_dir / "config.yaml").is_file()
    run_results = json.loads((work_dir / "results.json").read_text())
    low, high = run_results["interval"]["mIoU"]
    assert f"95% interval over 1,000 resamples of the 4 images: mIoU {low:.2f}-{high:.2f}" in out
    assert run_results["dataset"] == "folder" and run_results["checkpoint"] == str(work_dir / "final_model")
    card = (work_dir / "final_model" / "README.md").read_text()
    assert f"| mIoU | {run_results['mIoU']:.2f} | {low:.2f} - {high:.2f} |" in card  # the interval on the model card
    records = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["train", "train", "eval"]
    assert {"iter", "loss", "lr", "it_per_s"} <= set(records[0]) and records[-1]["final"] is True
    # without the bar, each train record is a line on the console too
    assert f"[iter 1/2]  loss {records[0]['loss']:.4f}" in out and "[iter 2/2]" in out
    # A training checkpoint, the exported model directory and best.pt all evaluate.
    checkpoint = work_dir / "checkpoints" / "iter_00000002.pt"
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(config_file), "--checkpoint", str(checkpoint), "--out", str(out_json),
                 "--no-progress", "--flip"]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert "mIoU" in printed and results["num_images"] == 4 and results["test"]["flip"] is True
    confusion = np.array(results["confusion"])  # [ground truth][prediction] pixels of the 4 images
    assert confusion.shape == (8, 8) and confusion.sum() > 0 and "with the confusion matrix" in printed
    assert ("most confused (share of a class's pixels predicted as another): " in printed) == \
        bool((confusion - np.diag(np.diag(confusion))).sum())
    assert len(results["per_class"]) == 8 and results["checkpoint"] == str(checkpoint)
    # images two to a forward pass, read by a worker process: the same scores
    assert main(["eval", str(config_file), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "batched.json"),
                 "--no-progress", "--flip", "--batch-size", "2", "--workers", "1"]) == 0
    assert json.loads((tmp_path / "batched.json").read_text())["confusion"] == results["confusion"]
    capsys.readouterr()
    assert main(["eval", str(config_file), "--checkpoint", str(work_dir / "final_model"), "--out",
                 str(tmp_path / "again.json"), "--no-progress", "--compare", str(work_dir / "results.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["compared_with"]["mIoU"] == pytest.approx(again["mIoU"] - run_results["mIoU"])
    printed = capsys.readouterr().out
    assert f"against {work_dir / 'final_model'} ({work_dir / 'results.json'})" in printed
    assert run_results["test"] == again["test"] and "tested otherwise" not in printed  # as the run tested it
    # the run's folder stands for its config and its final model
    assert main(["eval", str(work_dir), "--out", str(tmp_path / "folder.json"), "--no-progress", "--interval"]) == 0
    assert json.loads((tmp_path / "folder.json").read_text())["confusion"] == again["confusion"]
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.yaml").write_text((work_dir / "config.yaml").read_text())
    assert main(["eval", str(tmp_path / "unfinished")]) == 1
    assert "has no final_model yet (the run has not finished)" in capsys.readouterr().err
    model = segnext.create_model(checkpoint=work_dir / "final_model")
    assert model.num_classes == 8 and model.config.class_names[0] == "sky"
    assert main(["eval", str(config_file), "--checkpoint", str(work_dir / "final_model"), "--out",
                 str(tmp_path / "e2.json"), "--no-progress", "--max-images", "2", "--metrics", "IoU", "Dice",
                 "--ms"]) == 0
    second = json.loads((tmp_path / "e2.json").read_text())
    assert second["num_images"] == 2 and {"mDice", "mPrecision", "mRecall"} <= set(second)
    assert second["test"]["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and second["test"]["flip"] is True  # paper's
    assert set(second["per_class"][0]) == {"class", "IoU", "Acc", "Dice", "Precision", "Recall"}
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["class", "IoU", "Dice"] and "  mDice " in printed
    # predict's test-time options: sliding windows asked for on the command line
    assert main(["eval", str(config_file), "-c", str(checkpoint), "--out", str(tmp_path / "e3.json"), "--no-progress",
                 "--max-images", "1", "--mode", "slide", "--crop-size", "32", "32", "--stride", "24", "24"]) == 0
    test = json.loads((tmp_path / "e3.json").read_text())["test"]
    assert (test["mode"], test["crop_size"], test["stride"], test["flip"]) == ("slide", [32, 32], [24, 24], False)
    assert test["precision"] == "float32"
    capsys.readouterr()
    # --amp is a GPU setting: on the CPU it says so and runs in float32
    assert main(["eval", str(config_file), "-c", str(checkpoint), "--out", str(tmp_path / "e4.json"), "--no-progress",
                 "--max-images", "1", "--amp", "--threads", "1"]) == 0
    assert "--amp has no effect on the CPU" in capsys.readouterr().err
    assert json.loads((tmp_path / "e4.json").read_text())["test"]["precision"] == "float32"
    # the model given where the config goes: the error shows the command meant
    assert main(["eval", str(work_dir / "final_model")]) == 1
    assert f"segnext eval {work_dir / 'config.yaml'} --checkpoint {work_dir / 'final_model'}" in capsys.readouterr().err
    assert main(["eval", str(config_file)]) == 1
    assert "no weights to evaluate: give --checkpoint" in capsys.readouterr().err
    # --out naming the weights: they are not replaced by the results
    weights = work_dir / "final_model" / "model.safetensors"
    before = weights.read_bytes()
    assert main(["eval", str(config_file), "-c", str(work_dir / "final_model"), "--out", str(weights)]) == 1
    assert "the file exists and is not a .json file; writing there would replace it" in capsys.readouterr().err
    assert weights.read_bytes() == before


def test_eval_refuses_a_model_for_another_dataset(capsys, config_file, tmp_path):
    segnext.save_model(segnext.create_model("segnext_t", num_classes=19), tmp_path / "city")
    assert main(["eval", str(config_file), "--checkpoint", str(tmp_path / "city"), "--no-progress"]) == 1
    assert "19 classes" in capsys.readouterr().err


def test_eval_calibration_prints_how_far_the_confidence_holds(capsys, config_file, scenes, tmp_path):
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / "model")
    out = tmp_path / "eval.json"
    assert main(["eval", str(config_file), "-c", str(tmp_path / "model"), "--out", str(out), "--no-progress",
                 "--calibration"]) == 0
    printed = capsys.readouterr().out
    calibration = json.loads(out.read_text())["calibration"]
    assert f"calibration: over {calibration['pixels']:,} labelled pixels the mean confidence is " \
           f"{calibration['mean_confidence']:.1f}% for an accuracy of {calibration['accuracy']:.1f}%; " \
           f"ECE {calibration['ECE']:.2f}%" in printed
    for row in calibration["under"]:
        assert f"under {100 * row['below']:.0f}% confidence: {row['pixels']:.1f}% of the pixels" in printed
    shown = [row for row in calibration["bins"] if row["pixels"]]
    assert shown and all(f"{100 * row['from']:3.0f}-{100 * row['to']:3.0f}%" in printed for row in shown)
    assert sum(row["pixels"] for row in calibration["bins"]) == calibration["pixels"] > 0


def test_eval_interval_and_compare_two_models_on_the_same_images(capsys, config_file, scenes, tmp_path):
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    for seed in (0, 1):
        torch.manual_seed(seed)
        segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / f"m{seed}")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m0"), "--out", str(first), "--no-progress",
                 "--interval"]) == 0
    printed = capsys.readouterr().out
    results = json.loads(first.read_text())
    interval = results["interval"]
    assert (interval["unit"], interval["units"], interval["samples"], interval["images"]) == ("image", 4, 1000, 4)
    low, high = interval["mIoU"]
    assert low <= results["mIoU"] <= high and len(interval["IoU"]) == 8
    assert f"95% interval over 1,000 resamples of the 4 images: mIoU {low:.2f}-{high:.2f}, aAcc " in printed
    header, first_class = printed.splitlines()[:2]  # each class's IoU interval in a column of its own
    assert header.endswith("  IoU 95% interval") and first_class.startswith(names[0])
    class_low, class_high = interval["IoU"][0]
    assert first_class.endswith(f"  {class_low:6.2f} - {class_high:.2f}")  # sky: in every scene
    # the scenes are drawn apart (their classes.json: "groups": ".+"): no groups, no note on them; but
    # four images are too few for the tails of a 95% interval: it is the range of the resamples
    assert "  note: with 4 images the interval is the whole range of the resamples: too few images to tell how " \
           "far the score would move on others\n" in printed and results["interval"]["note"].startswith("with 4 ")
    assert "by group" not in printed and "per_group" not in results
    stored = results["image_areas"]
    assert stored["images"] == [f"images/val/scene_{i:04d}.png" for i in range(4)] and stored["groups"] is None
    confusion = np.array(results["confusion"])
    summed = areas_from_json(stored["areas"], 8).sum(0).numpy()
    assert (summed[0] == np.diag(confusion)).all() and (summed[1] == confusion.sum(1)).all()
    assert '  "confusion": [\n    [' in first.read_text()  # a row of the matrix per line
    assert "hardest images" not in printed and not (tmp_path / "first_per_image.csv").exists()  # --per-image's

    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--out", str(second), "--no-progress",
                 "--compare", str(first)]) == 0
    printed = capsys.readouterr().out
    compared = json.loads(second.read_text())["compared_with"]
    assert compared["mIoU"] == pytest.approx(json.loads(second.read_text())["mIoU"] - results["mIoU"])
    assert compared["results"] == str(first) and compared["checkpoint"] == str(tmp_path / "m0")
    assert compared["mIoU_interval"][0] <= compared["mIoU"] <= compared["mIoU_interval"][1]
    assert f"against {tmp_path / 'm0'} ({first}), 95% intervals over 1,000 resamples of the 4 images shared by " \
           f"both: mIoU {compared['mIoU']:+.2f} ({compared['mIoU_interval'][0]:+.2f} to " in printed
    assert f"the mIoU is higher in {100 * compared['higher_share']:.1f}% of them" in printed
    assert "tested otherwise" not in printed
    # the same model tested with its flip: the comparison says how the two were tested
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m0"), "--out", str(tmp_path / "flip.json"),
                 "--no-progress", "--flip", "--compare", str(first)]) == 0
    assert "  tested otherwise: flip True against False\n" in capsys.readouterr().out
    # compared with itself: no difference at all
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m0"), "--out", str(tmp_path / "same.json"),
                 "--no-progress", "--compare", str(first)]) == 0
    assert "mIoU +0.00 (+0.00 to +0.00)" in capsys.readouterr().out
    # what cannot be compared says so before anything runs, or names the images that differ
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--no-progress", "--compare",
                 str(tmp_path / "absent.json")]) == 1
    assert "absent.json: no such file" in capsys.readouterr().err
    plain = tmp_path / "plain.json"
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--out", str(plain), "--no-progress"]) == 0
    assert "interval" not in json.loads(plain.read_text()) and "image_areas" not in json.loads(plain.read_text())
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--no-progress", "--compare", str(plain)]) == 1
    assert "holds no per-image class areas; evaluate that model again with `segnext eval --interval`" in \
        capsys.readouterr().err
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--out", str(tmp_path / "two.json"),
                 "--no-progress", "--max-images", "2", "--compare", str(first)]) == 1
    assert "scored on other images (4 against 2 here" in capsys.readouterr().err
    renamed = json.loads(first.read_text())
    renamed["image_areas"]["images"][1] = "images/val/elsewhere.png"
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m1"), "--no-progress", "--compare",
                 str(tmp_path / "renamed.json")]) == 1
    assert "(as many, 4, but not the same; first differing: images/val/scene_0001.png against " \
           "images/val/elsewhere.png)" in capsys.readouterr().err
    # two finished evaluations compared without a model: what eval --compare printed, and as JSON
    assert main(["compare", str(second), str(first), "--out", str(tmp_path / "cmp.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{tmp_path / 'm1'} ({second}) on folder val: mIoU ")
    assert f"mIoU {compared['mIoU']:+.2f} ({compared['mIoU_interval'][0]:+.2f} to " in printed
    assert json.loads((tmp_path / "cmp.json").read_text())["compared_with"] == json.loads(second.read_text())[
        "compared_with"]
    assert main(["compare", str(second), str(plain)]) == 1
    assert "BASELINE " + str(plain) + ": it holds no per-image class areas" in capsys.readouterr().err
    assert main(["compare", str(second), str(tmp_path / "renamed.json")]) == 1
    assert "first differing: images/val/scene_0001.png against images/val/elsewhere.png" in capsys.readouterr().err


def test_eval_predictions_scores_the_files_predict_wrote_as_eval_scores_the_model(capsys, config_file, scenes,
                                                                                  tmp_path):
    """Label maps written by `segnext predict` (or anything else in that form) scored without a model:
    the same confusion matrix and per-image areas as evaluating the model itself; what needs a model,
    and files that cannot be the predictions, are refused with what to do."""
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    torch.manual_seed(0)
    segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / "m0")
    settings = ["--img-scale", "64", "48", "--no-progress"]
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m0"), "--out", str(tmp_path / "model.json"),
                 "--interval", *settings]) == 0
    predictions = tmp_path / "served"
    assert main(["predict", "-c", str(tmp_path / "m0"), str(scenes / "images" / "val"), "--out", str(predictions),
                 *settings]) == 0
    capsys.readouterr()
    assert main(["eval", str(config_file), "--predictions", str(predictions), "--interval", "--per-image",
                 "--no-progress", "--compare", str(tmp_path / "model.json")]) == 0
    captured = capsys.readouterr()
    assert f"{predictions} on folder val (4 images): the label maps as they are" in captured.err
    assert "mIoU +0.00 (+0.00 to +0.00)" in captured.out
    written, model = (json.loads((tmp_path / name).read_text()) for name in ("eval_served_val.json", "model.json"))
    assert written["confusion"] == model["confusion"] and written["mIoU"] == model["mIoU"]
    assert written["image_areas"] == model["image_areas"] and written["checkpoint"] == str(predictions)
    assert (tmp_path / "eval_served_val_per_image.csv").is_file()

    for options, message in [
            (["--ms", "--device", "cpu"], f"--device, --ms: options of running a model; --predictions scores the "
                                          f"files in {predictions} as they are (give --checkpoint instead to run one)"),
            (["--hardest", "2"], "--hardest: an option of running a model"),
            (["-c", str(tmp_path / "m0")], "argument --checkpoint/-c: not allowed with argument --predictions")]:
        with pytest.raises(SystemExit) if options[0] == "-c" else contextlib.nullcontext():
            assert main(["eval", str(config_file), "--predictions", str(predictions), *options]) == 1
        assert message in capsys.readouterr().err
    (predictions / "scene_0002.png").unlink()
    assert main(["eval", str(config_file), "--predictions", str(predictions), "--no-progress"]) == 1
    assert f"{predictions}: no prediction for 1 of the 4 images, e.g. scene_0002.png for " \
           f"{scenes / 'images' / 'val' / 'scene_0002.png'}; predict them all" in capsys.readouterr().err
    assert main(["eval", str(config_file), "--predictions", str(predictions), "--no-progress", "--max-images",
                 "2"]) == 0  # the first two are there

    unsure = tmp_path / "unsure"  # the labels given where the model is sure, and how many pixels got one
    segmenter = segnext.Segmenter.from_checkpoint(tmp_path / "m0")
    segmenter.test_config.img_scale = (64, 48)
    _, confidence = segmenter.predict_with_confidence(sorted((scenes / "images" / "val").iterdir())[0])
    assert main(["predict", "-c", str(tmp_path / "m0"), str(scenes / "images" / "val"), "--out", str(unsure),
                 "--unsure-below", f"{float(np.median(confidence)):.4f}", *settings]) == 0
    capsys.readouterr()
    assert main(["eval", str(config_file), "--predictions", str(unsure), "--no-progress"]) == 1
    assert "score the labels given with --skip-unlabelled" in capsys.readouterr().err
    assert main(["eval", str(config_file), "--predictions", str(unsure), "--skip-unlabelled", "--no-progress"]) == 0
    coverage = json.loads((tmp_path / "eval_unsure_val.json").read_text())["coverage"]
    assert 0 < coverage["unlabelled_pixels"] < coverage["labelled_pixels"]
    assert (f"coverage: the label maps give a label to {coverage['percent']:.2f}% of the "
            f"{coverage['labelled_pixels']:,} labelled pixels") in capsys.readouterr().out
    assert main(["eval", str(config_file), "-c", str(tmp_path / "m0"), "--skip-unlabelled"]) == 1
    assert "--skip-unlabelled scores the label maps of --predictions DIR" in capsys.readouterr().err


def test_calibrate_writes_the_model_with_the_fitted_temperature(capsys, config_file, scenes, tmp_path):
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", num_classes=8, class_names=names, logit_temperature=2.0)
    segnext.save_model(model, tmp_path / "m0")
    assert main(["calibrate", str(config_file), "-c", str(tmp_path / "m0"), "--no-progress", "--pixels", "4000"]) == 0
    captured = capsys.readouterr()
    fitted = float(re.search(r"^temperature (\S+), fitted on 4,000 labelled pixels of 4 images: negative "
                             r"log-likelihood (\S+) -> (\S+), ECE", captured.out, re.M).group(1))
    before, after = (float(v) for v in re.search(r"log-likelihood (\S+) -> (\S+),", captured.out).groups())
    assert after <= before
    out = tmp_path / "m0_calibrated"  # beside the model
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["logit_temperature"] == pytest.approx(2.0 * fitted, rel=1e-3)  # on top of the one it had
    assert f"with the 2.000 it had: {saved['logit_temperature']:.3f}" in captured.out
    assert "calibrated by `segnext calibrate`" in (out / "README.md").read_text()
    reloaded = segnext.create_model(checkpoint=out)
    assert reloaded.config.logit_temperature == pytest.approx(2.0 * fitted, rel=1e-3)
    assert torch.equal(reloaded.decode_head.conv_seg.weight, model.decode_head.conv_seg.weight)  # unchanged

    assert main(["calibrate", str(config_file), "--no-progress"]) == 1
    assert "no model to calibrate: give --checkpoint" in capsys.readouterr().err
    segnext.save_model(segnext.create_model("segnext_t", num_classes=3), tmp_path / "three")
    assert main(["calibrate", str(config_file), "-c", str(tmp_path / "three"), "--no-progress"]) == 1
    assert "predicts 3 classes but the folder dataset has 8" in capsys.readouterr().err
    assert not (tmp_path / "three_calibrated").exists()


def test_an_interrupted_eval_resumes_where_it_stopped(capsys, config_file, scenes, tmp_path, monkeypatch):
    """Ctrl-C at the third image: the partial scores stay beside the results, the same command
    resumes from them and writes the uninterrupted run's results; another test starts over."""
    import importlib

    evaluation = importlib.import_module("segnext.evaluation.evaluate")  # the module, not the function
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    torch.manual_seed(0)
    segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / "m0")
    line = ["eval", str(config_file), "-c", str(tmp_path / "m0"), "--no-progress", "--per-image", "--calibration"]
    assert main([*line, "--out", str(tmp_path / "whole.json")]) == 0
    original = evaluation.segment_group_confidence

    def interrupt_at_the_third_image():
        calls = []

        def interrupted(*arguments, **options):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return original(*arguments, **options)

        monkeypatch.setattr(evaluation, "segment_group_confidence", interrupted)

    out, partial = tmp_path / "resumed.json", tmp_path / "resumed.partial.json"
    interrupt_at_the_third_image()
    assert main([*line, "--out", str(out)]) == 130
    assert f"the scores so far are kept in {partial}; the same command resumes" in capsys.readouterr().err
    assert len(json.loads(partial.read_text())["scores"]["done"]) == 2 and not out.exists()
    monkeypatch.setattr(evaluation, "segment_group_confidence", original)
    assert main([*line, "--out", str(out), "--flip"]) == 0  # another test: starts over
    assert "holds the partial scores of another evaluation" in capsys.readouterr().err and not partial.exists()

    interrupt_at_the_third_image()
    assert main([*line, "--out", str(out)]) == 130
    monkeypatch.setattr(evaluation, "segment_group_confidence", original)
    assert main([*line, "--out", str(out)]) == 0
    assert "resuming: 2 of 4 images were scored by an interrupted run" in capsys.readouterr().err
    whole, resumed = (json.loads((tmp_path / name).read_text()) for name in ("whole.json", "resumed.json"))
    for key in ("confusion", "mIoU", "calibration", "per_class"):
        assert resumed[key] == whole[key], key
    assert not partial.exists()

    interrupt_at_the_third_image()
    assert main([*line, "--out", str(out)]) == 130
    monkeypatch.setattr(evaluation, "segment_group_confidence", original)
    assert main([*line, "--out", str(out), "--restart"]) == 0
    assert "resuming" not in capsys.readouterr().err and not partial.exists()


def test_eval_interval_scores_each_group_of_images(capsys, config_file, scenes, tmp_path):
    """Val images named after two sequences: each sequence's scores, the lowest first."""
    import shutil

    root = tmp_path / "sequences"
    shutil.copytree(scenes, root)
    for kind in ("images", "labels"):
        for index, path in enumerate(sorted((root / kind / "val").iterdir())):
            path.rename(path.with_name(f"{'seqA' if index < 3 else 'seqB'}_{index:04d}.png"))
    names = json.loads((scenes / "classes.json").read_text())["classes"]
    (root / "classes.json").write_text(json.dumps({"classes": names}))  # groups read the default way
    segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / "model")
    out = tmp_path / "groups.json"
    assert main(["eval", str(config_file), f"data.root={root}", "-c", str(tmp_path / "model"), "--out", str(out),
                 "--no-progress", "--interval", "--per-image"]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert results["image_areas"]["groups"] == ["seqA"] * 3 + ["seqB"]
    # the per-image table names each image's group, to sort or filter by it
    with open(tmp_path / "groups_per_image.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert list(rows[0])[:6] == ["image", "label", "group", "pixels", "aAcc", "mIoU"]
    assert sorted((Path(row["image"]).name[:4], row["group"]) for row in rows) == \
        [("seqA", "seqA")] * 3 + [("seqB", "seqB")]
    assert [(row["group"], row["images"]) for row in results["per_group"]] == [("seqA", 3), ("seqB", 1)]
    assert "note: the 4 images fall into 2 groups by their file names (seqA, seqB): if " in printed
    shown = sorted(results["per_group"], key=lambda row: row["mIoU"])
    assert "by group (read from the file names), the lowest mIoU first:\n" + "\n".join(
        f"  {row['group']:<12} {row['images']:5d} images  mIoU {row['mIoU']:6.2f}  aAcc {row['aAcc']:6.2f}"
        for row in shown) in printed


def test_eval_scores_each_image_and_draws_the_hardest(capsys, config_file, scenes, tmp_path):
    from PIL import Image

    names = json.loads((scenes / "classes.json").read_text())["classes"]
    segnext.save_model(segnext.create_model("segnext_t", num_classes=8, class_names=names), tmp_path / "model")
    out = tmp_path / "eval.json"
    assert main(["eval", str(config_file), "-c", str(tmp_path / "model"), "--out", str(out), "--no-progress",
                 "--hardest", "2"]) == 0
    printed = capsys.readouterr().out
    lines = (tmp_path / "eval_per_image.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["image", "label", "pixels", "aAcc", "mIoU"] and len(lines) == 1 + 4
    rows = [line.split(",") for line in lines[1:]]
    assert all(Path(row[0]).is_file() and Path(row[1]).is_file() for row in rows)
    assert [float(row[4]) for row in rows] == sorted(float(row[4]) for row in rows)  # hardest first
    assert f"hardest images (mIoU over the classes in the label or the prediction; all in " \
           f"{tmp_path / 'eval_per_image.csv'}):" in printed
    # the hardest printed first, its scores as in the CSV (there to 2 decimals: printed to 1, within 0.05)
    first = re.search(r"\n  mIoU +([0-9.]+)  aAcc +([0-9.]+)  (\S+)  \(weakest: ", printed)
    assert first and first.group(3) == rows[0][0], printed
    assert abs(float(first.group(1)) - float(rows[0][4])) <= 0.051
    assert abs(float(first.group(2)) - float(rows[0][3])) <= 0.051
    pictures = sorted((tmp_path / "eval_hardest").iterdir())
    assert [picture.name for picture in pictures] == [f"{rank:02d}_{Path(row[0]).stem}.jpg"
                                                       for rank, row in enumerate(rows[:2], start=1)]
    # four captioned panels of the 64x48 image, each pixel a 4x4 block for the captions to fit
    assert Image.open(pictures[0]).size == (2 * 4 * 64, 2 * (4 * 48 + 14))
    # Asked again for fewer: the pictures of the earlier evaluation go.
    assert main(["eval", str(config_file), "-c", str(tmp_path / "model"), "--out", str(out), "--no-progress",
                 "--hardest", "1"]) == 0
    assert len(list((tmp_path / "eval_hardest").iterdir())) == 1
    assert main(["eval", str(config_file), "-c", str(tmp_path / "model"), "--out", str(tmp_path / "plain.json"),
                 "--no-progress", "--per-image"]) == 0
    assert (tmp_path / "plain_per_image.csv").is_file() and not (tmp_path / "plain_hardest").exists()


def test_overrides_are_accepted_anywhere_on_the_line(capsys, config_file, tmp_path):
    assert main(["train", str(config_file), "--work-dir", str(tmp_path / "w"), "train.max_iters=7", "--print-config",
                 "data.crop_size=[32,32]"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["max_iters"] == 7 and printed["data"]["crop_size"] == [32, 32]
    # The same parsing for every command: positionals after options, and unknown options still refused.
    from segnext.cli.main import build_parser, parse_arguments

    args = parse_arguments(build_parser(), ["predict", "--checkpoint", "c", "a.png", "--out", "o", "b.png"])
    assert args.inputs == ["a.png", "b.png"] and args.out == "o"
    with pytest.raises(SystemExit):
        main(["train", str(config_file), "--work-dir", "w", "--no-such-option", "1"])
    assert "unrecognized arguments: --no-such-option 1" in capsys.readouterr().err


def test_training_refuses_a_val_split_without_labels_before_writing_anything(capsys, config_file, scenes, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(scenes, root)
    for label in (root / "labels" / "val").iterdir():
        label.unlink()
    work_dir = tmp_path / "run"
    assert main(["train", str(config_file), f"data.root={root}", "--work-dir", str(work_dir), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "split 'val'" in error and "has no labels" in error and "Traceback" not in error
    assert not work_dir.exists()
