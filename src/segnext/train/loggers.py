"""Where the numbers of a run go: WORK_DIR/log.jsonl always, and the experiment trackers that
`train.loggers` names (TensorBoard, MLflow, Weights & Biases), all fed the same records.

    train:
      loggers: [tensorboard, mlflow]      # default (null): TensorBoard when it is installed; [] for none
      logger_options:                     # keyword arguments of each tracker, below
        mlflow: {tracking_uri: http://mlflow.example:5000, experiment: segnext}
        wandb: {project: segnext, mode: offline}

- log.jsonl: one JSON object per line, `{"type": "train", "iter", "loss", "lr", ...}` every
  `train.log_interval` iterations and `{"type": "eval", "iter", "mIoU", "aAcc", "mAcc", "IoU": [...]}`
  after every evaluation. It is what `segnext report` redraws the report from.
- A tracker is one small class per backend (`Tracker`): `log(kind, iteration, numbers)` for every
  record (as `train/loss`, `eval/mIoU`, ... at step = iteration), `add_files(paths)` for the report
  and results at the end, `close(status)`. Only the process that writes files (rank 0) opens them.
  A tracker that fails (a tracking server gone) is named and dropped; training goes on, since
  log.jsonl holds every record.

A resumed run continues the same tracker run (its id is kept in WORK_DIR/trackers.json). The
iterations logged after the last checkpoint are trained again; TensorBoard drops their first
values, MLflow and W&B cannot delete points and show both.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..utils import DISK_FULL_ERRNOS, MissingDependency, atomic_write, did_you_mean, disk_full_error, json_safe, require

TRACKER_IDS = "trackers.json"  # the tracker run ids of a work dir, so that a resumed run continues them


class TrackerError(ValueError):
    """A tracker could not start; the message names the setting to change."""


class Tracker:
    """What RunLog feeds. A backend subclasses this; its __init__ takes (work_dir, resume_iteration,
    config) and then its own options, keyword-only, which `train.logger_options.<name>` sets."""

    name = ""

    def log(self, kind: str, iteration: int, numbers: Dict[str, float]) -> None:
        raise NotImplementedError

    def add_files(self, paths: Sequence[Path]) -> None:
        """Files to keep with the tracker's run (report, results); by default none."""

    def close(self, status: str) -> None:
        """status: "finished", "stopped" (by a signal, to be resumed) or "failed"."""


class TensorBoardTracker(Tracker):
    """WORK_DIR/tensorboard/: `tensorboard --logdir WORK_DIR/tensorboard`."""

    name = "tensorboard"

    def __init__(self, work_dir: Path, resume_iteration: int, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: the resumed run's values replace those the interrupted one logged after its checkpoint
        self.writer = SummaryWriter(str(Path(work_dir) / "tensorboard"),
                                    purge_step=resume_iteration + 1 if resume_iteration else None)

    def log(self, kind: str, iteration: int, numbers: Dict[str, float]) -> None:
        for key, value in numbers.items():
            self.writer.add_scalar(f"{kind}/{key}", value, iteration)
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """An MLflow run: the config as parameters, the numbers as metrics (step = iteration), the report
    and results as artifacts.

    tracking_uri: where the runs go (default: $MLFLOW_TRACKING_URI, else MLflow's own default);
        e.g. http://mlflow.example:5000, sqlite:///mlflow.db (needs the full `mlflow` package).
    experiment: the experiment's name (default: $MLFLOW_EXPERIMENT_NAME, else "segnext").
    run_name: default the work dir's name. tags: a mapping of run tags.
    """

    name = "mlflow"

    def __init__(self, work_dir: Path, resume_iteration: int, config: dict, *, tracking_uri: Optional[str] = None,
                 experiment: Optional[str] = None, run_name: Optional[str] = None,
                 tags: Optional[Dict[str, str]] = None):
        mlflow = require("mlflow", "mlflow", "train.loggers: mlflow", package="mlflow-skinny")
        from mlflow.tracking import MlflowClient

        uri = tracking_uri or mlflow.get_tracking_uri()
        experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "segnext"
        work_dir = Path(work_dir)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id = remembered_run_id(work_dir, self.name) if resume_iteration else None
            if self.run_id is not None:
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                run = self.client.create_run(experiment_id, run_name=run_name or work_dir.name,
                                             tags={str(k): str(v) for k, v in (tags or {}).items()})
                self.run_id = run.info.run_id
                self._log_parameters(config)
        except Exception as error:  # MLflow's errors vary by store; name the setting to change
            raise TrackerError(
                f"train.loggers: mlflow could not start a run at tracking URI {uri!r} ({_first_line(error)}). Set "
                f"train.logger_options.mlflow.tracking_uri (or MLFLOW_TRACKING_URI) to your tracking server, or to a "
                f"local store (sqlite:///mlflow.db with `pip install mlflow`).") from None
        remember_run_id(work_dir, self.name, self.run_id)

    def _log_parameters(self, config: dict) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)[:500]) for key, value in flatten(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log(self, kind: str, iteration: int, numbers: Dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(f"{kind}/{key}", float(value), now, iteration)
                                                    for key, value in numbers.items()])

    def add_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status={"finished": "FINISHED", "stopped": "KILLED"}.get(status,
                                                                                                       "FAILED"))


