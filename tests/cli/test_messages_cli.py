"""The command line's answers to the usual mistakes: one line naming what is wrong and what to do,
exit status 1, no traceback, and no work done (or left behind) before the mistake is found."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

import segnext
from segnext.cli.main import COMMANDS, main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """What `segnext train` leaves: a run folder with final_model/ and checkpoints/."""
    run = tmp_path_factory.mktemp("run")
    model = segnext.create_model("segnext_t", 5)
    segnext.save_model(model, run / "final_model")
    (run / "checkpoints").mkdir()
    torch.save({"format": "segnext-train"}, run / "checkpoints" / "best.pt")
    return run


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_export_without_onnx_says_how_to_install_it_before_any_work(capsys, monkeypatch, run_dir, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the onnx extra were not installed
    err = _error(capsys, ["export", "-c", str(run_dir / "final_model"), "-o", str(tmp_path / "m.onnx")])
    assert "needs the onnx package: pip install 'segnext[onnx]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_predict_with_onnx_without_onnxruntime(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    err = _error(capsys, ["predict", "--onnx", str(tmp_path / "m.onnx"), str(tmp_path)])
    assert "pip install 'segnext[onnx]'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a PyTorch without CUDA")
def test_unavailable_device_says_what_is_installed(capsys, run_dir, tmp_path):
    err = _error(capsys, ["predict", "-c", str(run_dir / "final_model"), "--device", "cuda", str(tmp_path)])
    built = "without CUDA" if torch.version.cuda is None else "sees no CUDA device"  # a CPU or a CUDA build
    assert "device 'cuda'" in err and built in err and "available here: cpu" in err


def test_an_output_folder_that_cannot_be_made_is_named_once_before_the_model_loads(capsys, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    (tmp_path / "taken").write_text("a file")
    for out, why in (("taken", "a file has this name where a folder is needed"),
                     ("taken/sub", "a part of this path is a file, not a folder")):
        err = _error(capsys, ["predict", "-c", str(tmp_path / "no_model"), str(tmp_path / "x.png"),
                              "--out", str(tmp_path / out)])
        assert f"{tmp_path / out}: {why}; choose another path" in err
        assert "no_model" not in err  # found before the (missing) model would be loaded


def test_a_predict_that_fails_before_writing_leaves_no_output_folder(capsys, monkeypatch, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    monkeypatch.chdir(tmp_path)  # the default --out, predictions/, is made in the working folder
    err = _error(capsys, ["predict", "-c", str(tmp_path / "no_model"), "x.png"])
    assert "no_model" in err
    assert not (tmp_path / "predictions").exists()


def test_paths_the_file_system_refuses_are_one_line_naming_them(capsys, run_dir, tmp_path):
    """Any command: an output under a file, or a folder where a file must go, without a traceback."""
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "folder.onnx").mkdir()
    model = str(run_dir / "final_model")
    err = _error(capsys, ["export", "-c", model, "-o", str(tmp_path / "taken" / "m.onnx")])
    assert f"{tmp_path / 'taken'}: a file has this name where a folder is needed; choose another path" in err
    err = _error(capsys, ["export", "-c", model, "-o", str(tmp_path / "folder.onnx")])
    assert f"{tmp_path / 'folder.onnx'}: this is a folder where a file is needed" in err, err


def test_a_run_folder_passed_as_a_model_points_to_the_models_in_it(capsys, run_dir, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    err = _error(capsys, ["predict", "-c", str(run_dir), str(tmp_path)])
    assert "is a training run folder, not a model" in err
    assert str(run_dir / "final_model") in err and str(run_dir / "checkpoints" / "best.pt") in err


def test_resume_from_a_model_folder_explains_and_leaves_no_work_dir(capsys, run_dir, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "folder", "root": str(tmp_path)}}))
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (8, 8)).save(tmp_path / "images" / split / "x.png")
        Image.new("L", (8, 8)).save(tmp_path / "labels" / split / "x.png")
    work_dir = tmp_path / "work"
    err = _error(capsys, ["train", str(config), "data.crop_size=[8,8]", "--work-dir", str(work_dir), "--resume",
                          str(run_dir / "final_model"), "--no-progress"])
    assert "is a model folder (weights only), not a training checkpoint" in err
    assert f"model.checkpoint={run_dir / 'final_model'}" in err
    assert not work_dir.exists()


@pytest.mark.parametrize("override,expected", [
    ("train.max_iters=abc", "override 'train.max_iters=abc': train.max_iters must be an integer, got 'abc'"),
    ("train.max_iters=0", "override 'train.max_iters=0': train.max_iters must be at least 1"),
    ("data.dataset=ade", "data.dataset is 'ade', not a dataset segnext reads. Did you mean 'ade20k'?"),
])
def test_a_bad_override_is_named_as_the_override(capsys, override, expected):
    err = _error(capsys, ["train", "segnext_t_ade20k_512x512_160k", override, "--print-config"])
    assert expected in err


def test_eval_without_arguments_asks_for_the_config_only(capsys):
    with pytest.raises(SystemExit):
        main(["eval"])
    err = capsys.readouterr().err
    assert "the following arguments are required: config\n" in err  # overrides are optional


def test_data_check_suggests_the_dataset_name(capsys, tmp_path):
    err = _error(capsys, ["data", "check", "camvd", str(tmp_path)])
    assert "unknown dataset 'camvd'. Did you mean 'camvid'?" in err


def test_missing_dataset_root_says_how_to_get_the_data(capsys, tmp_path):
    err = _error(capsys, ["train", "camvid/segnext_t_camvid_cpu_60min", f"data.root={tmp_path / 'nowhere'}",
                          "--work-dir", str(tmp_path / "w")])
    assert "does not exist" in err and "segnext data prepare camvid" in err and "docs/datasets.md" in err


def test_eval_writes_next_to_the_checkpoint_and_benchmark_to_stdout():
    from segnext.cli.eval import results_path

    assert results_path("runs/demo/final_model", "val") == Path("runs/demo/eval_final_model_val.json")
    assert results_path("runs/demo/checkpoints/best.pt", "val") == Path("runs/demo/eval_best_val.json")
    assert results_path("downloads/segnext_tiny.pth", "validation") == \
        Path("downloads/eval_segnext_tiny_validation.json")


def test_benchmark_writes_no_file_unasked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "--shape", "32", "32", "--runs", "1", "--warmup", "0", "--backends", "eager"]) == 0
    assert "eager" in capsys.readouterr().out and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself_with_examples(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and f"segnext {command}" in text.split("examples:")[1]
    assert len(text.split("\n\n")[1]) > 40  # a description, not just the usage line
