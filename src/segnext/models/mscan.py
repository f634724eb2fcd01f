"""MSCAN: the multi-scale convolutional attention encoder of SegNeXt.

Module and parameter names follow the official code (`mmseg/models/backbones/mscan.py`) so that the
authors' checkpoints load key for key; the comments say which part of the paper each piece is.
Activations keep the memory format of the input (NCHW, or channels-last when the caller converts
model and input): the official code flattens to NLC between blocks only to apply the stage
LayerNorm, which is the same function as a LayerNorm over the channel axis.

For inference, `reparameterize()` on the stem, the patch embeddings and the blocks folds their
BatchNorms and layer scales into convolutions (`SegNeXt.reparameterize()` calls them all).

For training with less memory, `grad_checkpointing = True` keeps only each block's input for the
backward pass and computes the block again there (`recompute_in_backward`): the same gradients and
running statistics, for about a quarter more time per step.

For fine-tuning on few images, `freeze_stages(n)` stops training the first n stages: their weights
take no gradient (the backward pass stops above them) and their BatchNorms keep the running
statistics they were trained with (MMSegmentation's `frozen_stages` with `norm_eval`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, List, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .folding import affine_then_conv, batch_norm_affine, conv_then_affine


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth in mmcv's form, so that the global-RNG draws match the official code."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)
    return x.div(keep_prob) * random_tensor.floor()


class StemConv(nn.Module):
    """Stage-1 downsampling by 4: two stride-2 3x3 convs (conv-BN-GELU-conv-BN)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def reparameterize(self) -> None:
        """Fold both BatchNorms into the convolutions before them (inference only)."""
        conv_a, norm_a, activation, conv_b, norm_b = self.proj
        self.proj = nn.Sequential(conv_then_affine(conv_a, *batch_norm_affine(norm_a)), activation,
                                  conv_then_affine(conv_b, *batch_norm_affine(norm_b)))


class OverlapPatchEmbed(nn.Module):
    """Stages 2-4 downsampling by 2: 3x3 stride-2 conv + BN."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))

    def reparameterize(self) -> None:
        """Fold the BatchNorm into the convolution (inference only)."""
        self.proj = conv_then_affine(self.proj, *batch_norm_affine(self.norm))
        self.norm = nn.Identity()


class AttentionModule(nn.Module):
    """MSCA: a 5x5 depthwise conv, then strip-conv branches (1xk then kx1) summed with it,
    mixed by a 1x1 conv and used as attention weights on the input.

    The paper's ablation of these components: `strip_kernel_sizes=()` keeps the 5x5 conv alone,
    `channel_mixing=False` leaves out the 1x1 conv, `gating=False` the product with the input (the
    attention map is then the output).
    """

    def __init__(self, dim: int, kernel_size: int = 5, strip_kernel_sizes: Sequence[int] = (7, 11, 21),
                 channel_mixing: bool = True, gating: bool = True):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        # Official names: conv{i}_1 is the horizontal 1xk strip, conv{i}_2 the vertical kx1 strip.
        self.strip_kernel_sizes = tuple(strip_kernel_sizes)
        for i, k in enumerate(self.strip_kernel_sizes):
            setattr(self, f"conv{i}_1", nn.Conv2d(dim, dim, (1, k), padding=(0, k // 2), groups=dim))
            setattr(self, f"conv{i}_2", nn.Conv2d(dim, dim, (k, 1), padding=(k // 2, 0), groups=dim))
        self.conv3 = nn.Conv2d(dim, dim, 1) if channel_mixing else nn.Identity()
        self.gating = gating

    def strip_branches(self):
        return [(getattr(self, f"conv{i}_1"), getattr(self, f"conv{i}_2")) for i in range(len(self.strip_kernel_sizes))]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        attn = self.conv0(u)
        summed = attn
        for horizontal, vertical in self.strip_branches():  # ((attn + b7) + b11) + b21, as the official sum
            summed = summed + vertical(horizontal(attn))
        mixed = self.conv3(summed)
        return mixed * u if self.gating else mixed


class LargeKernelAttention(nn.Module):
    """VAN's large kernel attention (LKA; Guo et al., "Visual Attention Network", 2022), what the
    paper compares MSCA with: a 5x5 depthwise conv and a 7x7 depthwise conv dilated by 3 (VAN's
    decomposition of a 21x21 convolution), a 1x1 conv, and the product with the input. Module names
    as VAN's."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv_spatial(self.conv0(u))) * u


