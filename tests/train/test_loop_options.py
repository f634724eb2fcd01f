"""Loop options in short in-process runs: mixed precision, time budget, starting over in a used work dir."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import tiny_config, write_config

from segnext.models import mscan
from segnext.train import load_config, train
from segnext.train import state as checkpointing


def test_bf16_autocast_on_cpu_trains(tmp_path, scenes):
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                         ["train.amp=true", "train.max_iters=2", "train.checkpoint_interval=2"])
    result = train(config, tmp_path / "amp", progress=False)
    assert result.stop_reason == "finished" and result.iteration == 2
    state = checkpointing.load(tmp_path / "amp" / "checkpoints" / "iter_00000002.pt")
    assert all(v.dtype != torch.bfloat16 for v in state["model"].values())  # weights stay fp32
    assert state["grad_scaler"] is None  # no scaler needed for bf16


def test_time_budget_stops_evaluates_and_reports(tmp_path, scenes, monkeypatch):
    import time

    import segnext.train.loop as loop

    def slow_loader(*args, **kwargs):  # a set-up longer than the budget (a busy machine) still trains a step
        time.sleep(0.05)
        return real_loader(*args, **kwargs)
    real_loader = loop.training_loader
    monkeypatch.setattr(loop, "training_loader", slow_loader)
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                         ["train.max_iters=1000", "train.max_time_minutes=0.0001", "schedule.by_time=true"])
    result = train(config, tmp_path / "timed", progress=False)
    assert result.stop_reason == "time limit" and result.iteration == 1
    assert result.results is not None and (tmp_path / "timed" / "results.json").is_file()
    assert checkpointing.latest_checkpoint(tmp_path / "timed" / "checkpoints").name == "iter_00000001.pt"
    with pytest.raises(ValueError, match="schedule.by_time needs train.max_time_minutes"):
        train(load_config(str(tmp_path / "c.yaml"), ["schedule.by_time=true"]), tmp_path / "x", progress=False)


def test_training_leaves_the_callers_random_state_alone(tmp_path, scenes):
    """Every random draw of a step is seeded from its position, inside fork_rng: train() changes no
    global RNG state (and needs none restored on resume)."""
    import random

    import numpy as np

    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    train(load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))), ["train.max_iters=2"]),
          tmp_path / "run", progress=False)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_no_resume_moves_the_old_run_aside(tmp_path, scenes):
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    config = load_config(str(path), ["train.max_iters=2"])
    train(config, tmp_path / "run", progress=False)
    result = train(load_config(str(path), ["train.max_iters=3"]), tmp_path / "run", resume=True, progress=False)
    assert result.iteration == 3  # resumed from 2, one more step
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["type"] == "train"] == [1, 2, 3]
    train(config, tmp_path / "run", resume=False, progress=False)
    archived = sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(("checkpoints_", "log_")))
    assert len(archived) == 2
    assert [p.name for p in checkpointing.iteration_checkpoints(tmp_path / "run" / "checkpoints")] == \
        ["iter_00000002.pt"]


def test_transposed_strip_gradients_train_like_pytorchs_own(tmp_path, scenes):
    """train.transposed_strip_grads (the CPU default) against PyTorch's own strip-convolution gradients:
    the same weights after a few steps, to float rounding."""
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    weights = {}
    for option in ("true", "false"):
        train(load_config(str(path), ["train.max_iters=3", "train.checkpoint_interval=3",
                                      f"train.transposed_strip_grads={option}"]), tmp_path / option, progress=False)
        weights[option] = checkpointing.load(tmp_path / option / "checkpoints" / "iter_00000003.pt")["model"]
    assert weights["true"].keys() == weights["false"].keys()
    worst = max((weights["true"][k].float() - weights["false"][k].float()).abs().max().item() for k in weights["true"])
    # Used (not bit-identical), and close: AdamW divides each gradient by its own scale, so a rounding
    # difference in a near-zero gradient can move a weight by a fraction of one step's lr (1e-3).
    assert 0 < worst < 1e-3


def test_grad_checkpointing_trains_bit_for_bit_like_keeping_the_activations(tmp_path, scenes, monkeypatch):
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes, model={"options": {"drop_path_rate": 0.2}}))
    recomputed = []
    recompute = mscan.recompute_in_backward
    monkeypatch.setattr(mscan, "recompute_in_backward", lambda block, x: recomputed.append(1) or recompute(block, x))
    weights, calls = {}, {}
    for option in ("true", "false"):
        recomputed.clear()
        train(load_config(str(path), ["train.max_iters=2", "train.checkpoint_interval=2",
                                      f"train.grad_checkpointing={option}"]), tmp_path / option, progress=False)
        weights[option] = checkpointing.load(tmp_path / option / "checkpoints" / "iter_00000002.pt")["model"]
        calls[option] = len(recomputed)
    assert calls == {"true": 2 * 13, "false": 0}  # 2 steps of SegNeXt-T's 13 blocks; none in evaluation
    assert weights["true"].keys() == weights["false"].keys()
    assert all(torch.equal(weights["true"][key], weights["false"][key]) for key in weights["true"])


def test_online_hard_example_mining_trains_and_checks_its_settings(tmp_path, scenes):
    from segnext.train.config import ConfigError

    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    result = train(load_config(str(path), ["train.max_iters=2", "loss.ohem_threshold=0.7", "loss.ohem_min_kept=500"]),
                   tmp_path / "ohem", progress=False)
    assert result.stop_reason == "finished" and math.isfinite(result.results["mIoU"])
    with pytest.raises(ConfigError, match="loss.ohem_threshold must be a probability in \\(0, 1\\] or null, got 1.5"):
        load_config(str(path), ["loss.ohem_threshold=1.5"])


def test_the_dice_term_trains_and_checks_its_weight(tmp_path, scenes, monkeypatch):
    from segnext.train import loop
    from segnext.train.config import ConfigError

    weights = []
    original = loop.segmentation_loss
    monkeypatch.setattr(loop, "segmentation_loss",
                        lambda *args, **options: weights.append(options["dice_weight"]) or original(*args, **options))
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    result = train(load_config(str(path), ["train.max_iters=2", "loss.dice_weight=1.0"]), tmp_path / "dice",
                   progress=False)
    assert result.stop_reason == "finished" and math.isfinite(result.results["mIoU"]) and set(weights) == {1.0}
    with pytest.raises(ConfigError, match="loss.dice_weight must be a number of 0 or more \\(0: off\\), got -1"):
        load_config(str(path), ["loss.dice_weight=-1"])
    with pytest.raises(ConfigError, match="loss.dice_weight must be a number, got True"):
        load_config(str(path), ["loss.dice_weight=true"])


@pytest.mark.parametrize("setting, expected", [(None, True), ("false", False), ("true", True)])
def test_the_loss_path_is_the_devices_unless_the_config_says(tmp_path, scenes, monkeypatch, setting, expected):
    """loss.banded: null takes the device table's choice (banded on the CPU); a value given wins."""
    import segnext.train.loop as loop

    seen = []
    real_loss = loop.segmentation_loss

    def recording_loss(*args, banded, **kwargs):
        seen.append(banded)
        return real_loss(*args, banded=banded, **kwargs)

    monkeypatch.setattr(loop, "segmentation_loss", recording_loss)
    overrides = ["train.max_iters=1"] + ([f"loss.banded={setting}"] if setting else [])
    train(load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))), overrides), tmp_path / "run",
          progress=False)
    assert seen == [expected]


