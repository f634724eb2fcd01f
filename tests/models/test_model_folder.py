"""The model folder is the whole model: config.json carries the test settings and the classes,
README.md describes it, and every reader (create_model, Segmenter, export, the Hub) uses them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import List

import pytest
import torch

import segnext
from segnext import SegNeXt, TestConfig, save_model

SETTINGS = TestConfig(img_scale=(96, 64), size_divisor=None, flip=True, mean=(100.0, 110.0, 120.0),
                      std=(50.0, 55.0, 60.0))


@pytest.fixture(scope="module")
def trained(checkpoint_path):
    model = segnext.create_model(checkpoint=checkpoint_path)
    model.config.test_settings = SETTINGS.to_dict()
    return model


@pytest.fixture(scope="module")
def folder(trained, tmp_path_factory):
    metrics = {"mIoU": 41.5, "aAcc": 80.1, "mAcc": 52.0, "dataset": "ade20k", "split": "validation", "num_images": 2000}
    return save_model(trained, tmp_path_factory.mktemp("f") / "model", source="Trained for a test.", metrics=metrics)


def test_the_model_inside_a_training_wrapper_is_saved(trained, tmp_path):
    """A training script holds its model in DistributedDataParallel, DataParallel or torch.compile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's, raised as torch.compile is imported
        compiled = torch.compile(trained)
    for wrapped in (torch.nn.DataParallel(trained), compiled):
        saved = segnext.create_model(checkpoint=save_model(wrapped, tmp_path / type(wrapped).__name__))
        assert all(torch.equal(value, trained.state_dict()[key]) for key, value in saved.state_dict().items())
    with pytest.raises(TypeError, match="save_model saves a SegNeXt .segnext.create_model., got Conv2d"):
        save_model(torch.nn.Conv2d(3, 3, 1), tmp_path / "conv")


def test_saving_never_replaces_files_of_a_folder_that_is_not_a_model(trained, tmp_path):
    """`segnext convert weights.pth .` in a project folder replaced the project's README.md by the card."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my project")
    with pytest.raises(ValueError, match="holds README.md but is not a segnext model folder"):
        save_model(trained, project)
    assert (project / "README.md").read_text() == "my project" and sorted(os.listdir(project)) == ["README.md"]
    folder = save_model(trained, tmp_path / "model")
    assert save_model(trained, folder) == folder  # a model folder is saved over, as a run's final model


def test_a_folder_under_the_home_directory_is_written_there(trained, tmp_path, monkeypatch):
    """"~/models/x" in Python is not expanded by the shell: a literal "~" folder in the working
    directory is what users then delete with `rm -rf ~`."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    saved = save_model(trained, "~/models/t")
    assert saved == tmp_path / "home" / "models" / "t" and (saved / "model.safetensors").is_file()
    assert not (tmp_path / "~").exists()
    assert segnext.create_model(checkpoint="~/models/t").num_classes == trained.num_classes


