"""The training loss of the official code (MMSegmentation 0.24 `BaseDecodeHead.losses`)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                      reduction: str = "all_pixels", class_weight: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Cross-entropy of stride-8 `logits` (B, K, h, w) against `labels` (B, H, W).

    As the official head: the logits are first resized bilinearly (align_corners=False) to the label
    size. reduction "all_pixels" (official) divides the summed per-pixel loss by ALL label pixels,
    ignored ones included; "valid_pixels" divides by the non-ignored pixels only.
    """
    if labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    weight = None
    if class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32, device=logits.device)
    # Computed in float32 also under autocast: the sum over ~10^6 pixels is not safe in half precision.
    per_pixel = F.cross_entropy(logits.float(), labels.long(), weight=weight, ignore_index=ignore_index,
                                reduction="none")
    if reduction == "all_pixels":
        return per_pixel.sum() / labels.numel()
    if reduction == "valid_pixels":
        return per_pixel.sum() / (labels != ignore_index).sum().clamp(min=1)
    raise ValueError(f"loss reduction must be 'all_pixels' or 'valid_pixels', got {reduction!r}")