class WandbTracker(Tracker):
    """A Weights & Biases run in WORK_DIR/wandb/: the config, the numbers against `iteration`, the
    report and results as run files.

    project: default "segnext". entity, group, tags: as `wandb.init` takes them.
    name: the run's name (default the work dir's name).
    mode: "online", "offline" (nothing leaves the machine; `wandb sync WORK_DIR/wandb/offline-run-*`
        uploads later) or "disabled"; default: $WANDB_MODE, else online.
    """

    name = "wandb"

    def __init__(self, work_dir: Path, resume_iteration: int, config: dict, *, project: str = "segnext",
                 entity: Optional[str] = None, name: Optional[str] = None, mode: Optional[str] = None,
                 group: Optional[str] = None, tags: Optional[List[str]] = None):
        wandb = require("wandb", "wandb", "train.loggers: wandb")
        work_dir = Path(work_dir)
        run_id = remembered_run_id(work_dir, self.name) if resume_iteration else None
        try:
            # console="off": W&B would otherwise wrap this process's stdout and stderr to copy the console.
            self.run = wandb.init(project=project, entity=entity, name=name or work_dir.name, mode=mode, group=group,
                                  tags=tags, dir=str(work_dir), config=config, id=run_id,
                                  resume="allow" if run_id else None, settings=wandb.Settings(console="off"))
        except Exception as error:  # not logged in, no network, a bad entity...: name the setting to change
            raise TrackerError(
                f"train.loggers: wandb could not start a run ({_first_line(error)}). Log in with `wandb login`, or set "
                f"train.logger_options.wandb.mode=offline to keep the run on this machine (upload it later with "
                f"`wandb sync`).") from None
        self.kinds: set = set()
        self.run.define_metric("iteration")
        remember_run_id(work_dir, self.name, self.run.id)

    def log(self, kind: str, iteration: int, numbers: Dict[str, float]) -> None:
        if kind not in self.kinds:  # plot this kind's numbers against the iteration, not W&B's own step count
            self.run.define_metric(f"{kind}/*", step_metric="iteration")
            self.kinds.add(kind)
        self.run.log({**{f"{kind}/{key}": value for key, value in numbers.items()}, "iteration": iteration})

    def add_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.run.save(str(path), base_path=str(Path(path).parent), policy="now")

    def close(self, status: str) -> None:
        self.run.finish(exit_code=1 if status == "failed" else 0)


TRACKERS = {tracker.name: tracker for tracker in (TensorBoardTracker, MLflowTracker, WandbTracker)}
# What each needs installed: (module, pip extra of segnext, pip package)
REQUIREMENTS = {"tensorboard": ("torch.utils.tensorboard", "tensorboard", "tensorboard"),
                "mlflow": ("mlflow", "mlflow", "mlflow-skinny"), "wandb": ("wandb", "wandb", "wandb")}


def setting_problem(names: Optional[Sequence[str]], options: Dict[str, Dict[str, Any]]) -> Optional[Tuple[str, str]]:
    """(key, what is wrong) for an unknown tracker or option in train.loggers / train.logger_options,
    else None. Checks names only: nothing is imported."""
    for index, name in enumerate(names or []):
        if name not in TRACKERS:
            return f"loggers[{index}]", (f"is {name!r}, not a tracker segnext logs to.{did_you_mean(name, TRACKERS)} "
                                         f"Available: {', '.join(TRACKERS)}.")
    for name, values in options.items():
        if name not in TRACKERS:
            return f"logger_options.{name}", (f"names no tracker.{did_you_mean(name, TRACKERS)} "
                                              f"Available: {', '.join(TRACKERS)}.")
        if not isinstance(values, dict):
            return f"logger_options.{name}", f"must be a mapping of {name}'s options, got {values!r}."
        valid = tracker_options(name)
        for key in values:
            if key not in valid:
                return f"logger_options.{name}.{key}", (f"is not an option of {name}.{did_you_mean(key, valid)} "
                                                        f"Valid: {', '.join(valid) or 'none'}.")
    return None


