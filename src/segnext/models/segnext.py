"""The SegNeXt segmentor: MSCAN encoder + LightHamHead, logits resized to the input size."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import SegNeXtConfig
from .ham_head import LightHamHead
from .mscan import MSCAN
from .nmf import NMF2D


class SegNeXt(nn.Module):
    def __init__(self, config: SegNeXtConfig, nmf_seed: Optional[int] = 0):
        super().__init__()
        self.config = config
        self.backbone = MSCAN(config.embed_dims, config.depths, config.mlp_ratios, config.drop_path_rate,
                              config.attention_kernel_size, config.strip_kernel_sizes)
        nmf = NMF2D(config.nmf_rank, config.nmf_train_steps, config.nmf_eval_steps, seed=nmf_seed)
        self.decode_head = LightHamHead(
            in_channels=[config.embed_dims[i] for i in config.head_in_stages],
            ham_channels=config.ham_channels, channels=config.head_channels, num_classes=config.num_classes,
            groups=config.group_norm_groups, dropout_ratio=config.dropout_ratio, nmf=nmf,
        )

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def nmf(self) -> NMF2D:
        return self.decode_head.hamburger.ham

    @property
    def nmf_seed(self) -> Optional[int]:
        """None: official random bases at every forward; int: fixed, batch-invariant bases (eval)."""
        return self.nmf.seed

    @nmf_seed.setter
    def nmf_seed(self, value: Optional[int]) -> None:
        self.nmf.seed = value

    def forward_logits(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits at stride 8 (the decode head's output), before the resize to the input size."""
        features = self.backbone(images)
        return self.decode_head([features[i] for i in self.config.head_in_stages], nmf_bases)

    def forward(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """images (B, 3, H, W), normalised -> logits (B, num_classes, H, W)."""
        logits = self.forward_logits(images, nmf_bases)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    def save_pretrained(self, directory) -> None:
        """Write the project's format: `config.json` + `model.safetensors` (see `segnext.save_model`)."""
        from ..checkpoint import save_model

        save_model(self, directory)
