"""LightHamHead: the SegNeXt decoder (stages 2-4 -> squeeze -> Hamburger/NMF -> align -> classifier).

Module names follow the official `mmseg/models/decode_heads/ham_head.py` (mmcv ConvModule's
`.conv` / `.gn`) so that the authors' checkpoints load key for key.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .decode_head import ConvGN, DecodeHead, resize
from .nmf import NMF2D


class Conv1x1(nn.Module):
    """A 1x1 conv with bias and no norm, under mmcv ConvModule's `.conv` name (the Hamburger's ham_in)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Hamburger(nn.Module):
    def __init__(self, channels: int, groups: int, nmf: NMF2D):
        super().__init__()
        self.channels = channels
        self.ham_in = Conv1x1(channels, channels)
        self.ham = nmf
        self.ham_out = ConvGN(channels, channels, groups, relu=False)

    def forward(self, x: torch.Tensor, bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        enjoy = F.relu(self.ham_in(x))
        enjoy = self.ham_out(self.ham(enjoy, bases))
        return F.relu(x + enjoy)


class LightHamHead(DecodeHead):
    """Args:
        in_channels: channels of the stages the head reads (strides 8, 16, 32).
        ham_channels: width of the squeeze conv and the Hamburger.
        channels: width after the align conv.
        num_classes: outputs of the classifier.
        groups: GroupNorm groups.
        dropout_ratio: Dropout2d before the classifier.
        nmf: the matrix decomposition (default: NMF2D with the official settings).
    """

    def __init__(self, in_channels: Sequence[int], ham_channels: int, channels: int, num_classes: int,
                 groups: int = 32, dropout_ratio: float = 0.1, nmf: Optional[NMF2D] = None):
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.squeeze = ConvGN(sum(in_channels), ham_channels, groups, relu=True)
        self.squeeze_parts: Optional[nn.ModuleList] = None  # set by reparameterize()
        self.hamburger = Hamburger(ham_channels, groups, nmf if nmf is not None else NMF2D())
        self.align = ConvGN(ham_channels, channels, groups, relu=True)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.init_weights()

    def concat_stages(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Stage 2 and stages 3, 4 resized to its size, concatenated (the squeeze conv's input)."""
        size = features[0].shape[2:]
        return torch.cat([features[0]] + [resize(f, size) for f in features[1:]], dim=1)

    def squeeze_stages(self, features: List[torch.Tensor]) -> torch.Tensor:
        """squeeze(concat_stages(features))."""
        if self.squeeze_parts is None:
            return self.squeeze(self.concat_stages(features))
        # Reparameterized: a 1x1 conv commutes with bilinear resizing, so each stage is squeezed at
        # its own (smaller) size and only ham_channels maps are resized.
        size = features[0].shape[2:]
        x = self.squeeze_parts[0](features[0])
        for conv, feature in zip(self.squeeze_parts[1:], features[1:]):
            x = x + resize(conv(feature), size)
        return F.relu(self.squeeze.gn(x))

    def forward(self, features: List[torch.Tensor], bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features: the encoder outputs this head reads (strides 8, 16, 32) -> logits at stride 8."""
        x = self.squeeze_stages(features)
        x = self.hamburger(x, bases)
        x = self.align(x)
        return self.conv_seg(self.dropout(x))

    def reparameterize(self) -> None:
        """Split the squeeze conv by input stage (see squeeze_stages) and draw the NMF's fixed bases
        now, so that a traced graph holds them as a constant (inference only)."""
        nmf = self.hamburger.ham
        if nmf.seed is not None:
            nmf.seeded_bases(self.squeeze.gn.num_channels)
        conv = self.squeeze.conv
        parts = torch.split(conv.weight.detach(), list(self.in_channels), dim=1)
        self.squeeze_parts = nn.ModuleList()
        for weight in parts:
            part = nn.utils.skip_init(nn.Conv2d, weight.shape[1], weight.shape[0], 1, bias=False, device=weight.device)
            with torch.no_grad():
                part.weight.copy_(weight)
            self.squeeze_parts.append(part)
        self.squeeze.conv = None
