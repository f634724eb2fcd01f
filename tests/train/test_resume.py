"""Interrupted runs: SIGKILL at any point or SIGTERM, then resume, ends with the weights of an
uninterrupted run; a NaN loss stops the run naming the iteration and keeping the last checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import REPO_ROOT, SUBPROCESS_ENV, tiny_config, write_config

from segnext.cli.main import main
from segnext.train import state as checkpointing

MAX_ITERS = 12


def start_training(config_path: Path, work_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "segnext.cli.main", "train", str(config_path), "--work-dir",
                             str(work_dir), "--no-progress"], env=SUBPROCESS_ENV, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"training ended before {path.name} appeared:\n{process.stdout.read()}")
        assert time.time() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)


def final_state(work_dir: Path) -> dict:
    return checkpointing.load(work_dir / "checkpoints" / checkpointing.checkpoint_name(MAX_ITERS))


def test_killed_and_terminated_runs_resume_to_the_weights_of_an_uninterrupted_run(tmp_path, scenes):
    # Drop path, dropout and the random NMF bases stay on: resuming must reproduce those draws too.
    # One DataLoader worker: prefetched-but-unused batches must not shift the resumed stream.
    raw = tiny_config(scenes, train={"max_iters": MAX_ITERS, "checkpoint_interval": 2},
                      data={"num_workers": 1})
    config = write_config(tmp_path / "tiny.yaml", raw)

    # The uninterrupted reference runs in this process (one thread, as the subprocesses): no start-up to pay.
    assert main(["train", str(config), "--work-dir", str(tmp_path / "straight"), "--no-progress"]) == 0

    work_dir = tmp_path / "interrupted"
    # 1. SIGKILL as soon as the iteration-4 checkpoint exists (mid-step or mid-save of the next one).
    process = start_training(config, work_dir)
    wait_for(work_dir / "checkpoints" / checkpointing.checkpoint_name(4), process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)  # also closes its output pipe
    assert process.returncode == -signal.SIGKILL
    assert not (work_dir / "checkpoints" / checkpointing.checkpoint_name(MAX_ITERS)).exists(), \
        "the run finished before it was killed; the test needs a slower run"
    killed_at = checkpointing.latest_checkpoint(work_dir / "checkpoints")
    # 2. Resume automatically, then SIGTERM: a checkpoint is written before exiting.
    process = start_training(config, work_dir)
    first_new = checkpointing.checkpoint_name(checkpointing.load(killed_at)["iteration"] + 2)
    wait_for(work_dir / "checkpoints" / first_new, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output
    assert f"Resumed from {killed_at}" in output and "Stopped by SIGTERM" in output
    stopped_at = checkpointing.latest_checkpoint(work_dir / "checkpoints")
    assert checkpointing.load(stopped_at)["iteration"] < MAX_ITERS
    # 3. Resume again and finish.
    assert main(["train", str(config), "--work-dir", str(work_dir), "--no-progress"]) == 0

    reference, resumed = final_state(tmp_path / "straight"), final_state(work_dir)
    worst = max((reference["model"][k].float() - resumed["model"][k].float()).abs().max().item()
                for k in reference["model"])
    assert worst <= 1e-6, f"weights differ by up to {worst}"
    for key in ("exp_avg", "exp_avg_sq"):
        for index, state in reference["optimizer"]["state"].items():
            torch.testing.assert_close(resumed["optimizer"]["state"][index][key], state[key], atol=1e-6, rtol=1e-5)
    # The same logged losses after the interruptions as without them.
    # The log of the interrupted run reads like the straight one: work redone after a resume replaces
    # what the interrupted session had logged past its last checkpoint.
    def losses(directory):
        records = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
        return [(r["iter"], r["loss"]) for r in records if r["type"] == "train"]
    straight_losses, resumed_losses = losses(tmp_path / "straight"), losses(work_dir)
    assert [i for i, _ in resumed_losses] == [i for i, _ in straight_losses] == list(range(1, MAX_ITERS + 1))
    assert [loss for _, loss in resumed_losses] == pytest.approx([loss for _, loss in straight_losses], abs=1e-5)
    assert json.loads((work_dir / "results.json").read_text())["mIoU"] == pytest.approx(
        json.loads((tmp_path / "straight" / "results.json").read_text())["mIoU"], abs=1e-6)


def test_nan_loss_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path, scenes, monkeypatch):
    import segnext.train.loop as loop
    from segnext.train import TrainingDiverged, load_config, train

    calls = {"n": 0}
    real_loss = loop.segmentation_loss

    def loss_that_explodes_at_step_5(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(loop, "segmentation_loss", loss_that_explodes_at_step_5)
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))))
    with pytest.raises(TrainingDiverged) as error:
        train(config, tmp_path / "run", progress=False)
    message = str(error.value)
    assert "iteration 5" in message and "iter_00000004.pt" in message
    checkpoints = checkpointing.iteration_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in checkpoints] == ["iter_00000002.pt", "iter_00000004.pt"]
    weights = checkpointing.load(checkpoints[-1])["model"].values()
    assert torch.isfinite(torch.stack([v.float().sum() for v in weights])).all()
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert '"type": "diverged", "iter": 5' in log


def test_a_stop_request_during_an_evaluation_ends_it_and_the_run_resumes(tmp_path, scenes, capsys):
    """Ctrl-C or SIGTERM while the model is evaluated ends the evaluation at the next image, not
    after the last (on a cluster, the grace period before SIGKILL is shorter than an evaluation): a
    periodic one is dropped and the run stops at its checkpoint, and the resumed run does it first;
    after a final one, the training is complete and the next run evaluates it."""
    from segnext.train import load_config, train

    def stop_after(calls: int):  # as StopRequests.requested: None until the signal, then its name
        asked = []

        def should_stop():
            asked.append(1)
            return "SIGTERM" if len(asked) > calls else None
        return should_stop, asked

    path = str(write_config(tmp_path / "c.yaml", tiny_config(scenes)))
    # Periodic: asked after steps 1 and 2, then after the first of the 8 val images of iteration 2's evaluation.
    should_stop, asked = stop_after(2)
    result = train(load_config(path, ["train.eval_interval=2"]), tmp_path / "periodic", progress=False,
                   should_stop=should_stop)
    assert (result.stop_reason, result.iteration, result.exit_code, len(asked)) == ("SIGTERM", 2, 143, 3)
    assert "Stopped by SIGTERM at iteration 2" in capsys.readouterr().out
    assert checkpointing.load(tmp_path / "periodic" / "checkpoints" / checkpointing.checkpoint_name(2))[
        "evaluation_due"]
    # The resumed run first does the evaluation that was dropped, then trains on.
    resumed = train(load_config(path, ["train.eval_interval=2"]), tmp_path / "periodic", progress=False)
    assert "The evaluation of iteration 2 was stopped before its end: evaluating now." in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "periodic" / "log.jsonl").read_text().splitlines()]
    assert resumed.iteration == 6 and [r["iter"] for r in records if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["iter"] for r in records if r["type"] == "eval"] == [2, 4, 6]
    assert not checkpointing.load(tmp_path / "periodic" / "checkpoints" / checkpointing.checkpoint_name(4))[
        "evaluation_due"]
    # Final: asked after the 6 steps, then after the first val image.
    should_stop, asked = stop_after(6)
    result = train(load_config(path), tmp_path / "final", progress=False, should_stop=should_stop)
    assert (result.stop_reason, result.iteration, result.exit_code, len(asked)) == ("SIGTERM", 6, 143, 7)
    assert "Stopped by SIGTERM during the final evaluation; the training is complete" in capsys.readouterr().out
    assert not (tmp_path / "final" / "results.json").exists()
    assert checkpointing.latest_checkpoint(tmp_path / "final" / "checkpoints").name == checkpointing.checkpoint_name(6)
    evaluated = train(load_config(path), tmp_path / "final", progress=False)
    assert evaluated.stop_reason == "finished" and "Resumed from" in capsys.readouterr().out
    assert json.loads((tmp_path / "final" / "results.json").read_text())["num_images"] == 8
    # A time budget spent: the run that evaluates trains no step more.
    budget = ["train.max_time_minutes=0.0001"]
    should_stop, asked = stop_after(1)
    result = train(load_config(path, budget), tmp_path / "timed", progress=False, should_stop=should_stop)
    assert (result.stop_reason, result.iteration) == ("SIGTERM", 1)
    evaluated = train(load_config(path, budget), tmp_path / "timed", progress=False)
    assert (evaluated.stop_reason, evaluated.iteration) == ("time limit", 1)
    assert (tmp_path / "timed" / "results.json").exists()


def test_a_resume_with_other_settings_names_each_change(tmp_path, scenes, capsys):
    """Extending a finished run (a longer train.max_iters) is allowed; a config changed by mistake in
    the same work dir would be too, so the log names every setting that differs from the checkpoint's."""
    from segnext.train import load_config, train

    path = str(write_config(tmp_path / "c.yaml", tiny_config(scenes)))
    train(load_config(path, ["train.max_iters=2"]), tmp_path / "run", progress=False)
    capsys.readouterr()
    result = train(load_config(path, ["train.max_iters=4", "optimizer.lr=5e-4"]), tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert result.iteration == 4 and "Resumed from" in out
    assert "settings changed since that checkpoint: optimizer.lr: 0.001 -> 0.0005; train.max_iters: 2 -> 4" in out
    assert checkpointing.changed_settings({"a": {"b": 1}}, {"a": {"b": 1, "c": [2]}}) == ["a.c: '(unset)' -> [2]"]


def test_another_run_in_the_same_work_dir_is_refused_before_anything_is_touched(tmp_path, scenes):
    """A config for other classes or another model given the work dir of an earlier run: it stopped with
    PyTorch's size-mismatch traceback, after replacing the run's config.yaml with its own."""
    import shutil

    from segnext.train import load_config, train

    path = str(write_config(tmp_path / "c.yaml", tiny_config(scenes)))
    train(load_config(path, ["train.max_iters=2"]), tmp_path / "run", progress=False)
    config_yaml = (tmp_path / "run" / "config.yaml").read_text()
    more_classes = shutil.copytree(scenes, tmp_path / "nine")
    classes = json.loads((more_classes / "classes.json").read_text())
    classes.update(classes=classes["classes"] + ["extra"], palette=classes["palette"] + [[1, 2, 3]], num_classes=9)
    (more_classes / "classes.json").write_text(json.dumps(classes))
    for overrides, message in ((["model.name=segnext_s"], "it trained segnext_t but this run trains segnext_s"),
                               ([f"data.root={more_classes}"], "it trained 8 classes but this run has 9"),
                               (["model.options={ham_channels: 128}"], "its model differs from this config's in")):
        with pytest.raises(checkpointing.TrainingCheckpointError, match=message):
            train(load_config(path, ["train.max_iters=4", *overrides]), tmp_path / "run", progress=False)
        assert (tmp_path / "run" / "config.yaml").read_text() == config_yaml
