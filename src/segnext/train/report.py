"""What a user watches: the JSON-lines log, TensorBoard scalars and the final PNG report.

- WORK_DIR/log.jsonl: one JSON object per line, `{"type": "train", "iter", "loss", "lr", ...}` every
  `train.log_interval` iterations and `{"type": "eval", "iter", "mIoU", "aAcc", "mAcc", "IoU": [...]}`
  after every evaluation (appended to when a run resumes).
- WORK_DIR/tensorboard/: the same scalars, when the `tensorboard` package is installed
  (`pip install segnext[tensorboard]`; then `tensorboard --logdir WORK_DIR/tensorboard`).
- WORK_DIR/report.png: loss and mIoU curves and prediction overlays next to the ground truth, when
  matplotlib is installed (`pip install segnext[plot]`); otherwise a message says how to get it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..data.palette import default_palette, overlay
from ..utils import json_safe


class RunLog:
    """Appends records to log.jsonl and mirrors their numbers to TensorBoard (if installed)."""

    def __init__(self, work_dir: Path, resume_iteration: int = 0, use_tensorboard: bool = True):
        """resume_iteration > 0: records of later iterations (logged by the interrupted session after its
        last checkpoint, and about to be redone) are removed from log.jsonl and TensorBoard."""
        self.path = Path(work_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [r for r in read_log(self.path) if r.get("iter", 0) <= resume_iteration] if resume_iteration else []
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (open for the run; line-buffered)
        self.tensorboard = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(Path(work_dir) / "tensorboard"),
                                                 purge_step=resume_iteration + 1 if resume_iteration else None)
            except ImportError:  # tensorboard is an optional extra
                self.tensorboard = None

    def write(self, record: Dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        self._file.write(json.dumps(json_safe(record)) + "\n")
        if self.tensorboard is not None and "iter" in record:
            kind = record.get("type", "log")
            for key, value in record.items():
                if key not in ("iter", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tensorboard.add_scalar(f"{kind}/{key}", value, record["iter"])
            self.tensorboard.flush()

    def close(self) -> None:
        self._file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


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


def write_report(work_dir: Path, predictions: List[tuple], palette: Optional[Sequence[Sequence[int]]],
                 class_names: Optional[Sequence[str]] = None, ignore_index: int = 255,
                 title: str = "") -> Optional[Path]:
    """WORK_DIR/report.png from log.jsonl and (image, label, prediction) triples; None without matplotlib."""
    try:
        from matplotlib.figure import Figure  # drawn without pyplot: no GUI backend, no global state
        from matplotlib.patches import Patch
    except ImportError:
        print("report: matplotlib is not installed, so no report.png (pip install 'segnext[plot]'); "
              "the numbers are in log.jsonl and results.json.")
        return None
    work_dir = Path(work_dir)
    records = read_log(work_dir / "log.jsonl")
    train = [r for r in records if r.get("type") == "train" and r.get("loss") is not None]
    evals = [r for r in records if r.get("type") == "eval" and r.get("mIoU") is not None]
    rows = 1 + len(predictions)
    figure = Figure(figsize=(12, 3.2 * rows))
    grid = figure.add_gridspec(rows, 3)
    axis = figure.add_subplot(grid[0, :2] if evals else grid[0, :])
    if train:
        axis.plot([r["iter"] for r in train], [r["loss"] for r in train], color="tab:blue")
    axis.set_xlabel("iteration")
    axis.set_ylabel("training loss")
    axis.set_title("loss")
    axis.grid(alpha=0.3)
    if evals:
        axis = figure.add_subplot(grid[0, 2])
        axis.plot([r["iter"] for r in evals], [r["mIoU"] for r in evals], "o-", color="tab:green")
        axis.set_xlabel("iteration")
        axis.set_ylabel("val mIoU (%)")
        axis.set_title(f"mIoU (last {evals[-1]['mIoU']:.1f})")
        axis.grid(alpha=0.3)
    palette = palette or default_palette(int(max((p[2].max() for p in predictions), default=0)) + 1)
    for row, (image, label, prediction) in enumerate(predictions, start=1):
        panels = ((image, "image"), (overlay(image, label, palette, 0.55, ignore_index), "ground truth"),
                  (overlay(image, prediction, palette, 0.55, ignore_index), "prediction"))
        for col, (picture, name) in enumerate(panels):
            axis = figure.add_subplot(grid[row, col])
            axis.imshow(picture)
            axis.set_title(name)
            axis.axis("off")
    if class_names and predictions:
        handles = [Patch(color=np.asarray(palette[i]) / 255, label=n) for i, n in enumerate(class_names[:len(palette)])]
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=13)
    figure.tight_layout(rect=(0, 0.03 if class_names and predictions else 0, 1, 0.97 if title else 1))
    path = work_dir / "report.png"
    figure.savefig(path, dpi=80)
    return path


class LogWindow:
    """Loss, speed and data-loading time since the last `train` record."""

    def __init__(self):
        self.loss, self.steps, self.data_seconds, self.start = 0.0, 0, 0.0, time.perf_counter()

    def add(self, loss: float, data_seconds: float) -> None:
        self.loss, self.steps, self.data_seconds = self.loss + loss, self.steps + 1, self.data_seconds + data_seconds

    def summary(self) -> Dict[str, float]:
        steps = max(self.steps, 1)
        return {"loss": self.loss / steps, "it_per_s": self.steps / (time.perf_counter() - self.start),
                "data_seconds_per_it": self.data_seconds / steps}


class ProgressBar:
    """The training progress bar, against whichever bound ends the run: iterations, or the time
    budget (train.max_time_minutes) when that comes first, so that the bar and its ETA are right
    for a run that the clock will stop."""

    def __init__(self, max_iters: int, iteration: int, time_budget_s: Optional[float] = None, elapsed_s: float = 0.0):
        from tqdm import tqdm

        self.max_iters, self.time_budget_s = max_iters, time_budget_s
        if time_budget_s is None:
            self.bar = tqdm(total=max_iters, initial=iteration, desc="train", unit="it", dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.05)
        else:  # percent of the run, the further of the two bounds
            self.bar = tqdm(total=100.0, initial=self._percent(iteration, elapsed_s), desc="train", unit="%",
                            dynamic_ncols=True, file=sys.stderr, smoothing=0.05,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")

    def _percent(self, iteration: int, elapsed_s: float) -> float:
        return min(100.0, 100.0 * max(iteration / self.max_iters, elapsed_s / self.time_budget_s))

    def update(self, iteration: int, elapsed_s: float, **postfix) -> None:
        if self.time_budget_s is None:
            self.bar.update(iteration - self.bar.n)
        else:
            postfix = {"it": f"{iteration}/{self.max_iters}",
                       "time": f"{elapsed_s / 60:.1f}/{self.time_budget_s / 60:.0f} min", **postfix}
            self.bar.update(self._percent(iteration, elapsed_s) - self.bar.n)
        self.bar.set_postfix(postfix, refresh=False)

    def write(self, message: str) -> None:
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