def test_config_json_holds_settings_classes_and_card(folder, trained):
    meta = json.loads((folder / "config.json").read_text())
    assert meta["config"]["test_settings"] == json.loads(json.dumps(SETTINGS.to_dict()))
    assert meta["id2label"]["0"] == "wall" and meta["label2id"]["wall"] == 0 and len(meta["id2label"]) == 150
    assert meta["metrics"]["mIoU"] == 41.5 and meta["source"] == "Trained for a test."
    assert "RGB" in meta["input"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: segnext")
    for text in ("# SegNeXt-T, 150 classes", "0 wall, 1 building", "Trained for a test.", "| mIoU | 41.50 |",
                 "On ade20k validation split (2000 images)", "img_scale [96, 64]", "flip True"):
        assert text in card, text
    # The weights' licence is their trainer's to state (it follows the data), not the code's.
    assert "license:" not in card and "## Terms" in card and "terms of the data they were trained on" in card


# config.json's fields in the first releases: a folder of the paper's architecture names no other.
FIRST_FIELDS = {"variant", "num_classes", "embed_dims", "depths", "mlp_ratios", "drop_path_rate",
                "attention_kernel_size", "strip_kernel_sizes", "head_in_stages", "head_channels", "ham_channels",
                "nmf_rank", "nmf_train_steps", "nmf_eval_steps", "group_norm_groups", "dropout_ratio", "class_names",
                "palette", "test_settings"}


def test_config_json_names_later_fields_only_where_they_change_the_model(folder, trained, tmp_path):
    """Earlier releases refuse a field they do not know: a folder of the paper's model stays readable there."""
    assert set(json.loads((folder / "config.json").read_text())["config"]) == FIRST_FIELDS
    ablated = segnext.create_model("segnext_t", 3, attention_gating=False, logit_temperature=0.9)
    saved = json.loads((save_model(ablated, tmp_path / "ablated") / "config.json").read_text())["config"]
    assert set(saved) == FIRST_FIELDS | {"attention_gating", "logit_temperature"}
    assert saved["attention_gating"] is False and saved["logit_temperature"] == 0.9
    assert segnext.create_model(checkpoint=tmp_path / "ablated").config == ablated.config


def test_a_card_says_when_it_was_scored_on_images_it_trained_on(trained):
    from segnext.models.card import model_card

    metrics = {"mIoU": 80.0, "dataset": "camvid", "split": "val", "num_images": 101}
    assert "On camvid val split (101 images):" in model_card(trained.config, 1, metrics=metrics)
    card = model_card(trained.config, 1, metrics={**metrics, "seen_in_training": True})
    assert "On camvid val split (101 images), which it was trained on: a check that it learned them" in card


def test_a_card_gives_the_interval_of_its_scores_and_what_it_covers(trained):
    from segnext.models.card import model_card

    interval = {"level": 0.95, "samples": 1000, "unit": "image", "units": 101, "mIoU": [63.18, 64.56],
                "aAcc": [89.6, 90.19], "mAcc": [None, None], "note": "the 101 images come from 1 group of alike frames"}
    card = model_card(trained.config, 1, metrics={"mIoU": 63.89, "aAcc": 89.89, "mAcc": 81.21, "interval": interval})
    assert "| metric | value | 95% interval |" in card and "| mIoU | 63.89 | 63.18 - 64.56 |" in card
    assert "| mAcc | 81.21 | n/a |" in card
    assert ("The interval: over 1,000 resamples of the 101 images scored (the percentile bootstrap), how far the "
            "score would move on another draw of such images; the 101 images come from 1 group of alike "
            "frames.") in card


def test_a_card_names_what_its_architecture_changes_from_the_variant(trained):
    """An ablated model (or one with other NMF steps) is not the published variant: its card says how."""
    from segnext.models.card import model_card

    assert "architecture" not in model_card(trained.config, 1)
    changed = dataclasses.replace(trained.config, strip_kernel_sizes=(7, 11), attention_gating=False,
                                  nmf_eval_steps=10, drop_path_rate=0.0)  # the dropout of training is not named
    assert ("Its architecture is not the published SegNeXt-T's: `strip_kernel_sizes` [7,11] (the variant's: "
            "[7,11,21]), `attention_gating` false (the variant's: true), `nmf_eval_steps` 10 (the variant's: 7).") \
        in model_card(changed, 1)


def test_every_reader_uses_the_saved_settings(folder, trained):
    model = segnext.create_model(checkpoint=folder)
    assert TestConfig.from_dict(model.config.test_settings) == SETTINGS
    assert segnext.Segmenter.from_checkpoint(folder, optimize=False).test_config == SETTINGS
    segmenter = segnext.Segmenter.from_checkpoint(folder, test_config=TestConfig(img_scale=None))
    assert segmenter.test_config.img_scale is None  # an explicit setting still wins


def test_export_stores_the_saved_settings(folder, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed: the ONNX metadata is untested")
    from segnext.cli.main import main

    assert main(["export", "-c", str(folder), "-o", str(tmp_path / "m.onnx"), "--shape", "64", "64"]) == 0
    segmenter = segnext.Segmenter.from_onnx(tmp_path / "m.onnx")
    assert segmenter.test_config == SETTINGS


def test_training_checkpoint_settings_reach_the_model(tmp_path, trained):
    evaluation = {**SETTINGS.to_dict(), "nmf_seed": 0, "max_images": None, "num_overlays": 4}
    torch.save({"format": "segnext-train", "format_version": 1, "iteration": 10,
                "model": trained.state_dict(), "config": {"evaluation": evaluation},
                "meta": {"CLASSES": trained.config.class_names, "PALETTE": trained.config.palette}},
               tmp_path / "iter_00000010.pt")
    model = segnext.create_model(checkpoint=tmp_path / "iter_00000010.pt")
    assert TestConfig.from_dict(model.config.test_settings) == SETTINGS
    assert segnext.Segmenter.from_checkpoint(tmp_path / "iter_00000010.pt", optimize=False).test_config == SETTINGS


def test_without_saved_settings_the_dataset_ones_apply(checkpoint_path):
    segmenter = segnext.Segmenter.from_checkpoint(checkpoint_path, optimize=False)
    assert segmenter.test_config.img_scale == (2048, 512) and segmenter.test_config.size_divisor == 32


# ------------------------------------------------------------------------------------------------- Hub


def test_from_pretrained_and_save_pretrained(folder, trained, tmp_path):
    model = SegNeXt.from_pretrained(folder)
    assert model.config == trained.config
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    model.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    fine_tuned = SegNeXt.from_pretrained(folder, num_classes=3, ignore_mismatched_sizes=True)
    assert fine_tuned.num_classes == 3


def _hub_cache(root: Path, repo_id: str, folder: Path) -> str:
    """The layout huggingface_hub gives its cache: blobs by hash, a snapshot per commit, refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / path.name)
    return commit


def _run_offline_with_hub_cache(folder: Path, tmp_path: Path, code: str) -> List[str]:
    """The lines `code` prints in a fresh Python with `folder` as someone/segnext-t-test in an offline
    Hub cache."""
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (pip install 'segnext[hub]')")
    _hub_cache(tmp_path / "hub", "someone/segnext-t-test", folder)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


def test_from_pretrained_reads_the_hub_cache_offline(folder, tmp_path):
    code = ("import segnext, json\n"
            "m = segnext.SegNeXt.from_pretrained('someone/segnext-t-test')\n"
            "s = segnext.Segmenter.from_checkpoint(segnext.models.hub.resolve_model_folder('someone/segnext-t-test'))\n"
            "print(json.dumps([m.config.variant, m.num_classes, m.config.test_settings['img_scale'],"
            " list(s.test_config.img_scale), m.decode_head.conv_seg.bias.sum().item()]))\n"
            "try:\n"
            "    segnext.SegNeXt.from_pretrained('someone/not-cached')\n"
            "except ValueError as error:\n"
            "    print(error)\n")
    first, second = _run_offline_with_hub_cache(folder, tmp_path, code)[:2]
    expected = segnext.create_model(checkpoint=folder).decode_head.conv_seg.bias.sum().item()
    assert json.loads(first) == ["segnext_t", 150, [96, 64], [96, 64], pytest.approx(expected)]
    assert "someone/not-cached" in second and "HF_HUB_OFFLINE" in second


def test_hf_paths_load_a_hub_model_in_every_command_offline(folder, tmp_path):
    """`hf://owner/name[@revision]` where a checkpoint path goes: create_model and the commands'
    --checkpoint (predict here); read from the Hub's cache offline."""
    from PIL import Image

    Image.new("RGB", (40, 30), (120, 80, 40)).save(tmp_path / "photo.png")
    code = ("import sys, segnext\n"
            "from segnext.cli.main import main\n"
            "m = segnext.create_model(checkpoint='hf://someone/segnext-t-test@main')\n"
            "print(m.config.variant, m.num_classes, m.decode_head.conv_seg.bias.sum().item())\n"
            f"status = main(['predict', '-c', 'hf://someone/segnext-t-test', {str(tmp_path / 'photo.png')!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--no-progress'])\n"
            "print('predict', status)\n"
            "for bad in ('hf://someone', 'hf://someone/x@'):\n"
            "    try:\n"
            "        segnext.create_model(checkpoint=bad)\n"
            "    except ValueError as error:\n"
            "        print(error)\n")
    loaded, predicted, *errors = _run_offline_with_hub_cache(folder, tmp_path, code)
    expected = segnext.create_model(checkpoint=folder).decode_head.conv_seg.bias.sum().item()
    variant, classes, bias = loaded.split()
    assert (variant, classes) == ("segnext_t", "150") and float(bias) == pytest.approx(expected)
    assert predicted == "predict 0" and (tmp_path / "out" / "photo.png").is_file()
    assert errors == ["'hf://someone' is not a Hugging Face Hub model: write hf://owner/name, or "
                      "hf://owner/name@revision (a branch, tag or commit)",
                      "'hf://someone/x@' is not a Hugging Face Hub model: write hf://owner/name, or "
                      "hf://owner/name@revision (a branch, tag or commit)"]


def test_push_command_uploads_a_model_folder_as_it_is_and_converts_other_checkpoints(folder, checkpoint_path,
                                                                                     monkeypatch, capsys):
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (pip install 'segnext[hub]')")
    from segnext.cli.main import main

    uploads = []

    class FakeApi:  # what would be sent; the real HfApi needs the network and an account
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            uploads.append(("create_repo", repo_id, private))

        def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
            files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.name in allow_patterns}
            uploads.append(("upload_folder", repo_id, commit_message, files))
            return "https://huggingface.co/someone/model/commit/abc"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    (folder / "notes.txt").write_text("not part of the model")  # left behind
    try:
        assert main(["push", str(folder), "someone/model", "--private"]) == 0
    finally:
        (folder / "notes.txt").unlink()
    assert "load it with --checkpoint hf://someone/model" in capsys.readouterr().err
    assert uploads[0] == ("create_repo", "someone/model", True)
    _, _, message, files = uploads[1]
    assert message == "Upload SegNeXt model" and files == {
        name: (folder / name).read_bytes() for name in ("README.md", "config.json", "model.safetensors")}
    uploads.clear()
    assert main(["push", str(checkpoint_path), "someone/official", "--message", "the official T"]) == 0
    _, _, message, files = uploads[1]
    assert uploads[0] == ("create_repo", "someone/official", None) and message == "the official T"
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(files["config.json"])["config"]["num_classes"] == 150
    assert main(["push", str(folder), "not-a-repo-id"]) == 1
    assert "'not-a-repo-id' is not a Hugging Face Hub repository id: write owner/name" in capsys.readouterr().err


def test_push_to_hub_uploads_the_model_folder(trained, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (pip install 'segnext[hub]')")
    calls = []

    class FakeApi:  # records what would be sent; the real HfApi needs the network and an account
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
            files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.name in allow_patterns}
            calls.append(("upload_folder", repo_id, commit_message, files))
            return "https://huggingface.co/someone/model/commit/abc"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    assert trained.push_to_hub("someone/model", token="t0k", private=True) == \
        "https://huggingface.co/someone/model/commit/abc"
    assert calls[:2] == [("token", "t0k"), ("create_repo", "someone/model", True, True)]
    _, repo, _, files = calls[2]
    assert repo == "someone/model" and sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(files["config.json"])["config"]["test_settings"]["img_scale"] == [96, 64]


@pytest.mark.parametrize("seed", [None, 5])
def test_the_nmf_seed_is_saved_and_loaded_back(tmp_path, seed):
    model = segnext.create_model("segnext_t", 4, nmf_seed=seed)
    folder = save_model(model, tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["nmf_seed"] == seed
    assert segnext.create_model(checkpoint=folder).nmf_seed == seed
    assert SegNeXt.from_pretrained(folder).nmf_seed == seed
    assert segnext.Segmenter.from_checkpoint(folder, optimize=False).model.nmf_seed == seed
    assert segnext.create_model(checkpoint=folder, nmf_seed=3).nmf_seed == 3  # asked for: wins
    assert segnext.create_model(checkpoint=folder, nmf_seed=None).nmf_seed is None


def test_training_checkpoints_give_their_run_nmf_seed_and_old_files_the_default(tmp_path):
    model = segnext.create_model("segnext_t", 4)
    torch.save({"format": "segnext-train", "format_version": 1, "iteration": 10, "model": model.state_dict(),
                "config": {"evaluation": {**SETTINGS.to_dict(), "nmf_seed": None}}}, tmp_path / "iter_10.pt")
    assert segnext.create_model(checkpoint=tmp_path / "iter_10.pt").nmf_seed is None
    folder = save_model(model, tmp_path / "old")
    meta = json.loads((folder / "config.json").read_text())
    del meta["nmf_seed"]  # written before the seed was recorded
    (folder / "config.json").write_text(json.dumps(meta))
    assert segnext.create_model(checkpoint=folder).nmf_seed == segnext.DEFAULT_NMF_SEED


def test_a_wrong_saved_nmf_seed_is_named(tmp_path):
    folder = save_model(segnext.create_model("segnext_t", 4), tmp_path / "model")
    meta = json.loads((folder / "config.json").read_text())
    meta["nmf_seed"] = "zero"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(segnext.CheckpointError, match=r"config.json: nmf_seed must be an integer or null"):
        segnext.create_model(checkpoint=folder)
    with pytest.raises(TypeError, match="nmf_seed must be an int, None or 'saved'"):
        segnext.create_model("segnext_t", 4, nmf_seed="7")


def test_a_missing_path_shaped_like_a_hub_id_says_how_to_name_the_hub_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="Checkpoint someone/model does not exist. For a model on the Hugging "
                                                "Face Hub, write hf://someone/model."):
        segnext.create_model(checkpoint="someone/model")
    with pytest.raises(FileNotFoundError, match="Checkpoint missing.pth does not exist. Give a model folder, a .pth "
                                                "or .safetensors file, hf://owner/name, or the name of published"):
        segnext.create_model(checkpoint="missing.pth")
    (tmp_path / "segnext_tiny_512x512_ade_160k.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="Checkpoint segnext_tiny_512_ade_160k.pth does not exist. Did you "
                                                "mean 'segnext_tiny_512x512_ade_160k.pth'\\?$"):
        segnext.create_model(checkpoint="segnext_tiny_512_ade_160k.pth")
