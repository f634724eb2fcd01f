"""`segnext report RUN_DIR`: redraws from a run folder's files, and says which folder to give when
it is handed something else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnext.cli.main import main

pytestmark = pytest.mark.charts  # the report's charts are drawn (tests/conftest.py)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """What a run leaves before its end: config.yaml and log.jsonl (and a final_model folder beside)."""
    run = tmp_path / "run"
    (run / "final_model").mkdir(parents=True)
    (run / "final_model" / "config.json").write_text("{}")
    (run / "config.yaml").write_text("model: {name: segnext_t}\ndata: {dataset: camvid}\ntrain: {max_iters: 100}\n")
    records = [{"type": "train", "iter": i, "loss": 2.0 / i, "lr": 1e-3} for i in (10, 20, 30)]
    records.append({"type": "eval", "iter": 20, "final": False, "mIoU": 12.5, "num_images": 5, "IoU": [12.5] * 11})
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_report_of_a_run_folder(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Report written to {run_dir / 'report.html'}" in out
    page = (run_dir / "report.html").read_text()
    assert "Not finished: last logged iteration 30/100" in page and "Sky" in page  # CamVid's class names


@pytest.mark.parametrize("given,expected", [
    ("nowhere", "does not exist; give the folder of a training run"),
    ("run/final_model", "is the run's final model inside the training run"),
    ("run/log.jsonl", "is a file inside the training run"),
    (".", "is not the folder of a training run: it holds no log.jsonl or results.json"),
])
def test_report_says_which_folder_to_give(run_dir, capsys, given, expected):
    assert main(["report", str(run_dir.parent / given)]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    if "inside" in expected:
        assert f"segnext report {run_dir}" in err
