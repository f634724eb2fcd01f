"""Experiment trackers: RunLog feeds each the same records; names and options are checked with the
config, packages before any work; MLflow against its local file store and W&B in offline mode (no
server, no network), also across a resume."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import time
from pathlib import Path

import pytest
from train_helpers import tiny_config, write_config

from segnext.train import ConfigError, load_config, train
from segnext.train.loggers import RunLog, Tracker, chosen_trackers, flatten, read_log
from segnext.utils import MissingDependency


class Recorder(Tracker):
    def __init__(self):
        self.calls = []

    def log(self, kind, iteration, numbers):
        self.calls.append((kind, iteration, numbers))

    def add_files(self, paths):
        self.calls.append(("files", [p.name for p in paths]))

    def close(self, status):
        self.calls.append(("closed", status))


def test_runlog_hands_every_records_numbers_to_the_trackers(tmp_path):
    recorder = Recorder()
    log = RunLog(tmp_path, trackers=[recorder])
    log.write({"type": "train", "iter": 5, "loss": 0.5, "lr": 1e-4})
    log.write({"type": "eval", "iter": 5, "final": True, "mIoU": 40.0, "IoU": [40.0, None], "num_images": 8})
    (tmp_path / "results.json").write_text("{}")
    log.add_files([tmp_path / "results.json", tmp_path / "missing.png", None])
    log.close("stopped")
    log.close("stopped")  # a second close does nothing
    assert recorder.calls == [("train", 5, {"loss": 0.5, "lr": 1e-4}),
                              ("eval", 5, {"mIoU": 40.0, "num_images": 8}),  # no lists, no flags
                              ("files", ["results.json"]), ("closed", "stopped")]
    assert [r["type"] for r in read_log(tmp_path / "log.jsonl")] == ["train", "eval"]


@pytest.mark.parametrize("override,expected", [
    ("train.loggers=[tensorboard, mlfow]", "train.loggers[1] is 'mlfow', not a tracker segnext logs to. Did you "
                                           "mean 'mlflow'?"),
    ("train.logger_options={wandb: {projct: x}}", "train.logger_options.wandb.projct is not an option of wandb. "
                                                  "Did you mean 'project'?"),
    ("train.logger_options={mlflw: {}}", "train.logger_options.mlflw names no tracker. Did you mean 'mlflow'?"),
])
def test_tracker_names_and_options_are_checked_with_the_config(override, expected):
    with pytest.raises(ConfigError, match="override") as error:
        load_config("segnext_t_ade20k_512x512_160k", [override])
    assert expected in str(error.value)


def test_a_tracker_that_is_not_installed_is_named_before_any_work(tmp_path, scenes, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))), ["train.loggers=[mlflow]"])
    with pytest.raises(MissingDependency, match=r"train.loggers: mlflow needs the mlflow-skinny package: "
                                                r"pip install 'segnext\[mlflow\]'"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_by_default_tensorboard_only_when_installed_and_an_empty_list_means_none(monkeypatch):
    assert chosen_trackers([]) == []
    assert chosen_trackers(["mlflow", "mlflow"]) == ["mlflow"]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert chosen_trackers(None) == []


def test_config_is_flattened_to_dotted_parameters():
    assert flatten({"train": {"max_iters": 5, "loggers": None}, "model": {"options": {}}}) == \
        {"train.max_iters": 5, "train.loggers": None, "model.options": {}}


def _tiny(tmp_path, scenes, *overrides):
    return load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))),
                       ["train.max_iters=2", "train.checkpoint_interval=2", *overrides])


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, scenes):
    """One short run logged to each tracker that is installed: MLflow's local file store, W&B offline."""
    installed = [name for name in ("mlflow", "wandb") if importlib.util.find_spec(name) is not None]
    if not installed:
        pytest.skip("neither mlflow nor wandb is installed (pip install 'segnext[mlflow,wandb]')")
    folder = tmp_path_factory.mktemp("tracked")
    store = f"file://{folder / 'mlruns'}"
    options = {"mlflow": {"tracking_uri": store, "experiment": "tests"}, "wandb": {"mode": "offline",
                                                                                   "project": "tests"}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
        patch.setenv("WANDB_SILENT", "true")
        config = _tiny(folder, scenes, f"train.loggers={installed}",
                       f"train.logger_options={json.dumps({name: options[name] for name in installed})}")
        train(config, folder / "run", progress=False)
    return {"run": folder / "run", "store": store, "trackers": installed,
            "losses": [(r["iter"], round(r["loss"], 6)) for r in read_log(folder / "run" / "log.jsonl")
                       if r["type"] == "train"]}


def test_mlflow_local_file_store(tracked_run):
    if "mlflow" not in tracked_run["trackers"]:
        pytest.skip("mlflow is not installed (pip install 'segnext[mlflow]')")
    from mlflow.tracking import MlflowClient

    run_id = json.loads((tracked_run["run"] / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=tracked_run["store"])
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    assert run.data.params["train.max_iters"] == "2" and run.data.params["model.name"] == "segnext_t"
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted((m.step, round(m.value, 6)) for m in history) == tracked_run["losses"]
    assert [m.step for m in client.get_metric_history(run_id, "eval/mIoU")] == [2]
    assert {a.path for a in client.list_artifacts(run_id)} >= {"results.json", "report.html"}


@pytest.mark.parametrize("error", [RuntimeError("out of memory"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_run_that_breaks_off_closes_its_log_and_tells_the_trackers_it_failed(tmp_path, scenes, monkeypatch, error):
    """Without this an MLflow run of a crashed training stays RUNNING and log.jsonl stays open."""
    import segnext.train.loop as loop

    recorder, opened = Recorder(), []
    monkeypatch.setattr(loop, "open_run_log", lambda work_dir, iteration, config: opened.append(
        RunLog(work_dir, iteration, [recorder])) or opened[-1])

    def breaks_off():
        raise error

    with pytest.raises(type(error)):
        train(_tiny(tmp_path, scenes), tmp_path / "run", progress=False, should_stop=breaks_off)
    assert recorder.calls[-1] == ("closed", "failed") and opened[0].closed


class Unreachable(Recorder):
    """A tracker whose server goes away: `fails` names the calls that raise."""
    name = "mlflow"

    def __init__(self, fails):
        super().__init__()
        self.fails = fails

    def log(self, kind, iteration, numbers):
        if "log" in self.fails:
            raise ConnectionError("API request to http://mlflow.example:5000 failed with exception: max retries")
        super().log(kind, iteration, numbers)

    def close(self, status):
        if "close" in self.fails:
            raise ConnectionError("API request to http://mlflow.example:5000 failed")
        super().close(status)


def test_a_tracker_that_fails_is_dropped_and_training_goes_on(tmp_path, scenes, monkeypatch, capsys):
    """A tracking server gone for good must not end (or, when a run fails, hide why it failed)."""
    import segnext.train.loop as loop

    down, well = Unreachable({"log"}), Recorder()
    monkeypatch.setattr(loop, "open_run_log", lambda work_dir, iteration, config: RunLog(work_dir, iteration,
                                                                                         [down, well]))
    result = train(_tiny(tmp_path, scenes), tmp_path / "run", progress=False)
    assert result.iteration == 2 and down.calls == []  # dropped at its first failure, never called again
    assert well.calls[-1] == ("closed", "finished") and [c[:2] for c in well.calls if c[0] == "train"] == \
        [("train", 1), ("train", 2)]
    err = capsys.readouterr().err
    assert err.count("warning: train.loggers: mlflow could not log (ConnectionError: API request to "
                     "http://mlflow.example:5000 failed") == 1 and "log.jsonl keeps every record" in err
    assert [r["iter"] for r in read_log(tmp_path / "run" / "log.jsonl") if r["type"] == "train"] == [1, 2]

    closing = Unreachable({"close"})
    monkeypatch.setattr(loop, "open_run_log", lambda work_dir, iteration, config: RunLog(work_dir, iteration,
                                                                                         [closing]))

    def out_of_memory():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):  # not the tracker's ConnectionError
        train(_tiny(tmp_path, scenes), tmp_path / "again", progress=False, should_stop=out_of_memory)
    assert "mlflow could not close" in capsys.readouterr().err


def test_mlflow_that_cannot_reach_its_store_names_the_setting(tmp_path, scenes):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'segnext[mlflow]')")
    config = _tiny(tmp_path, scenes, "train.loggers=[mlflow]",
                   "train.logger_options={mlflow: {tracking_uri: 'nosuchscheme://x'}}")
    with pytest.raises(ValueError, match="train.loggers: mlflow could not start a run at tracking URI "
                                         "'nosuchscheme://x'.*train.logger_options.mlflow.tracking_uri"):
        train(config, tmp_path / "run", progress=False)


def test_mlflow_resumed_run_continues_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'segnext[mlflow]')")
    from mlflow.tracking import MlflowClient

    from segnext.train.loggers import MLflowTracker

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = f"file://{tmp_path / 'mlruns'}"
    first = MLflowTracker(tmp_path, 0, {"train": {"max_iters": 3}}, tracking_uri=store)
    first.log("train", 1, {"loss": 1.0})
    first.close("stopped")
    client = MlflowClient(tracking_uri=store)
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = MLflowTracker(tmp_path, 1, {"train": {"max_iters": 3}}, tracking_uri=store)
    again.log("train", 2, {"loss": 0.5})
    again.close("finished")
    assert again.run_id == first.run_id
    assert [m.step for m in client.get_metric_history(first.run_id, "train/loss")] == [1, 2]
    assert client.get_run(first.run_id).info.status == "FINISHED"
    fresh = MLflowTracker(tmp_path, 0, {}, tracking_uri=store)  # a run started over: a new MLflow run
    fresh.close("failed")
    assert fresh.run_id != first.run_id and client.get_run(fresh.run_id).info.status == "FAILED"


def wandb_records(run_dir: Path, wait_s: float = 30.0) -> list:
    """The records of the offline W&B run files in `run_dir`. W&B's service may still be writing a
    file when `finish()` returns: wait until each ends with its "exit" record."""
    deadline = time.monotonic() + wait_s
    while True:
        files = [wandb_file_records(path) for path in sorted(run_dir.glob("*.wandb"))]
        if all(records and records[-1].WhichOneof("record_type") == "exit" for records in files) \
                or time.monotonic() > deadline:
            return [record for records in files for record in records]
        time.sleep(0.2)


def wandb_file_records(path: Path) -> list:
    """The records of one W&B run file (LevelDB-style log blocks of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    records, pending, position, block = [], b"", 7, 32768  # 7: the file header
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # the zero padding at the end of a block
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(run_dir: Path) -> list:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in wandb_records(run_dir) if r.WhichOneof("record_type") == "history"]


def test_wandb_offline(tracked_run):
    if "wandb" not in tracked_run["trackers"]:
        pytest.skip("wandb is not installed (pip install 'segnext[wandb]')")
    run_id = json.loads((tracked_run["run"] / "trackers.json").read_text())["wandb"]
    (run_dir,) = (tracked_run["run"] / "wandb").glob(f"offline-run-*-{run_id}")
    history = wandb_history(run_dir)
    assert [(h["iteration"], round(h["train/loss"], 6)) for h in history if "train/loss" in h] == \
        tracked_run["losses"]
    assert [h["iteration"] for h in history if "eval/mIoU" in h] == [2]
    assert {"results.json", "report.html"} <= {p.name for p in (run_dir / "files").iterdir()}
    run_record = next(r for r in wandb_records(run_dir) if r.WhichOneof("record_type") == "run")
    assert any(item.key == "train" for item in run_record.run.config.update)  # the run's config


def test_wandb_resumed_run_continues_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'segnext[wandb]')")
    from segnext.train.loggers import WandbTracker

    monkeypatch.setenv("WANDB_SILENT", "true")
    first = WandbTracker(tmp_path, 0, {"train": {"max_iters": 3}}, mode="offline", project="tests")
    first.log("train", 1, {"loss": 1.0})
    first.close("stopped")
    time.sleep(1.1)  # W&B names a session's folder by the second it starts in; real resumes are seconds apart
    again = WandbTracker(tmp_path, 1, {"train": {"max_iters": 3}}, mode="offline", project="tests")
    again.log("train", 2, {"loss": 0.5})
    again.close("finished")
    assert again.run.id == first.run.id == json.loads((tmp_path / "trackers.json").read_text())["wandb"]
    runs = sorted((tmp_path / "wandb").glob(f"offline-run-*-{first.run.id}"))
    assert [h["iteration"] for run in runs for h in wandb_history(run) if "train/loss" in h] == [1, 2]
    fresh = WandbTracker(tmp_path, 0, {}, mode="offline", project="tests")  # a run started over: a new id
    fresh.close("finished")
    assert fresh.run.id != first.run.id
