"""`segnext benchmark`: the device chosen like every command's, and GPU work timed to its end."""

from __future__ import annotations

import json

import pytest
import torch

from segnext.cli.benchmark import synchronizer, time_alternately, time_in_groups
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


def test_runtimes_with_their_own_threads_are_timed_in_blocks_there_and_back():
    """Groups (one per runtime) run in blocks, in order and then reversed, half the runs each, each
    block after its own warm-up; inside a group the functions alternate call by call."""
    calls = []
    groups = [{"eager": lambda: calls.append("eager"), "optimized": lambda: calls.append("optimized")},
              {"onnxruntime": lambda: calls.append("onnxruntime")}]
    seconds = time_in_groups(groups, runs=3, warmup=1, pause=0)
    torch_round, ort_round = ["eager", "optimized"], ["onnxruntime"]
    assert calls == torch_round * 3 + ort_round * 3 + ort_round * 2 + torch_round * 2
    assert list(seconds) == ["eager", "optimized", "onnxruntime"]
    assert [len(values) for values in seconds.values()] == [3, 3, 3]


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
    weights = tmp_path / "model.safetensors"  # -o naming another file: refused before the runs, the file kept
    weights.write_bytes(b"weights")
    assert main(["benchmark", "--device", "cpu", "--shape", "32", "32", "-o", str(weights)]) == 1
    assert "not a .json file; writing there would replace it" in capsys.readouterr().err
    assert weights.read_bytes() == b"weights"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a PyTorch without CUDA")
def test_unavailable_device_is_refused_before_any_work(capsys):
    assert main(["benchmark", "--device", "cuda", "--shape", "32", "32"]) == 1
    err = capsys.readouterr().err
    assert "device 'cuda'" in err and "available here: cpu" in err
