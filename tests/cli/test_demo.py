"""`segnext demo` end to end, in its reduced form (--quick), and what it leaves: a final_model that
`segnext predict` segments exactly as the run evaluated it and that `segnext eval` scores as the
run's results.json says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import segnext
from segnext.cli.main import main
from segnext.train import load_config

pytestmark = pytest.mark.charts  # the report's charts are drawn (tests/conftest.py)


@pytest.fixture()
def demo(demo_run):
    return demo_run  # the quick demo of conftest.py, run once for the whole session


def test_demo_quick_writes_metrics_report_and_model(demo, capsys):
    results = json.loads((demo / "results.json").read_text())
    assert set(results) >= {"aAcc", "mIoU", "mAcc", "per_class", "majority_class_mIoU"}
    assert [row["class"] for row in results["per_class"]][:3] == ["sky", "building", "road"]
    records = [json.loads(line) for line in (demo / "log.jsonl").read_text().splitlines()]
    assert any(r["type"] == "eval" for r in records) and any(r["type"] == "train" for r in records)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (demo / "report.png").stat().st_size > 10000
    model = segnext.create_model(checkpoint=demo / "final_model")
    assert model.num_classes == 8
    card = (demo / "final_model" / "README.md").read_text()
    assert f"| mIoU | {results['mIoU']:.2f} |" in card and "Trained by `segnext train` for 30 iterations" in card


def _labels(folder):
    return {path.name: np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))}


def test_predict_on_final_model_segments_as_the_run_evaluated(demo, tmp_path):
    images = demo / "data" / "images" / "val"
    [last] = sorted((demo / "checkpoints").glob("iter_*.pt"))
    for name, checkpoint in (("final", demo / "final_model"), ("checkpoint", last)):
        assert main(["predict", "--checkpoint", str(checkpoint), str(images), "--out", str(tmp_path / name),
                     "--no-progress"]) == 0
    final, from_checkpoint = _labels(tmp_path / "final"), _labels(tmp_path / "checkpoint")
    assert len(final) == 8 and final.keys() == from_checkpoint.keys()
    for name in final:
        assert np.array_equal(final[name], from_checkpoint[name]), name
    # Scored against the val labels, the predictions give the run's mIoU: the same test settings.
    metric = segnext.SegmentationMetric(8)
    for name, labels in final.items():
        target = np.asarray(Image.open(demo / "data" / "labels" / "val" / name))
        metric.update(torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
    results = json.loads((demo / "results.json").read_text())
    assert metric.compute()["mIoU"] == pytest.approx(results["mIoU"], abs=0.5)


def test_eval_on_final_model_reproduces_results_json(demo, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(demo / "config.yaml"), "--checkpoint", str(demo / "final_model"), "--out", str(out),
                 "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err  # the folder's settings are the config's
    evaluated, run = json.loads(out.read_text()), json.loads((demo / "results.json").read_text())
    for key in ("mIoU", "aAcc", "mAcc"):
        assert evaluated[key] == pytest.approx(run[key], abs=1e-6), key
    def rounded(rows):  # absent classes have no IoU (null)
        return [None if row["IoU"] is None else round(row["IoU"], 6) for row in rows]

    assert rounded(evaluated["per_class"]) == rounded(run["per_class"])


def test_eval_says_when_the_run_trained_on_the_split_it_scores(demo, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(demo / "config.yaml"), "--checkpoint", str(demo / "final_model"), "--split", "train",
                 "--max-images", "2", "--out", str(out), "--no-progress"]) == 0
    note = json.loads(out.read_text())["validation_note"]
    assert note.startswith("train is (part of) the training data (train)")
    assert f"segnext eval: note: {note}" in capsys.readouterr().err


def test_a_model_folder_outside_its_run_says_what_it_trained_on(demo, tmp_path, capsys):
    """final_model records its training data (config.json's training_data), so eval can tell even
    away from the run folder."""
    import shutil

    recorded = json.loads((demo / "final_model" / "config.json").read_text())["training_data"]
    assert recorded["dataset"] == "folder" and recorded["split"] == "train"
    model = shutil.copytree(demo / "final_model", tmp_path / "model")
    out = tmp_path / "eval.json"
    assert main(["eval", str(demo / "config.yaml"), "--checkpoint", str(model), "--split", "train", "--max-images",
                 "2", "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["validation_note"].startswith("train is (part of) the training data (train)")
    assert main(["eval", str(demo / "config.yaml"), "evaluation.max_images=2", "--checkpoint", str(model),
                 "--out", str(out), "--no-progress"]) == 0  # training's key for --max-images, as an override
    assert json.loads(out.read_text())["validation_note"] is None  # the demo's val is its own scenes
    assert json.loads(out.read_text())["num_images"] == 2


def test_an_onnx_export_says_what_its_model_trained_on(demo, tmp_path, capsys):
    """`segnext export` carries the folder's record into the file's metadata, so eval --onnx tells too."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: `segnext eval --onnx` untested")
    exported = tmp_path / "model.onnx"
    assert main(["export", "-c", str(demo / "final_model"), "-o", str(exported), "--shape", "64", "64"]) == 0
    recorded = json.loads((demo / "final_model" / "config.json").read_text())["training_data"]
    assert json.loads(segnext.inference.OnnxModel(exported).metadata["training_data"]) == recorded
    out = tmp_path / "eval.json"
    assert main(["eval", str(demo / "config.yaml"), "--onnx", str(exported), "--split", "train", "--max-images", "2",
                 "--out", str(out), "--no-progress"]) == 0
    note = json.loads(out.read_text())["validation_note"]
    assert note.startswith("train is (part of) the training data (train)")
    assert f"segnext eval: note: {note}" in capsys.readouterr().err


