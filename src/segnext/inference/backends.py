"""The inference backends: how a model runs at test time, chosen per device in one place.

    eager       the model as `create_model` built it: the reference
    optimized   `optimize_for_inference`: BatchNorm and layer scales folded, channels-last, on the CPU
                oneDNN convolutions with fused post-ops
    cuda_graph  the folded model (`SegNeXt.reparameterize()`) replayed from CUDA graphs, one per
                input shape (`CudaGraphSegNeXt`): no launch overhead at batch 1

"auto" takes the device's default (`segnext.devices.DEVICE_DEFAULTS`, from measurements). Each
backend gives the reference's logits to float rounding (the folding reorders sums); the CUDA graph
gives exactly the folded model's.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from ..devices import INFERENCE_BACKENDS, device_defaults
from .cuda_graph import CudaGraphSegNeXt
from .optimize import optimize_for_inference


def resolve_backend(backend: str, device) -> str:
    """`backend` itself, or the device's default for "auto"; an unknown or unusable one is an error."""
    device = torch.device(device)
    if backend == "auto":
        return device_defaults(device).inference_backend
    if backend not in INFERENCE_BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r}; choose auto, {', '.join(INFERENCE_BACKENDS)}")
    if backend == "cuda_graph" and device.type != "cuda":
        raise ValueError(f"the cuda_graph backend needs a CUDA device, not {device}; use eager or optimized there")
    return backend


def inference_model(model: nn.Module, backend: str = "auto", autocast_dtype: Optional[torch.dtype] = None) -> nn.Module:
    """`model` (a SegNeXt in eval mode, on its device) as `backend` runs it. autocast_dtype is recorded
    into CUDA graphs (the other backends get it from `segnext.inference.precision.AutocastModel`)."""
    device = next(model.parameters()).device
    backend = resolve_backend(backend, device)
    if backend == "optimized":
        return optimize_for_inference(model)
    if backend == "cuda_graph":
        folded = copy.deepcopy(model).reparameterize().requires_grad_(False)
        return CudaGraphSegNeXt(folded, autocast_dtype=autocast_dtype)
    return model
