"""The all-MLP decoder the paper compares its Hamburger head with (SegFormer's decoder, as
MMSegmentation's `SegformerHead` builds it, with SegNeXt's GroupNorm): each stage it reads is
projected to `channels` by a 1x1 conv (GroupNorm, ReLU), resized to the first stage's size,
concatenated, fused by another 1x1 conv (GroupNorm, ReLU) and classified. The paper's ablation of
the decoder: this head over all four stages (`decoder="mlp"`, `head_in_stages=(0, 1, 2, 3)`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from .decode_head import ConvGN, DecodeHead, resize


class AllMLPHead(DecodeHead):
    """Args:
        in_channels: channels of the stages the head reads.
        channels: width of each stage's projection and of the fused map.
        num_classes: outputs of the classifier.
        groups: GroupNorm groups.
        dropout_ratio: Dropout2d before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int, groups: int = 32,
                 dropout_ratio: float = 0.1):
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.convs = nn.ModuleList(ConvGN(width, channels, groups, relu=True) for width in self.in_channels)
        self.fusion_conv = ConvGN(channels * len(self.in_channels), channels, groups, relu=True)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.init_weights()

    def forward(self, features: List[torch.Tensor], bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features: the encoder outputs this head reads -> logits at the first one's stride. `bases`
        (the Hamburger's NMF bases) has no use here: this head draws nothing at random."""
        size = features[0].shape[2:]
        projected = [conv(feature) for conv, feature in zip(self.convs, features)]
        x = torch.cat([projected[0]] + [resize(part, size) for part in projected[1:]], dim=1)
        return self.conv_seg(self.dropout(self.fusion_conv(x)))