def test_eval_tests_with_the_saved_settings_as_predict_does(demo, tmp_path, capsys):
    """One default with `segnext predict`: the model folder's settings (and NMF seed), named when CONFIG's
    differ; evaluation.* overrides given on the command line win; --config-settings takes CONFIG's section."""
    other = tmp_path / "other.yaml"
    other.write_text((demo / "config.yaml").read_text().replace("nmf_seed: 0", "nmf_seed: 5"))
    other_config = load_config(str(other), ["evaluation.img_scale=[96,80]"])
    other.write_text(other_config.to_yaml())
    model, out = str(demo / "final_model"), tmp_path / "eval.json"
    assert main(["eval", str(other), "--checkpoint", model, "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "img_scale=(80, 64)" in err and "--config-settings" in err
    assert "whole, img_scale (80, 64)" in err  # the settings it tests with, said before it starts
    evaluated, run = json.loads(out.read_text()), json.loads((demo / "results.json").read_text())
    assert evaluated["test"]["img_scale"] == [80, 64] and evaluated["test"]["nmf_seed"] == 0
    assert evaluated["mIoU"] == pytest.approx(run["mIoU"], abs=1e-6)

    assert main(["eval", str(other), "--checkpoint", model, "--out", str(out), "--no-progress", "--max-images", "2",
                 "--config-settings"]) == 0
    err = capsys.readouterr().err
    assert "note:" not in err and "(2 images): whole, img_scale (96, 80)" in err
    assert json.loads(out.read_text())["test"]["img_scale"] == [96, 80]
    assert json.loads(out.read_text())["test"]["nmf_seed"] == 5

    assert main(["eval", str(demo / "config.yaml"), "evaluation.flip=true", "--checkpoint", model, "--out", str(out),
                 "--no-progress", "--max-images", "2"]) == 0
    assert "note:" not in capsys.readouterr().err  # what is asked for on the command line is not a surprise
    assert json.loads(out.read_text())["test"]["flip"] is True


def test_eval_and_train_to_a_path_the_file_system_refuses_fail_before_the_work(demo, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    assert main(["train", str(demo / "config.yaml"), "--work-dir", str(tmp_path / "taken"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'taken' / 'checkpoints'}: a part of this path is a file, not a folder" in err, err
    assert main(["eval", str(demo / "config.yaml"), "--checkpoint", str(demo / "final_model"), "--no-progress",
                 "--out", str(tmp_path / "taken" / "eval.json")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'taken'}: a file has this name where a folder is needed; choose another path" in err
    assert "Traceback" not in err and " on " not in err  # refused before the evaluation's first line
    assert main(["eval", str(demo / "config.yaml"), "--checkpoint", str(demo / "final_model"), "--no-progress",
                 "--out", str(tmp_path)]) == 1  # a folder, where the results file would go
    err = capsys.readouterr().err
    assert f"{tmp_path}: this is a folder where a file is needed; choose another path" in err
    assert " on " not in err
