"""`segnext benchmark`: the device chosen like every command's, and GPU work timed to its end."""

from __future__ import annotations

import json

import pytest
import torch

from segnext.cli.benchmark import synchronizer, time_alternately
from segnext.cli.main import main


def test_each_timed_call_is_synchronised_before_and_after():
    """An asynchronous call returns before its work is done: the clock must stop only after the
    device has finished, and start only after earlier work has."""
    events = []
    functions = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    seconds = time_alternately(functions, runs=2, warmup=1, synchronize=lambda: events.append("sync"))
    assert events == ["a", "b"] + ["sync", "a", "sync", "sync", "b", "sync"] * 2
    assert [len(values) for values in seconds.values()] == [2, 2]
    synchronizer(torch.device("cpu"))()  # nothing to wait for on the CPU


def test_benchmark_on_the_cpu_records_the_device(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("segnext.flops.count_macs", lambda *args: (10**9, None))  # seconds to count, not tested here
    output = tmp_path / "bench.json"
    assert main(["benchmark", "--device", "cpu", "--shape", "32", "32", "--runs", "1", "--warmup", "0",
                 "--backends", "eager", "--amp", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "--amp has no effect on the CPU" in out and "eager" in out
    result = json.loads(output.read_text())
    assert result["device"] == "cpu" and result["autocast"] is None
    assert [row["backend"] for row in result["results"]] == ["eager"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a PyTorch without CUDA")
def test_unavailable_device_is_refused_before_any_work(capsys):
    assert main(["benchmark", "--device", "cuda", "--shape", "32", "32"]) == 1
    err = capsys.readouterr().err
    assert "device 'cuda'" in err and "available here: cpu" in err
