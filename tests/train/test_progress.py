"""What a user watches during a run: the progress bar follows whichever bound ends the run."""

from __future__ import annotations

import pytest

from segnext.train.progress import ProgressBar


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
