"""The weights of `F.interpolate(mode="bilinear", align_corners=False)` along one axis, measured
from `F.interpolate` itself: the banded and label-only computations use exactly its numbers."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


def bilinear_weights(in_size: int, sizes: Sequence[int], device=None) -> torch.Tensor:
    """(in_size, out) weights of a chain of 1-D bilinear resizes through `sizes`: entry [i, o] is how
    much input row i contributes to output row o. Measured by resizing one-hot rows (not re-derived)."""
    probe = torch.eye(in_size, dtype=torch.float32, device=device).view(1, in_size, in_size, 1)  # channel i: row i
    for size in sizes:
        probe = F.interpolate(probe, size=(size, 1), mode="bilinear", align_corners=False)
    return probe[0, :, :, 0]


def contributing_rows(weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For `bilinear_weights` (in, out): per output row, the first input row that contributes and one
    past the last (int64 tensors of length out)."""
    in_size, out_size = weights.shape
    index = torch.arange(in_size, device=weights.device).view(-1, 1).expand(-1, out_size)
    reaches = weights != 0  # input row i reaches output row o
    first = torch.where(reaches, index, in_size).min(0).values
    last = torch.where(reaches, index, -1).max(0).values
    if bool((first > last).any()):  # an output reached by no input: impossible for bilinear resizing
        raise RuntimeError("bilinear resize probe found an output pixel with no source")
    return first, last + 1