class SpatialAttention(nn.Module):
    """1x1 -> GELU -> MSCA (or VAN's LKA, `attention="lka"`) -> 1x1 with an inner shortcut."""

    def __init__(self, dim: int, kernel_size: int, strip_kernel_sizes: Sequence[int], channel_mixing: bool = True,
                 gating: bool = True, attention: str = "msca"):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(dim) if attention == "lka" else \
            AttentionModule(dim, kernel_size, strip_kernel_sizes, channel_mixing, gating)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
        return x + shortcut


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class Mlp(nn.Module):
    """1x1 expand -> depthwise 3x3 -> GELU -> 1x1 project (dropout rate is 0 in every config)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.dwconv = DWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Block(nn.Module):
    """One MSCAN block: x + ls1 * attention(BN(x)), then x + ls2 * mlp(BN(x)), each with stochastic depth.

    Args:
        dim: channels.
        mlp_ratio: the MLP's hidden width as a multiple of dim.
        drop_path_rate: stochastic-depth probability of both branches.
        kernel_size: the square depthwise conv of MSCA (5).
        strip_kernel_sizes: MSCA's strip-conv branches (7, 11, 21).
        attention_channel_mixing, attention_gating: MSCA's 1x1 conv and its product with the input
            (`AttentionModule`; off only in the paper's ablations).
        attention: "msca", or "lka" for VAN's large kernel attention (the paper's comparison).
    """

    def __init__(self, dim: int, mlp_ratio: int, drop_path_rate: float, kernel_size: int,
                 strip_kernel_sizes: Sequence[int], attention_channel_mixing: bool = True,
                 attention_gating: bool = True, attention: str = "msca"):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim, kernel_size, strip_kernel_sizes, attention_channel_mixing, attention_gating,
                                     attention)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.drop_path_rate = drop_path_rate
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(dim))
        self.register_buffer("shortcut_scale", None)  # set by reparameterize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_scale is not None:  # reparameterized: the norms and layer scales are in the 1x1 convs
            x = self.attn(x) + x * self.shortcut_scale
            return x + self.mlp(x)
        scale_1 = self.layer_scale_1[:, None, None]
        scale_2 = self.layer_scale_2[:, None, None]
        x = x + drop_path(scale_1 * self.attn(self.norm1(x)), self.drop_path_rate, self.training)
        x = x + drop_path(scale_2 * self.mlp(self.norm2(x)), self.drop_path_rate, self.training)
        return x

    def reparameterize(self) -> None:
        """Fold norm1/norm2 and the layer scales into the 1x1 convs around them (inference only).

        A BatchNorm before a 1x1 conv folds into it (no padding to break the fold); the attention's
        inner shortcut adds BN1(x) = a1 x + b1, so with BN1 moved into proj_1 the shortcut adds x
        and the rest, ls1 * a1 * x, becomes `shortcut_scale`; ls1 * b1 goes into proj_2's bias:
            x + ls1 * (proj_2(m) + BN1(x)) = [ls1 proj_2 + ls1 b1](m) + x + (ls1 a1) x
        Layer scale 2 scales fc2.
        """
        scale_1, shift_1 = batch_norm_affine(self.norm1)
        scale_2, shift_2 = batch_norm_affine(self.norm2)
        layer_scale_1, layer_scale_2 = self.layer_scale_1.double(), self.layer_scale_2.double()
        attn, mlp = self.attn, self.mlp
        attn.proj_1 = affine_then_conv(attn.proj_1, scale_1, shift_1)
        attn.proj_2 = conv_then_affine(attn.proj_2, layer_scale_1, layer_scale_1 * shift_1)
        mlp.fc1 = affine_then_conv(mlp.fc1, scale_2, shift_2)
        mlp.fc2 = conv_then_affine(mlp.fc2, layer_scale_2, torch.zeros_like(layer_scale_2))
        self.shortcut_scale = (layer_scale_1 * scale_1).float().view(-1, 1, 1)
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        del self.layer_scale_1, self.layer_scale_2


def recompute_in_backward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """block(x), keeping only x for the backward pass, which computes the block again
    (`torch.utils.checkpoint`, with the random state of the first pass for stochastic depth). The
    second pass leaves BatchNorm's running statistics alone: the first one updated them."""
    return checkpoint(block, x, use_reentrant=False,
                      context_fn=lambda: (contextlib.nullcontext(), _running_statistics_frozen(block)))


