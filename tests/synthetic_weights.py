"""Weights, images and NMF bases made from a seed, for parity checks that need no downloaded file.

The values are drawn with `torch.rand` from a seeded CPU generator, tensor by tensor in the model's
state-dict order, with ranges that make every part matter (the same idea as the official-code
fixtures: norms far from identity, non-zero biases, large layer scales, BatchNorm statistics away
from 0/1), so that a wrong layer order or a missing scale cannot pass. `fingerprint` summarises
tensors in a few numbers: the parity fixture stores the fingerprints of what it was made from, and
the test checks them first, so a PyTorch whose generator gave other numbers fails with that said.
"""

from __future__ import annotations

import hashlib
from typing import Dict

import numpy as np
import torch
from torch import nn

from segnext.constants import IMAGENET_MEAN, IMAGENET_STD


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float32)


def synthetic_state_dict(model: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """A state dict for `model` (official key names), every tensor drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    values: Dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        tensors = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        for name, tensor in tensors:
            shape = tuple(tensor.shape)
            if name == "num_batches_tracked":
                value = torch.tensor(1000, dtype=torch.int64)
            elif isinstance(module, nn.Conv2d) and name == "weight":
                fan_in = shape[1] * shape[2] * shape[3]
                bound = 0.75 * (3.0 / fan_in) ** 0.5  # larger gains overflow the eval-mode attention products
                value = _uniform(generator, shape, -bound, bound)
            elif isinstance(module, nn.Conv2d):  # bias
                value = _uniform(generator, shape, -0.1, 0.1)
            elif name.startswith("layer_scale"):
                value = _uniform(generator, shape, 0.05, 0.6)
            elif name == "weight":  # BatchNorm, LayerNorm, GroupNorm
                value = _uniform(generator, shape, 0.6, 1.4)
            elif name == "bias":
                value = _uniform(generator, shape, -0.2, 0.2)
            elif name == "running_mean":
                value = _uniform(generator, shape, -0.3, 0.3)
            elif name == "running_var":
                value = _uniform(generator, shape, 0.5, 1.5)
            else:
                raise ValueError(f"no rule for {prefix}{name} of a {type(module).__name__}")
            values[prefix + name] = value
    return values


def synthetic_images(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Normalised images: uint8-valued pixels drawn from `seed`, normalised with the ImageNet mean/std."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.floor(256 * torch.rand((batch, 3, height, width), generator=generator))
    return (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def synthetic_labels(batch: int, height: int, width: int, num_classes: int, seed: int) -> torch.Tensor:
    """Labels in blocks of 8 x 8 pixels (so that classes form regions), the top rows ignored (255)."""
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.floor(num_classes * torch.rand((batch, -(-height // 8), -(-width // 8)), generator=generator))
    labels = blocks.long().repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :height, :width].contiguous()
    labels[:, :3] = 255
    return labels


def fingerprint(tensors: Dict[str, torch.Tensor]) -> str:
    """A SHA-256 over the names and exact bytes of `tensors`, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensors[name].detach().cpu().numpy()).tobytes())
    return digest.hexdigest()
