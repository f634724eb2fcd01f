"""What SegNeXt's decoders share: mmcv's ConvModule of the head (1x1 conv, GroupNorm, ReLU), the
bilinear resize, and a head's classifier (`conv_seg`), initialised and replaced as the official
`BaseDecodeHead` does."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvGN(nn.Module):
    """1x1 conv -> GroupNorm -> optional ReLU (mmcv ConvModule with the head's settings); the conv
    has no bias because the norm follows."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.gn = nn.GroupNorm(groups, out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn(self.conv(x))
        return F.relu(x) if self.relu else x


class DecodeHead(nn.Module):
    """A decoder ending in Dropout2d and the classifier `conv_seg` (a 1x1 conv to the classes)."""

    conv_seg: nn.Conv2d

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

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for `num_classes` classes, initialised as the official one (N(0, 0.01), zero bias)."""
        old = self.conv_seg.weight
        self.conv_seg = nn.utils.skip_init(nn.Conv2d, old.shape[1], num_classes, 1, device=old.device, dtype=old.dtype)
        nn.init.normal_(self.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)
