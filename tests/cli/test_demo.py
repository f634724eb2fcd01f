"""`segnext demo` end to end, in its reduced form (--quick)."""

from __future__ import annotations

import json

import torch

import segnext
from segnext.cli.main import main


def test_demo_quick_writes_metrics_report_and_model(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["demo", "--quick", "--work-dir", str(tmp_path / "demo"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    work_dir = tmp_path / "demo"
    results = json.loads((work_dir / "results.json").read_text())
    assert set(results) >= {"aAcc", "mIoU", "mAcc", "per_class", "majority_class_mIoU"}
    assert [row["class"] for row in results["per_class"]][:3] == ["sky", "building", "road"]
    assert "segnext demo done" in out and f"{results['mIoU']:.1f}" in out
    records = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    assert any(r["type"] == "eval" for r in records) and any(r["type"] == "train" for r in records)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        assert (work_dir / "report.png").stat().st_size > 10000
    model = segnext.create_model(checkpoint=work_dir / "final_model")
    assert model.num_classes == 8
