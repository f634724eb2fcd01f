"""Mixed-precision training steps on a GPU (marked `cuda`; skipped, saying so, without one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segnext
from segnext.train.step import StrideEightLogits, train_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="no CUDA device here (these tests run on a GPU)")]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixed_precision_training_steps_on_the_gpu(dtype):
    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 5).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    images = torch.randn(2, 3, 128, 128, device="cuda")
    labels = torch.randint(0, 5, (2, 128, 128), device="cuda")
    before = [p.detach().clone() for p in model.parameters()]
    losses = [train_step(StrideEightLogits(model), [(images, labels)], [step], segnext.segmentation_loss, optimizer,
                         scaler, dtype) for step in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
