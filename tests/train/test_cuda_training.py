"""Mixed-precision training steps and a resumed run on a GPU (marked `cuda`; skipped, saying so, without one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import tiny_config, write_config

import segnext
from segnext.train import load_config, train
from segnext.train.step import StrideEightLogits, train_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="no CUDA device here (these tests run on a GPU)")]


@pytest.mark.parametrize("clip_grad_norm", [None, 1.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixed_precision_training_steps_on_the_gpu(dtype, clip_grad_norm):
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 5).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    images = torch.randn(2, 3, 128, 128, device="cuda")
    labels = torch.randint(0, 5, (2, 128, 128), device="cuda")
    before = [p.detach().clone() for p in model.parameters()]
    losses = [train_step(StrideEightLogits(model), [(images, labels)], [step], segnext.segmentation_loss, optimizer,
                         scaler, dtype, clip_grad_norm=clip_grad_norm).loss for step in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_run_stopped_on_the_gpu_resumes_where_it_stopped(tmp_path, scenes):
    """Resuming on CUDA restores the weights, the optimizer, the data stream and the random state:
    after the resume the losses follow the uninterrupted run's. Not bit for bit, as on the CPU:
    CUDA's backward kernels add in any order, so two runs differ from the first step by rounding;
    a batch or a random draw out of place would change a loss by far more than the tolerance."""
    raw = tiny_config(scenes, train={"max_iters": 6, "checkpoint_interval": 2, "device": "cuda"})
    config = load_config(str(write_config(tmp_path / "tiny.yaml", raw)))
    train(config, tmp_path / "straight", progress=False)
    steps = iter(range(100))
    train(config, tmp_path / "stopped", progress=False, should_stop=lambda: "a test" if next(steps) == 2 else None)
    assert sorted(p.name for p in (tmp_path / "stopped" / "checkpoints").glob("iter_*.pt"))[-1] == "iter_00000003.pt"
    train(config, tmp_path / "stopped", progress=False)

    def losses(directory):
        records = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
        return {r["iter"]: r["loss"] for r in records if r["type"] == "train"}
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "stopped")
    assert list(resumed) == list(straight) == [1, 2, 3, 4, 5, 6]
    assert list(resumed.values()) == pytest.approx(list(straight.values()), rel=1e-3)


def test_grad_checkpointing_on_the_gpu_gives_the_step_for_less_memory():
    """The same gradients (to CUDA's summation order) and BatchNorm statistics, less peak memory."""
    torch.manual_seed(0)
    plain = segnext.create_model("segnext_b", 19, drop_path_rate=0.3).cuda().train()
    recomputing = segnext.create_model("segnext_b", 19, drop_path_rate=0.3).cuda().train()
    recomputing.load_state_dict(plain.state_dict())
    recomputing.set_grad_checkpointing()
    images = torch.randn(2, 3, 512, 512, device="cuda")
    labels = torch.randint(0, 19, (2, 512, 512), device="cuda")
    peaks = {}
    for name, model in (("plain", plain), ("recomputing", recomputing)):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        torch.manual_seed(1)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - start
    for (name, parameter), reference in zip(recomputing.named_parameters(), plain.parameters()):
        difference = (parameter.grad - reference.grad).norm() / reference.grad.norm().clamp_min(1e-12)
        assert difference < 1e-3, name
    state = plain.state_dict()
    for key, value in recomputing.state_dict().items():
        assert torch.allclose(value.float(), state[key].float(), rtol=1e-4, atol=1e-6), key
    assert peaks["recomputing"] < 0.7 * peaks["plain"]
