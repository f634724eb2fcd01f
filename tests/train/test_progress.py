"""What a user watches during a run: the progress bar follows whichever bound ends the run; without
it, a line per log record."""

from __future__ import annotations

import pytest

from segnext.train.progress import ProgressBar, log_line


def test_progress_bar_counts_iterations_without_a_time_budget():
    bar = ProgressBar(max_iters=100, iteration=10)
    bar.update(40, elapsed_s=5.0, loss="0.5")
    assert bar.bar.total == 100 and bar.bar.n == 40
    bar.close()


def test_progress_bar_follows_the_clock_when_the_time_budget_ends_the_run_first():
    bar = ProgressBar(max_iters=100000, iteration=0, time_budget_s=3600.0)
    bar.update(3054, elapsed_s=58.6 * 60)  # 3% of the iterations, 98% of the hour
    assert bar.bar.n == pytest.approx(100 * 58.6 / 60)
    assert "3054/100000" in str(bar.bar.postfix) and "58.6/60 min" in str(bar.bar.postfix)
    bar.update(100000, elapsed_s=60.0)  # and the iterations when they end it first
    assert bar.bar.n == pytest.approx(100.0)
    bar.close()


def test_log_line_without_a_bar_tells_the_loss_speed_and_time_left():
    record = {"iter": 50, "lr": 5.9e-05, "loss": 0.93531, "it_per_s": 2.5, "data_seconds_per_it": 0.0128,
              "elapsed_s": 20.0}
    line = log_line(record, max_iters=8000)
    assert line.startswith("[iter 50/8000]  loss 0.9353  lr 5.90e-05")
    assert "2.50 it/s" in line and "data 0.013 s/it" in line and "elapsed 0:00:20" in line
    assert line.endswith("left 0:53:00")  # 7950 iterations at 2.5 per second
    assert log_line(record, max_iters=8000, time_budget_s=600.0).endswith("left 0:09:40")  # the clock ends it first
    clipped = log_line({**record, "grad_norm": 1.234, "grad_norm_max": 3.0}, max_iters=8000)
    assert "grad norm 1.23 (max 3)" in clipped