def tracker_options(name: str) -> List[str]:
    """The keyword-only parameters of a tracker: what train.logger_options.<name> may set."""
    parameters = inspect.signature(TRACKERS[name].__init__).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def chosen_trackers(names: Optional[Sequence[str]]) -> List[str]:
    """The trackers to open: `names`, or (None) TensorBoard when it is installed."""
    if names is not None:
        return list(dict.fromkeys(names))
    try:
        require(REQUIREMENTS["tensorboard"][0], "tensorboard", "TensorBoard logging")
        return ["tensorboard"]
    except MissingDependency:
        return []


def require_trackers(names: Optional[Sequence[str]]) -> None:
    """Before any work: every tracker named in train.loggers is installed (else the pip command)."""
    for name in chosen_trackers(names):
        module, extra, package = REQUIREMENTS[name]
        require(module, extra, f"train.loggers: {name}", package=package)


def open_trackers(names: Optional[Sequence[str]], options: Dict[str, Dict[str, Any]], work_dir: Path,
                  resume_iteration: int, config: dict) -> List[Tracker]:
    """The trackers of a run, started (a failing one closes those already open)."""
    opened: List[Tracker] = []
    try:
        for name in chosen_trackers(names):
            opened.append(TRACKERS[name](Path(work_dir), resume_iteration, config, **options.get(name, {})))
    except BaseException:
        for tracker in opened:
            tracker.close("failed")
        raise
    return opened


def open_run_log(work_dir: Path, resume_iteration: int, config) -> RunLog:
    """The log of a run with the trackers its config (a `segnext.train.Config`) names, started."""
    train = config.train
    trackers = open_trackers(train.loggers, train.logger_options, work_dir, resume_iteration, config.to_dict())
    return RunLog(work_dir, resume_iteration, trackers)


class RunLog:
    """Appends records to log.jsonl and hands their numbers to the trackers."""

    def __init__(self, work_dir: Path, resume_iteration: int = 0, trackers: Iterable[Tracker] = ()):
        """resume_iteration > 0: records of later iterations (logged by the interrupted session after its
        last checkpoint, and about to be redone) are removed from log.jsonl."""
        self.path = Path(work_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [r for r in read_log(self.path) if r.get("iter", 0) <= resume_iteration] if resume_iteration else []
            text = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write(self.path, lambda temporary: temporary.write_text(text))  # a kill here loses nothing
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (open for the run; line-buffered)
        self.trackers = list(trackers)

    def write(self, record: Dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        line = json.dumps(json_safe(record)) + "\n"
        try:
            self._file.write(line)
        except OSError as error:
            if error.errno in DISK_FULL_ERRNOS:
                raise disk_full_error(self.path, len(line)) from error
            raise
        if "iter" in record:
            numbers = {key: value for key, value in record.items() if key not in ("iter", "time")
                       and isinstance(value, (int, float)) and not isinstance(value, bool)}
            self._each_tracker("log", lambda tracker: tracker.log(record.get("type", "log"), record["iter"], numbers))

    def add_files(self, paths: Sequence[Path]) -> None:
        files = [Path(p) for p in paths if p is not None and Path(p).is_file()]
        self._each_tracker("keep the files", lambda tracker: tracker.add_files(files))

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self, status: str = "finished") -> None:
        if self.closed:
            return
        self._file.close()
        self._each_tracker("close", lambda tracker: tracker.close(status))

    def _each_tracker(self, action: str, call: Callable[[Tracker], None]) -> None:
        """`call` on every tracker. One that fails is named and dropped rather than ending a long run
        (or hiding the error that ends it): log.jsonl keeps every record."""
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as error:
                self.trackers.remove(tracker)
                print(f"warning: train.loggers: {tracker.name} could not {action} ({_first_line(error)}); it is left "
                      f"out for the rest of this session. log.jsonl keeps every record (`segnext report` redraws the "
                      f"curves from it).", file=sys.stderr)


def read_log(path: Path) -> List[Dict[str, Any]]:
    """Records of log.jsonl; a torn last line (the process was killed mid-write) is skipped."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# --- tracker run ids, kept so that a resumed run continues the same tracker run ------------------------

def remembered_run_id(work_dir: Path, tracker: str) -> Optional[str]:
    path = Path(work_dir) / TRACKER_IDS
    try:
        return json.loads(path.read_text()).get(tracker)
    except (OSError, ValueError, AttributeError):
        return None


def remember_run_id(work_dir: Path, tracker: str, run_id: str) -> None:
    path = Path(work_dir) / TRACKER_IDS
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError):
        ids = {}
    ids = {**(ids if isinstance(ids, dict) else {}), tracker: run_id}
    text = json.dumps(ids, indent=2) + "\n"
    atomic_write(path, lambda temporary: temporary.write_text(text))


def flatten(config: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"train": {"max_iters": 5}} -> {"train.max_iters": 5}."""
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0].rstrip('.')}" if text else type(error).__name__
