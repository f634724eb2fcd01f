"""Non-negative matrix factorisation, the global-context "Hamburger" core of the LightHamHead.

Same function as the official `NMF2D` (HamNet's `_MatrixDecomposition2DBase` with S=1 and the
softmax temperature that `NMF2D.__init__` hard-codes to 1). The only difference is where the random
bases come from (`nmf_seed`):

- `None`: the official draw, `torch.rand((B, D, R))` from the global CPU generator at every forward,
  bit-compatible with the authors' code under `torch.manual_seed`. Inference is then random.
- an int: one (1, D, R) draw from a private generator seeded with it, shared by every image of the
  batch, so a prediction depends on nothing but the image (the default of `create_model`).
- In training the bases always come from the global RNG, as in the official recipe.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6  # added to every multiplicative-update denominator


def draw_bases(batch: int, channels: int, rank: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random L2-normalised bases (batch, D, R), drawn on the CPU as the official code does."""
    bases = torch.rand((batch, channels, rank), generator=generator)
    return F.normalize(bases, dim=1)


def update_coef(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    numerator = torch.bmm(x.transpose(1, 2), bases)  # (B, N, R)
    denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
    return coef * numerator / (denominator + EPS)


def update_bases(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    numerator = torch.bmm(x, coef)  # (B, D, R)
    denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
    return bases * numerator / (denominator + EPS)


def nmf_reconstruct(x: torch.Tensor, bases: torch.Tensor, steps: int, transposed_output: bool = False) -> torch.Tensor:
    """x (B, D, N) non-negative, bases (B, D, R) -> the rank-R reconstruction (B, D, N).

    Gradients flow through every step, as in SegNeXt (HamNet's one-step gradient is disabled there).
    `x` may be a strided view (a channels-last feature map is x^T in memory). transposed_output:
    compute the product as (B, N, D) and return its (B, D, N) view, which is laid out as an
    NHWC map, for a channels-last caller.
    """
    coef = F.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)  # temperature 1
    for _ in range(steps):
        coef = update_coef(x, bases, coef)
        bases = update_bases(x, bases, coef)
    coef = update_coef(x, bases, coef)
    if transposed_output:
        return torch.bmm(coef, bases.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(bases, coef.transpose(1, 2))


class NMF2D(nn.Module):
    """The Hamburger's matrix decomposition of a (B, C, H, W) map.

    Args:
        rank: R, the number of bases.
        train_steps, eval_steps: multiplicative-update steps in training / evaluation.
        seed: None draws the bases from the global RNG at every forward (official); an int gives
            fixed bases in eval mode (see the module docstring).
    """

    def __init__(self, rank: int = 16, train_steps: int = 6, eval_steps: int = 7, seed: Optional[int] = 0):
        super().__init__()
        self.rank = rank
        self.train_steps = train_steps
        self.eval_steps = eval_steps
        self.seed = seed
        self._seeded_bases: Optional[torch.Tensor] = None  # cache: (1, D, R) for `seed`

    @property
    def seed(self) -> Optional[int]:
        return self._seed

    @seed.setter
    def seed(self, value: Optional[int]) -> None:
        if value is not None and not isinstance(value, int):
            raise TypeError(f"nmf_seed must be an int or None, got {value!r}")
        self._seed = value
        self._seeded_bases = None

    def seeded_bases(self, channels: int) -> torch.Tensor:
        cached = self._seeded_bases
        if cached is None or cached.shape[1] != channels:
            generator = torch.Generator().manual_seed(self._seed)
            cached = draw_bases(1, channels, self.rank, generator)
            self._seeded_bases = cached
        return cached

    def make_bases(self, batch: int, channels: int) -> torch.Tensor:
        if self.training or self._seed is None:
            return draw_bases(batch, channels, self.rank)
        return self.seeded_bases(channels).expand(batch, -1, -1)

    def forward(self, x: torch.Tensor, bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, C, H, W) -> reconstruction of the same shape. `bases` (B or 1, C, R) overrides the draw."""
        batch, channels, height, width = x.shape
        if bases is None:
            bases = self.make_bases(batch, channels)
        bases = bases.to(device=x.device, dtype=torch.float32).expand(batch, -1, -1)
        steps = self.train_steps if self.training else self.eval_steps
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        # The multiplicative updates divide by small numbers: keep them in float32 under autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.float().flatten(2)  # (B, D, N); a view for NCHW and channels-last maps alike
            out = nmf_reconstruct(flat, bases, steps, transposed_output=channels_last)
        if channels_last:  # (B, D, N) view of a (B, N, D) product: an NHWC map in memory
            return out.transpose(1, 2).reshape(batch, height, width, channels).permute(0, 3, 1, 2).to(x.dtype)
        return out.reshape(batch, channels, height, width).to(x.dtype)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, train_steps={self.train_steps}, eval_steps={self.eval_steps}, seed={self._seed}"