@contextlib.contextmanager
def _running_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """BatchNorms normalise with the batch's statistics, as in the first pass, but their running ones
    stay as they are: a momentum of 0 keeps them (and the pass saves the same tensors for backward as
    the first, as checkpoint requires), and the count of batches is put back."""
    norms = [m for m in module.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)) and m.track_running_stats]
    saved = [(norm.momentum, norm.num_batches_tracked.clone()) for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, batches) in zip(norms, saved):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(batches)


def channel_layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over C of a (B, C, H, W) tensor, computed as the official code does (on NHWC);
    the result has the memory format of `x`."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    out = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class MSCAN(nn.Module):
    """The encoder: four stages at strides 4, 8, 16, 32, each a downsampling conv, blocks and a
    LayerNorm; returns the four stage outputs.

    Args:
        embed_dims, depths, mlp_ratios: per stage (see `SegNeXtConfig`).
        drop_path_rate: stochastic depth of the last block, growing linearly from 0.
        kernel_size, strip_kernel_sizes: MSCA's kernels.
        attention_channel_mixing, attention_gating, attention: MSCA's 1x1 conv and attention product,
            or VAN's LKA instead of MSCA (`Block`).
        in_channels: image channels.

    `grad_checkpointing`: in training, recompute each block in the backward pass instead of keeping
    its activations (`recompute_in_backward`; `SegNeXt.set_grad_checkpointing`).
    `frozen_stages`: how many stages, from the first, are not trained (`freeze_stages`).
    """

    def __init__(self, embed_dims: Sequence[int], depths: Sequence[int], mlp_ratios: Sequence[int],
                 drop_path_rate: float = 0.1, kernel_size: int = 5,
                 strip_kernel_sizes: Sequence[int] = (7, 11, 21), in_channels: int = 3,
                 attention_channel_mixing: bool = True, attention_gating: bool = True, attention: str = "msca"):
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        self.num_stages = len(depths)
        # Stochastic depth grows linearly over all blocks of all stages.
        rates = [r.item() for r in torch.linspace(0, drop_path_rate, sum(depths))]
        first = 0
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios), start=1):
            patch_embed = StemConv(in_channels, dim) if i == 1 else OverlapPatchEmbed(embed_dims[i - 2], dim)
            blocks = nn.ModuleList(
                Block(dim, ratio, rates[first + j], kernel_size, strip_kernel_sizes, attention_channel_mixing,
                      attention_gating, attention) for j in range(depth)
            )
            first += depth
            setattr(self, f"patch_embed{i}", patch_embed)
            setattr(self, f"block{i}", blocks)
            setattr(self, f"norm{i}", nn.LayerNorm(dim))
        self.grad_checkpointing = False
        self.frozen_stages = 0
        self.init_weights()

    def init_weights(self) -> None:
        """The official random init (used when no ImageNet weights are given)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self):
        for i in range(1, self.num_stages + 1):
            yield getattr(self, f"patch_embed{i}"), getattr(self, f"block{i}"), getattr(self, f"norm{i}")

    def freeze_stages(self, count: int) -> None:
        """Train only the stages after the first `count` (0: all of them again): the frozen ones take
        no gradient and stay in eval mode when the model trains (running statistics as trained,
        no stochastic depth), so that they compute what they computed for the weights' own task."""
        if not 0 <= count <= self.num_stages:
            raise ValueError(f"frozen stages must be from 0 (none) to {self.num_stages} (the whole encoder), "
                             f"got {count}")
        self.frozen_stages = count
        for index, stage in enumerate(self.stages(), start=1):
            for module in stage:
                module.requires_grad_(index > count)
        self.train(self.training)

    def train(self, mode: bool = True) -> MSCAN:
        super().train(mode)
        for stage in list(self.stages())[:self.frozen_stages]:
            for module in stage:
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for index, (patch_embed, blocks, norm) in enumerate(self.stages(), start=1):
            recompute = self.grad_checkpointing and torch.is_grad_enabled() and index > self.frozen_stages
            x = patch_embed(x)
            for block in blocks:
                x = recompute_in_backward(block, x) if recompute else block(x)
            x = channel_layer_norm(x, norm)
            outs.append(x)
        return outs
