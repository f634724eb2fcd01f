"""Fine-tuning: a model trained on the demo scenes (8 classes) continues on CamVid's 11 classes
from its encoder and decoder, with a new classifier; the log says what was loaded; a run whose
checkpoint does not fit refuses to start; model.pretrained takes the published encoder."""

from __future__ import annotations

import shutil

import pytest
import torch
from train_helpers import tiny_config, write_config

import segnext
from segnext import CheckpointError
from segnext.models.pretrained import PRETRAINED
from segnext.train import load_config, train


@pytest.fixture(scope="module")
def scenes_model(demo_run):
    """final_model of `segnext demo --quick`: trained on the demo scenes (8 classes)."""
    return demo_run / "final_model"


@pytest.fixture(scope="module")
def camvid(shared_dir, tmp_path_factory):
    """A few CamVid pairs (links to the shared copy) in its own layout: its 11 classes, a short evaluation."""
    root = shared_dir / "datasets" / "camvid"
    if not (root / "classes.json").is_file():
        pytest.skip(f"shared CamVid {root} not found; set SEGNEXT_SHARED to the folder that holds datasets/camvid")
    subset = tmp_path_factory.mktemp("camvid")
    (subset / "classes.json").symlink_to(root / "classes.json")
    for split, count in (("train", 8), ("val", 4)):
        for image in sorted((root / "images" / split).glob("*.jpg"))[:count]:
            for kind, path in (("images", image), ("labels", root / "labels" / split / f"{image.stem}.png")):
                (subset / kind / split).mkdir(parents=True, exist_ok=True)
                (subset / kind / split / path.name).symlink_to(path)
    return subset


def _encoder(state):
    return torch.cat([v.flatten() for k, v in state.items() if k.startswith("backbone.") and v.is_floating_point()])


def test_fine_tune_scenes_model_on_camvid(tmp_path, scenes_model, camvid, capsys):
    raw = tiny_config(camvid, model={"name": "segnext_t", "checkpoint": str(scenes_model), "num_classes": 11},
                      train={"max_iters": 3, "batch_size": 2, "micro_batch_size": 2, "log_interval": 1,
                             "checkpoint_interval": 3, "eval_interval": 0, "threads": 1},
                      evaluation={"img_scale": [120, 90], "num_overlays": 0})
    raw["data"].update(dataset="camvid", img_scale=[120, 90])
    result = train(load_config(str(write_config(tmp_path / "ft.yaml", raw))), tmp_path / "ft", progress=False)
    assert result.stop_reason == "finished" and result.iteration == 3
    out = capsys.readouterr().out
    source = segnext.create_model(checkpoint=scenes_model)
    total = len(source.state_dict())
    assert (f"model.checkpoint {scenes_model}: loaded {total - 2} of the model's {total} tensors; re-initialised for "
            f"11 classes (the checkpoint has 8): decode_head.conv_seg.weight, decode_head.conv_seg.bias") in out

    tuned = segnext.create_model(checkpoint=tmp_path / "ft" / "final_model")
    assert tuned.num_classes == 11 and tuned.config.class_names[:2] == ["Sky", "Building"]
    before, after = source.state_dict(), tuned.state_dict()
    # The encoder came from the checkpoint: its BatchNorms counted the scenes' batches, then 3 more ...
    key = "backbone.patch_embed1.proj.1.num_batches_tracked"
    assert after[key] == before[key] + 3 and before[key] > 0
    # ... and 3 small steps moved its weights little, compared with how far a fresh encoder lies.
    fresh = _encoder(segnext.create_model("segnext_t", 11).state_dict())
    moved = (_encoder(after) - _encoder(before)).norm() / _encoder(before).norm()
    assert moved < 0.1 < (fresh - _encoder(before)).norm() / _encoder(before).norm()
    assert "starting from model.checkpoint" in (tmp_path / "ft" / "final_model" / "README.md").read_text()