def test_class_paste_trains_through_loader_workers(tmp_path, scenes):
    """data.copy_paste_classes reaches the loader's worker processes (ClassPaste travels to them)."""
    from segnext.train.sampler import training_loader

    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                         ["data.copy_paste_classes=[person, car]", "data.copy_paste_prob=1.0", "data.num_workers=1",
                          "train.max_iters=2"])
    assert train(config, tmp_path / "run", progress=False).iteration == 2
    dataset = config.data.build("train", config.data.train_transform(), seed=0)
    paste = config.data.class_paste(dataset.class_names)
    plain, pasted = (next(iter(training_loader(dataset, 0, 4, 4, num_workers=1, paste=p))) for p in (None, paste))
    changed = plain["label"] != pasted["label"]
    assert changed.any() and torch.isin(pasted["label"][changed], torch.tensor([5, 6])).all()


def test_validating_on_training_data_is_said_in_the_log_and_results(tmp_path, scenes, capsys):
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                         ["train.max_iters=1", "data.val_split=train"])
    train(config, tmp_path / "run", progress=False)
    note = json.loads((tmp_path / "run" / "results.json").read_text())["validation_note"]
    assert note.startswith("train is (part of) the training data (train)")
    assert capsys.readouterr().out.count(f"note: {note}") == 2  # before the first step and beside the scores


def test_a_warm_up_as_long_as_the_run_is_pointed_out(tmp_path, scenes, capsys):
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                         ["train.max_iters=1", "schedule.warmup_iters=500"])
    train(config, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert "note: the learning rate peaks at 0% of optimizer.lr: schedule.warmup_iters (500) is long for " \
           "train.max_iters (1)" in out and "schedule.warmup_iters=1, lets it reach it" in out


def test_float16_on_a_cpu_whose_pytorch_cannot_is_refused_before_the_work_dir(tmp_path, scenes, monkeypatch):
    """CPU autocast runs float16 from PyTorch 2.4; before, bfloat16 only: said before anything is written."""
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    config = load_config(str(path), ["train.amp=true", "train.amp_dtype=fp16", "train.device=cpu"])
    with pytest.raises(ValueError, match=r"train.amp_dtype=fp16: .*PyTorch 2.4 or newer.*train.amp_dtype=bf16"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_frozen_encoder_trains_the_decoder_alone_and_a_resume_may_unfreeze_it(tmp_path, scenes, capsys):
    """model.frozen_stages=4: fine-tuning a model on few images, its encoder stays as loaded (weights
    and BatchNorm statistics); the same run resumed with model.frozen_stages=0 trains it too."""
    import segnext

    start = segnext.save_model(segnext.create_model("segnext_t", num_classes=8), tmp_path / "start")
    initial = segnext.create_model(checkpoint=start).state_dict()
    path = str(write_config(tmp_path / "c.yaml", tiny_config(scenes, model={"checkpoint": str(start)})))
    train(load_config(path, ["train.max_iters=2", "model.frozen_stages=4"]), tmp_path / "run", progress=False)
    assert "model.frozen_stages 4: encoder stages 1-4 as loaded, the decoder alone trained" in capsys.readouterr().out
    frozen = checkpointing.load(tmp_path / "run" / "checkpoints" / "iter_00000002.pt")["model"]
    encoder = [key for key in frozen if key.startswith("backbone.")]
    assert all(torch.equal(frozen[key], initial[key]) for key in encoder)
    assert not torch.equal(frozen["decode_head.conv_seg.weight"], initial["decode_head.conv_seg.weight"])
    train(load_config(path, ["train.max_iters=4", "model.frozen_stages=0"]), tmp_path / "run", progress=False)
    assert "model.frozen_stages: 4 -> 0" in capsys.readouterr().out
    trained = checkpointing.load(tmp_path / "run" / "checkpoints" / "iter_00000004.pt")["model"]
    assert not torch.equal(trained["backbone.block1.0.mlp.fc1.weight"], initial["backbone.block1.0.mlp.fc1.weight"])
