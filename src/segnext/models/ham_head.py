"""LightHamHead: the SegNeXt decoder (stages 2-4 -> squeeze -> Hamburger/NMF -> align -> classifier).

Module names follow the official `mmseg/models/decode_heads/ham_head.py` (mmcv ConvModule's
`.conv` / `.gn`) so that the authors' checkpoints load key for key.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .nmf import NMF2D


class ConvGN(nn.Module):
    """1x1 conv, optional GroupNorm, optional ReLU (mmcv ConvModule with the head's settings)."""

    def __init__(self, in_channels: int, out_channels: int, groups: Optional[int], relu: bool):
        super().__init__()
        # A norm follows, so the conv has no bias (mmcv's bias='auto').
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=groups is None)
        if groups is not None:
            self.gn = nn.GroupNorm(groups, out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "gn"):
            x = self.gn(x)
        return F.relu(x) if self.relu else x


class Hamburger(nn.Module):
    def __init__(self, channels: int, groups: int, nmf: NMF2D):
        super().__init__()
        self.ham_in = ConvGN(channels, channels, groups=None, relu=False)
        self.ham = nmf
        self.ham_out = ConvGN(channels, channels, groups=groups, relu=False)

    def forward(self, x: torch.Tensor, bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        enjoy = F.relu(self.ham_in(x))
        enjoy = self.ham_out(self.ham(enjoy, bases))
        return F.relu(x + enjoy)


class LightHamHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], ham_channels: int, channels: int, num_classes: int,
                 groups: int = 32, dropout_ratio: float = 0.1, nmf: Optional[NMF2D] = None):
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.squeeze = ConvGN(sum(in_channels), ham_channels, groups=groups, relu=True)
        self.hamburger = Hamburger(ham_channels, groups, nmf if nmf is not None else NMF2D())
        self.align = ConvGN(ham_channels, channels, groups=groups, relu=True)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.init_weights()

    def init_weights(self) -> None:
        """mmcv's defaults: kaiming-normal (fan_out, relu) convs, unit norms, N(0, 0.01) classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def fuse_inputs(self, features: List[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        resized = [features[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]
        ]
        return torch.cat(resized, dim=1)

    def forward(self, features: List[torch.Tensor], bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features: the encoder outputs this head reads (strides 8, 16, 32) -> logits at stride 8."""
        x = self.squeeze(self.fuse_inputs(features))
        x = self.hamburger(x, bases)
        x = self.align(x)
        return self.conv_seg(self.dropout(x))
