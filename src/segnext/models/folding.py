"""Exact algebra for folding an affine map (eval-mode BatchNorm, layer scale) into a convolution.

The modules' `reparameterize()` methods use these to remove work that inference does not need:
in real arithmetic the folded convolution computes exactly the same function; in float32 the
outputs move by rounding only. The arithmetic is done in float64 and stored in float32.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


def batch_norm_affine(norm: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift, per channel (float64)."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    return scale, norm.bias.double() - norm.running_mean.double() * scale


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    # skip_init: the weights are set below, so no random init (which would draw from torch's RNG)
    folded = nn.utils.skip_init(nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                conv.padding, conv.dilation, conv.groups, bias=True, device=conv.weight.device)
    with torch.no_grad():
        folded.weight.copy_(weight)
        folded.bias.copy_(bias)
    return folded


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:
        return torch.zeros(conv.out_channels, dtype=torch.float64, device=conv.weight.device)
    return conv.bias.double()


def conv_then_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A conv computing `scale * conv(x) + shift` (per output channel)."""
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    return _conv_like(conv, weight, _bias(conv) * scale + shift)


def affine_then_conv(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A conv computing `conv(scale * x + shift)` (per input channel).

    Only for an unpadded 1x1 conv: a padded conv would see the padding zeros unnormalised at the
    border, where the fold is not exact.
    """
    if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        raise ValueError("an affine map before a conv folds exactly only into an unpadded 1x1 conv")
    weight = conv.weight.double()
    return _conv_like(conv, weight * scale.view(1, -1, 1, 1), _bias(conv) + weight[:, :, 0, 0] @ shift)
