"""Mixed precision for inference: the model's convolutions in bfloat16 or float16 on a GPU.

`Segmenter(..., amp=True)` (`segnext predict --amp`) runs the model under `torch.autocast`
through `AutocastModel`. Two things stay in float32:

- the NMF of the decoder (its multiplicative updates divide by small numbers; `NMF2D` turns
  autocast off inside);
- everything after the model: its stride-8 logits are cast to float32 before they are resized to
  the image and compared, so the label maps are those of the reduced-precision logits, computed
  exactly.

On the CPU, amp is a no-op (float32): the fast CPU path is oneDNN's fused float32 convolutions
(`optimize_for_inference`), which autocast would not change; bfloat16 is slower than float32 on
CPUs without bfloat16 instructions, and on one with them gained nothing reliable (BENCHMARKS.md).
`autocast_dtype` says what a device gets.

A model whose weights were cast (`model.half()`, `model.to(torch.bfloat16)`) runs in its own dtype
the same way: `AutocastModel` with `dtype=None` casts the images to it and returns float32 logits.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

AMP_CHOICES = ("bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

Amp = Union[bool, str, None]


def autocast_dtype(device, amp: Amp) -> Optional[torch.dtype]:
    """The reduced precision the model runs in on `device`, or None for float32.

    amp: False/None (float32), True (bfloat16 where the device supports it, else float16), "bf16"
    or "fp16". On the CPU the answer is always None (see the module docstring).
    """
    if amp is None or amp is False:
        return None
    if amp is not True and amp not in AMP_CHOICES:
        raise ValueError(f"amp must be True, False, 'bf16' or 'fp16', got {amp!r}")
    device = torch.device(device)
    if device.type == "cpu":
        return None
    bf16_supported = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if amp is True:
        return torch.bfloat16 if bf16_supported and device.type == "cuda" else torch.float16
    if amp == "bf16" and not bf16_supported:
        raise ValueError(f"{torch.cuda.get_device_name(device)} has no bfloat16 support; use fp16 (--amp fp16)")
    return _DTYPES[amp]


def weight_dtype(model) -> torch.dtype:
    """The dtype of the model's floating-point weights (float32 unless it was cast)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


class AutocastModel(nn.Module):
    """A SegNeXt (plain or optimized) whose forward runs under `torch.autocast(device_type, dtype)`
    (dtype None: no autocast) on images cast to the model's own weight dtype, and returns float32
    logits. Has what `segnext.inference.segment` needs of a model: `forward_logits`, a call giving
    logits at the input size, `num_classes`, `parameters()`."""

    def __init__(self, model: nn.Module, device_type: str, dtype: Optional[torch.dtype]):
        super().__init__()
        if not hasattr(model, "forward_logits"):
            raise TypeError(f"mixed precision needs a PyTorch SegNeXt, got {type(model).__name__}")
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def forward_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Stride-8 logits, computed in reduced precision, returned as float32."""
        images = images.to(weight_dtype(self.model))
        with torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = self.model.forward_logits(images)
        return logits.float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input size: SegNeXt's final bilinear resize, in float32."""
        logits = self.forward_logits(images)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"device_type={self.device_type!r}, dtype={self.dtype}"
