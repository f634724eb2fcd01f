"""The shims for older PyTorch releases, each path run here whatever release is installed (the
whole suite also passes on PyTorch 2.1: BENCHMARKS.md says how it was run)."""

from __future__ import annotations

import types

import pytest
import torch

from segnext import compat


def test_torch_version_reads_release_strings(monkeypatch):
    assert compat.torch_version() >= compat.MIN_TORCH
    for text, expected in (("2.1.2+cu121", (2, 1)), ("2.13.0+cpu", (2, 13)), ("2.6.0a0+git1234", (2, 6))):
        monkeypatch.setattr(torch, "__version__", text)
        assert compat.torch_version() == expected


def test_the_older_releases_choices(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    assert not compat.cpu_float16_autocast() and not compat.fused_adamw("cpu") and compat.fused_adamw("cuda")
    monkeypatch.setattr(torch, "__version__", "2.4.0")
    assert compat.cpu_float16_autocast() and compat.fused_adamw("cpu")


@pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.GradScaler.*deprecated:FutureWarning")
def test_without_torch_amp_grad_scaler(monkeypatch):
    monkeypatch.delattr(torch.amp, "GradScaler", raising=False)
    scaler = compat.grad_scaler("cpu", enabled=False)
    assert not scaler.is_enabled()
    with pytest.raises(ValueError, match="float16 training on cpu needs PyTorch 2.4.*train.amp_dtype=bf16"):
        compat.grad_scaler("cpu", enabled=True)


@pytest.mark.filterwarnings("ignore:.*is_autocast_cpu_enabled.*deprecated:DeprecationWarning")
def test_autocast_state_with_and_without_the_device_argument(monkeypatch):
    assert not compat.is_autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compat.is_autocast_enabled("cpu")

        def no_argument(*args):  # PyTorch before 2.4
            if args:
                raise TypeError("is_autocast_enabled() takes no arguments (1 given)")
            return False

        monkeypatch.setattr(torch, "is_autocast_enabled", no_argument)
        assert compat.is_autocast_enabled("cpu") and not compat.is_autocast_enabled("cuda")


def test_is_compiling_outside_and_without_torch_compiler(monkeypatch):
    assert compat.is_compiling() is False
    monkeypatch.setattr(torch, "compiler", types.SimpleNamespace())  # before PyTorch 2.3
    monkeypatch.setattr(torch, "_dynamo", types.SimpleNamespace(is_compiling=lambda: True))
    assert compat.is_compiling() is True  # torch._dynamo's answer


def test_store_has_key_with_and_without_check():
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    store = torch.distributed.HashStore()
    store.set("present", "1")

    class OlderStore:  # PyTorch before 2.2: no Store.check
        def __init__(self, store):
            self.store = store

        def wait(self, keys, timeout):
            self.store.wait(keys, timeout)

    for candidate in (store, OlderStore(store)):
        assert compat.store_has_key(candidate, "present") and not compat.store_has_key(candidate, "absent")


def test_onnx_export_options_follow_the_signature(monkeypatch):
    def newer(model, args, f, dynamo=False):
        pass

    def older(model, args, f):
        pass

    monkeypatch.setattr(torch.onnx, "export", newer)
    assert compat.onnx_export_options() == {"dynamo": False}
    monkeypatch.setattr(torch.onnx, "export", older)
    assert compat.onnx_export_options() == {}


def test_a_numpy_pytorch_cannot_use_is_named_before_any_work(monkeypatch, capsys, tmp_path):
    import numpy

    from segnext.cli.main import main

    assert compat.numpy_problem() is None

    def unavailable(*args, **kwargs):  # what PyTorch 2.1 says beside NumPy 2
        raise RuntimeError("Numpy is not available")

    monkeypatch.setattr(torch, "from_numpy", unavailable)
    problem = compat.numpy_problem()
    assert torch.__version__ in problem and numpy.__version__ in problem and "pip install 'numpy<2'" in problem
    assert main(["predict", "-c", "camvid", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert capsys.readouterr().err == f"segnext predict: error: {problem}\n"
    assert not (tmp_path / "out").exists()