def test_a_checkpoint_that_does_not_fit_refuses_to_start(tmp_path, scenes, scenes_model):
    raw = tiny_config(scenes, model={"name": "segnext_s", "checkpoint": str(scenes_model)})
    with pytest.raises(CheckpointError, match="holds segnext_t, not segnext_s"):
        train(load_config(str(write_config(tmp_path / "c.yaml", raw))), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_pretrained_imagenet_encoder_by_name(tmp_path, scenes, backbone_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9")  # cached below: nothing is downloaded
    cached = tmp_path / "home" / "checkpoints" / PRETRAINED["segnext_t.imagenet"].file_name
    cached.parent.mkdir(parents=True)
    shutil.copy(backbone_path, cached)
    raw = tiny_config(scenes, model={"name": "segnext_t", "pretrained": "imagenet"}, train={"max_iters": 1})
    train(load_config(str(write_config(tmp_path / "c.yaml", raw))), tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert (f"model.pretrained segnext_t.imagenet ({cached}): loaded 537 of the model's 550 tensors; new, from "
            f"random initialisation: the decoder (13 tensors, decode_head.*)") in out
    with pytest.raises(ValueError, match=r"model.pretrained is 'imagenet1k'.*Did you mean 'imagenet'"):
        load_config(str(tmp_path / "c.yaml"), ["model.pretrained=imagenet1k"])


def test_the_folder_recipe_fine_tunes_the_published_ade20k_model(tmp_path, scenes, checkpoint_path, monkeypatch,
                                                                 capsys):
    """`segnext train folder/segnext_t_folder_512x512_8k data.root=...`: your classes (8 here, from
    classes.json) on the ADE20K model (the official-format file in the cache), only its classifier new."""
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9")  # cached below: nothing is downloaded
    cached = tmp_path / "home" / "checkpoints" / PRETRAINED["segnext_t.ade20k"].file_name
    cached.parent.mkdir(parents=True)
    shutil.copy(checkpoint_path, cached)
    config = load_config("folder/segnext_t_folder_512x512_8k", [
        f"data.root={scenes}", "data.crop_size=[64,64]", "data.img_scale=[80,64]", "data.num_workers=0",
        "train.max_iters=1", "train.batch_size=2", "train.checkpoint_interval=1", "evaluation.img_scale=[80,64]",
        "evaluation.num_overlays=0"])
    assert config.data.dataset == "folder" and config.model.pretrained == "ade20k"
    train(config, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert (f"model.pretrained segnext_t.ade20k ({cached}): loaded 548 of the model's 550 tensors; re-initialised "
            f"for 8 classes (the checkpoint has 150): decode_head.conv_seg.weight, decode_head.conv_seg.bias") in out
    tuned = segnext.create_model(checkpoint=tmp_path / "run" / "final_model")
    published = segnext.create_model(checkpoint=checkpoint_path)
    assert tuned.num_classes == 8
    weights = [name for name, _ in published.backbone.named_parameters()]  # not the BatchNorm statistics
    before, after = (torch.cat([model.backbone.get_parameter(name).flatten() for name in weights])
                     for model in (published, tuned))
    assert (after - before).norm() < 1e-3 * before.norm()  # one warm-up step from the published encoder


def test_fine_tuning_starts_from_the_camvid_model_in_the_package(tmp_path, scenes, monkeypatch, capsys):
    """model.pretrained=camvid on a CPU: the model that ships in the package, read offline, all but its
    classifier loaded for the folder's 8 classes."""
    shipped = [weights for weights in PRETRAINED.values() if weights.bundled and weights.tag == "camvid"]
    if not shipped:
        pytest.skip("no CamVid model ships in segnext/weights")
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))  # an empty cache
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9")  # and no network
    config = load_config("folder/segnext_t_folder_512x512_8k", [
        f"data.root={scenes}", "model.pretrained=camvid", "data.crop_size=[64,64]", "data.img_scale=[80,64]",
        "data.num_workers=0", "train.max_iters=1", "train.batch_size=2", "evaluation.img_scale=[80,64]",
        "evaluation.num_overlays=0"])
    train(config, tmp_path / "run", progress=False)
    assert ("model.pretrained segnext_t.camvid (" in (out := capsys.readouterr().out)
            and "loaded 548 of the model's 550 tensors; re-initialised for 8 classes (the checkpoint has 11)" in out)
    tuned = segnext.create_model(checkpoint=tmp_path / "run" / "final_model")
    published = segnext.create_model("segnext_t", pretrained="camvid")
    before, after = (_encoder({k: v for k, v in model.state_dict().items() if "running_" not in k
                               and "num_batches" not in k}) for model in (published, tuned))
    assert tuned.num_classes == 8 and (after - before).norm() < 1e-3 * before.norm()


def test_some_of_camvids_classes_fine_tuned_from_the_camvid_model(tmp_path, camvid, monkeypatch, capsys):
    """data.classes=[Road, Car, Pedestrian] from the CamVid model: its classifier rows of those classes
    are copied, so the run starts where that model is (scored after a step at learning rate 0); the
    shipped config's class settings follow the selection."""
    if not any(weights.bundled and weights.tag == "camvid" for weights in PRETRAINED.values()):
        pytest.skip("no CamVid model ships in segnext/weights")
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9")
    config = load_config("camvid/segnext_t_camvid_cpu_60min", [
        f"data.root={camvid}", "data.classes=[road, car, Pedestrian]", "model.pretrained=camvid", "optimizer.lr=0",
        "data.crop_size=[64,64]", "data.num_workers=0", "train.max_iters=1", "train.batch_size=2",
        "train.micro_batch_size=2", "evaluation.num_overlays=0", "train.threads=1"])
    results = train(config, tmp_path / "run", progress=False).results
    out = capsys.readouterr().out
    assert "except the rows of the 3 classes the checkpoint has too, copied from it: Road, Car, Pedestrian" in out
    assert "note: model.num_classes 11 -> 3" in out and "note: loss.class_weight: the weights" in out
    assert segnext.create_model(checkpoint=tmp_path / "run" / "final_model").config.class_names == \
        ["Road", "Car", "Pedestrian"]
    assert results["IoU"][0] > 90 and results["IoU"][1] > 50  # road, car: as the CamVid model segments them
