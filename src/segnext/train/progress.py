"""What a user watches while a run goes: the progress bar and the numbers of each `train` log record,
or, without the bar (a log file, a batch job), one line per record."""

from __future__ import annotations

import math
import sys
import time
from typing import Dict, List, Optional


class LogWindow:
    """Loss, speed, data-loading time (and gradient norms, when clipped) since the last `train` record."""

    def __init__(self):
        self.loss, self.steps, self.data_seconds, self.start = 0.0, 0, 0.0, time.perf_counter()
        self.grad_norms: List[float] = []

    def add(self, loss: float, data_seconds: float, grad_norm: Optional[float] = None) -> None:
        self.loss, self.steps, self.data_seconds = self.loss + loss, self.steps + 1, self.data_seconds + data_seconds
        if grad_norm is not None and math.isfinite(grad_norm):  # an fp16 overflow's inf is a skipped step
            self.grad_norms.append(grad_norm)

    def summary(self) -> Dict[str, float]:
        steps = max(self.steps, 1)
        summary = {"loss": self.loss / steps, "it_per_s": self.steps / (time.perf_counter() - self.start),
                   "data_seconds_per_it": self.data_seconds / steps}
        if self.grad_norms:
            summary.update(grad_norm=sum(self.grad_norms) / len(self.grad_norms), grad_norm_max=max(self.grad_norms))
        return summary


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


def log_line(record: Dict[str, float], max_iters: int, time_budget_s: Optional[float] = None) -> str:
    """One `train` log record as a line of text, for a run without a progress bar: the iteration, loss,
    learning rate, speed and what is left (by the iterations or the time budget, whichever ends first)."""
    iteration, speed = int(record["iter"]), record["it_per_s"]
    left_s = (max_iters - iteration) / speed if speed > 0 else math.inf
    if time_budget_s is not None:
        left_s = min(left_s, max(0.0, time_budget_s - record["elapsed_s"]))
    parts = [f"[iter {iteration}/{max_iters}]", f"loss {record['loss']:.4f}", f"lr {record['lr']:.2e}"]
    if "grad_norm" in record:
        parts.append(f"grad norm {record['grad_norm']:.3g} (max {record['grad_norm_max']:.3g})")
    parts += [f"{speed:.2f} it/s", f"data {record['data_seconds_per_it']:.3f} s/it",
              f"elapsed {_duration(record['elapsed_s'])}", f"left {_duration(left_s)}"]
    return "  ".join(parts)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
