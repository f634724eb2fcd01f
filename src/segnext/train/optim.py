"""The official optimiser and learning-rate schedule (MMSegmentation 0.x / mmcv 1.x semantics).

- AdamW whose per-parameter lr and weight decay come from `custom_keys`: the keys are tested as
  substrings of the full parameter name, longest key first (ties alphabetically), and the first match
  multiplies the base lr by `lr_mult` and the base weight decay by `decay_mult`. With the SegNeXt keys
  (`head`: lr x10, `norm`: decay x0, `pos_block`: decay x0) every `decode_head.*` parameter, its
  GroupNorms included, gets lr x10 with decay, and backbone norms get no decay.
- Poly decay `(base_lr - min_lr) * (1 - it / max_iters) ** power + min_lr`, multiplied during the
  first `warmup_iters` iterations by the linear warm-up `1 - (1 - it / warmup_iters) * (1 - ratio)`.
  Iteration `it` counts optimizer steps already taken: the first step uses it = 0.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..compat import fused_adamw
from .config import OptimizerSection, ScheduleSection


def parameter_settings(name: str, base_lr: float, base_weight_decay: float,
                       custom_keys: Dict[str, Dict[str, float]]) -> Tuple[float, float, Optional[str]]:
    """(lr, weight_decay, matched key) of the parameter called `name` (e.g. 'backbone.norm1.weight')."""
    for key in sorted(sorted(custom_keys), key=len, reverse=True):  # mmcv's order
        if key in name:
            rule = custom_keys[key]
            return base_lr * rule.get("lr_mult", 1.0), base_weight_decay * rule.get("decay_mult", 1.0), key
    return base_lr, base_weight_decay, None


def parameter_groups(model: nn.Module, config: OptimizerSection) -> List[dict]:
    """One AdamW group per distinct (lr, weight decay), in the order of first appearance.

    mmcv makes one group per parameter; grouping equal settings gives the same updates with far
    fewer groups (AdamW's foreach kernels work per group).
    """
    groups: Dict[Tuple[float, float], dict] = {}
    for name, parameter in model.named_parameters():
        # Frozen parameters (model.frozen_stages) stay in their group, as in mmcv: they take no
        # gradient, so AdamW leaves them as they are, and a run resumed with other frozen stages
        # finds the optimizer state it saved.
        lr, weight_decay, key = parameter_settings(name, config.lr, config.weight_decay, config.custom_keys)
        group = groups.setdefault((lr, weight_decay), {
            "params": [], "lr": lr, "initial_lr": lr, "weight_decay": weight_decay, "names": [],
            "matched_key": key or ""})
        group["params"].append(parameter)
        group["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: OptimizerSection) -> torch.optim.AdamW:
    """The official AdamW over `parameter_groups`, as PyTorch's fused implementation where this
    PyTorch has one for the parameters' device (one kernel per group instead of a loop over
    parameters: the same update to float rounding, a quarter of the time on a CPU; BENCHMARKS.md),
    else the default one."""
    groups = parameter_groups(model, config)
    settings = dict(lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    device_type = next(model.parameters()).device.type
    if fused_adamw(device_type):
        try:
            return torch.optim.AdamW(groups, fused=True, **settings)
        except RuntimeError:  # a device without the fused kernel
            pass
    return torch.optim.AdamW(groups, **settings)


def warmup_factor(iteration: int, schedule: ScheduleSection) -> float:
    if iteration >= schedule.warmup_iters:
        return 1.0
    return 1.0 - (1.0 - iteration / schedule.warmup_iters) * (1.0 - schedule.warmup_ratio)


def scheduled_lr(initial_lr: float, iteration: int, max_iters: int, schedule: ScheduleSection,
                 progress: Optional[float] = None) -> float:
    """The learning rate of a group whose initial lr is `initial_lr`, for optimizer step `iteration`.

    progress: the fraction of the decay done; default iteration / max_iters (schedule.by_time
    passes elapsed / time budget instead).
    """
    if progress is None:
        progress = iteration / max_iters
    progress = min(max(progress, 0.0), 1.0)
    regular = (initial_lr - schedule.min_lr) * (1.0 - progress) ** schedule.power + schedule.min_lr
    return regular * warmup_factor(iteration, schedule)


def lr_factor(iteration: int, max_iters: int, schedule: ScheduleSection) -> float:
    """The multiplier of the initial lr at `iteration` (with min_lr = 0 the same for every group)."""
    return scheduled_lr(1.0, iteration, max_iters, schedule)


def peak_lr_factor(max_iters: int, schedule: ScheduleSection) -> float:
    """The largest multiplier of the initial lr over the run (warm-up and decay multiply, mmcv's way):
    1 - warmup_iters / max_iters for a short warm-up, much less when the warm-up is as long as the run."""
    step = max(1, max_iters // 1000)
    return max(lr_factor(iteration, max_iters, schedule) for iteration in range(0, max_iters, step))


def set_learning_rates(optimizer: torch.optim.Optimizer, iteration: int, max_iters: int,
                       schedule: ScheduleSection, progress: Optional[float] = None) -> None:
    """The schedule is a pure function of the iteration: resuming needs nothing but the iteration."""
    for group in optimizer.param_groups:
        group["lr"] = scheduled_lr(group["initial_lr"], iteration, max_iters, schedule, progress)
