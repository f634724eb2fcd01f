"""One optimizer step: gradient clipping, with and without fp16's loss scaler."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from train_helpers import tiny_config, write_config

from segnext.compat import grad_scaler
from segnext.train import load_config, train
from segnext.train.config import ConfigError
from segnext.train.progress import LogWindow
from segnext.train.step import train_step


def one_step(clip_grad_norm=None, scaler=None, loss_fn=nn.functional.cross_entropy):
    """A step of SGD (lr 1: the update is the gradient) on a small convolution; returns the result,
    the update's global norm and the gradients' norm computed apart."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 3, padding=1)
    images, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))
    reference = nn.Conv2d(3, 4, 3, padding=1)
    reference.load_state_dict(model.state_dict())
    loss_fn(reference(images), labels).backward()
    gradient_norm = torch.cat([p.grad.flatten() for p in reference.parameters()]).norm().item()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = scaler or grad_scaler("cpu", enabled=False)
    result = train_step(model, [(images, labels)], [0], loss_fn, optimizer, scaler,
                        clip_grad_norm=clip_grad_norm)
    update = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())]).norm().item()
    return result, update, gradient_norm


def test_clipping_caps_the_global_gradient_norm():
    plain, update, gradient_norm = one_step()
    assert plain.grad_norm is None and update == pytest.approx(gradient_norm, rel=1e-5)
    clipped, update, _ = one_step(clip_grad_norm=gradient_norm / 4)
    assert clipped.grad_norm == pytest.approx(gradient_norm, rel=1e-5)  # the norm before clipping
    assert update == pytest.approx(gradient_norm / 4, rel=1e-4)
    assert clipped.loss == plain.loss
    _, update, _ = one_step(clip_grad_norm=gradient_norm * 4)  # a cap above the norm changes nothing
    assert update == pytest.approx(gradient_norm, rel=1e-5)


CPU_LOSS_SCALER = pytest.mark.skipif(
    not hasattr(torch.amp, "GradScaler"), reason=f"PyTorch {torch.__version__} has no loss scaler for the CPU (2.3+)")


@CPU_LOSS_SCALER
def test_clipping_sees_the_true_gradients_under_a_loss_scaler():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    result, update, gradient_norm = one_step(clip_grad_norm=0.1, scaler=scaler)
    assert result.grad_norm == pytest.approx(gradient_norm, rel=1e-5) and gradient_norm > 0.1
    assert update == pytest.approx(0.1, rel=1e-4)


@CPU_LOSS_SCALER
def test_an_overflowing_step_is_skipped_and_its_norm_not_logged():
    scaler = torch.amp.GradScaler("cpu", init_scale=1e30)  # the scaled gradients overflow float32

    def large_loss(logits, labels):
        return nn.functional.cross_entropy(logits, labels) * 1e10

    result, update, _ = one_step(clip_grad_norm=1.0, scaler=scaler, loss_fn=large_loss)
    assert math.isfinite(result.loss) and not math.isfinite(result.grad_norm)
    assert update == 0.0 and scaler.get_scale() < 1e30  # skipped, and the scale lowered
    window = LogWindow()
    window.add(1.0, 0.0, result.grad_norm)
    window.add(1.0, 0.0, 2.0)
    assert window.summary()["grad_norm"] == window.summary()["grad_norm_max"] == 2.0
    assert "grad_norm" not in LogWindow().summary()


def test_a_run_with_clipping_logs_the_norms_and_the_value_is_checked(tmp_path, scenes):
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    train(load_config(str(path), ["train.max_iters=2", "optimizer.clip_grad_norm=0.5"]), tmp_path / "run",
          progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    norms = [r["grad_norm"] for r in records if r["type"] == "train"]
    assert len(norms) == 2 and all(n > 0 for n in norms)
    for value in ("0", "-1"):
        with pytest.raises(ConfigError, match=f"optimizer.clip_grad_norm must be positive .*got {value}"):
            load_config(str(path), [f"optimizer.clip_grad_norm={value}"])
