"""One optimizer step, and the pieces the training loop assembles around it."""

from __future__ import annotations

import contextlib
import math
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and the checkpoint to use."""

    @classmethod
    def at(cls, iteration: int, loss: float, last_checkpoint) -> TrainingDiverged:
        return cls(f"The loss became {loss} at iteration {iteration}; training stopped without saving. The last good "
                   f"checkpoint is {last_checkpoint or 'none (none was written yet)'}. Lower optimizer.lr, switch off "
                   f"train.amp, clip the gradients (optimizer.clip_grad_norm), or check the data, then resume "
                   f"from it (--resume PATH).")


class StrideEightLogits(nn.Module):
    """model.forward_logits as a module's forward, for DistributedDataParallel (which calls forward):
    the official loss takes the decoder's stride-8 logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_logits(images)


class StepResult(NamedTuple):
    loss: float  # averaged over micro-batches and processes
    grad_norm: Optional[float] = None  # the gradients' global L2 norm before clipping (only when clipping)


def train_step(forward: nn.Module, micro_batches: Sequence[Tuple[torch.Tensor, torch.Tensor]], seeds: Sequence[int],
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, amp_dtype: Optional[torch.dtype] = None,
               mean_over_processes: Callable[[torch.Tensor], float] = lambda loss: loss.item(),
               clip_grad_norm: Optional[float] = None) -> StepResult:
    """Forward, loss and backward for each micro-batch (gradients accumulate), then the update.

    forward: images -> stride-8 logits (`StrideEightLogits`, wrapped in DDP under torchrun).
    seeds: one per micro-batch; the model's random draws (drop path, NMF bases, dropout) come from
        the global RNG seeded with it, inside `fork_rng`, so the caller's RNG is left as it was.
    amp_dtype: autocast to this dtype (None: float32).
    clip_grad_norm: scale the gradients down, all together, so that their global L2 norm is at most
        this (MMSegmentation's `clip_grad=dict(max_norm=...)`); None: no clipping.
    Raises TrainingDiverged, before the update, when the loss is not finite.
    """
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    for index, ((images, labels), seed) in enumerate(zip(micro_batches, seeds)):
        last = index == len(micro_batches) - 1
        # DDP averages gradients over processes once, at the last micro-batch's backward.
        no_sync = forward.no_sync() if isinstance(forward, nn.parallel.DistributedDataParallel) and not last \
            else contextlib.nullcontext()
        with no_sync, torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = forward(images)
            loss = loss_fn(logits, labels)
            scaler.scale(loss / len(micro_batches)).backward()
        step_loss = step_loss + loss.detach() / len(micro_batches)
    loss_value = mean_over_processes(step_loss)
    if not math.isfinite(loss_value):
        raise TrainingDiverged(loss_value)
    grad_norm = None
    if clip_grad_norm is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not fp16's loss-scaled ones
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        # Under DDP every process holds the same averaged gradients, so each clips them alike. A norm
        # that overflowed in fp16 is inf: the scaler then skips this update, as it would unclipped.
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm))
    scaler.step(optimizer)
    scaler.update()
    return StepResult(loss_value, grad_norm)


def next_micro_batches(batches, count: int, device: torch.device,
                       memory_format: torch.memory_format) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """`count` (images, labels) micro-batches from the loader, on the device."""
    micro_batches = []
    for _ in range(count):
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
        micro_batches.append((images, batch["label"].to(device, non_blocking=True)))
    return micro_batches
