"""Parameters and multiply-accumulates (MACs) of a SegNeXt forward, counted as the paper counts.

The paper's "FLOPs" are MACs counted by torchprofile over the whole forward, final resize included.
These are its rules, applied here to the operators PyTorch actually runs (a TorchDispatchMode sees
every aten call), so any input size and any variant can be counted without the tool:

    convolution          output elements x (input channels / groups) x kernel elements
    mm / addmm / bmm     n x m x p (x batch)
    mul                  output elements (layer scales, the attention product, NMF updates)
    batch/layer/group norm   output elements when the norm has an affine weight
    bilinear resize      4 x output elements
    everything else      0 (add, div, GELU, ReLU, softmax, ... are not counted by torchprofile)

The count runs on fake tensors (shapes only, no arithmetic), so any size is counted at once.
(The official NMF also multiplies its first coefficients
by the temperature 1, one extra `mul` of B x N x R elements, under 0.001% of any count; it is not
in this implementation, so it is not counted.)
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


def _numel(shape) -> int:
    return int(math.prod(shape))


def _conv_macs(args, out) -> int:
    weight = args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    # weight: (out, in/groups, *k) for a conv; (in, out/groups, *k) for a transposed conv
    per_output = weight.shape[0] if transposed else weight.shape[1]
    if transposed:
        per_output = weight.shape[0] // (args[8] if len(args) > 8 else 1)
    return _numel(out.shape) * per_output * _numel(weight.shape[2:])


def _mm_macs(args, out) -> int:
    a, b = args[-2], args[-1]
    return _numel(a.shape) * b.shape[-1]


def _addmm_macs(args, out) -> int:
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * b.shape[1]


def _bmm_macs(args, out) -> int:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _baddbmm_macs(args, out) -> int:
    return _bmm_macs(args[1:], out)


def _output_elements(args, out) -> int:
    first = out[0] if isinstance(out, (tuple, list)) else out
    return _numel(first.shape)


def _affine_norm(weight_index: int):
    def count(args, out) -> int:
        weight = args[weight_index] if len(args) > weight_index else None
        return _output_elements(args, out) if weight is not None else 0
    return count


def _upsample_macs(args, out) -> int:
    return 4 * _numel(out.shape)


# aten overload packet -> (name in reports, counting rule)
_RULES = {
    aten.convolution: ("conv", _conv_macs),
    aten.mm: ("matmul", _mm_macs),
    aten.addmm: ("matmul", _addmm_macs),
    aten.bmm: ("matmul", _bmm_macs),
    aten.baddbmm: ("matmul", _baddbmm_macs),
    aten.mul: ("mul", _output_elements),
    aten.native_batch_norm: ("norm", _affine_norm(1)),
    aten._native_batch_norm_legit_no_training: ("norm", _affine_norm(1)),
    aten._native_batch_norm_legit: ("norm", _affine_norm(1)),
    aten.native_layer_norm: ("norm", _affine_norm(2)),
    aten.native_group_norm: ("norm", _affine_norm(1)),
    aten.upsample_bilinear2d: ("resize", _upsample_macs),
}


class MacCounter(TorchDispatchMode):
    """Counts MACs of every aten call made while active, by rule name."""

    def __init__(self):
        super().__init__()
        self.by_kind: Dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func.overloadpacket)
        if rule is not None:
            kind, count = rule
            self.by_kind[kind] += int(count(args, out))
        return out

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


@dataclass
class Complexity:
    name: str
    num_classes: int
    height: int
    width: int
    params: int
    backbone_params: int
    head_params: int
    macs: int
    macs_by_kind: Dict[str, int] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict:
        return dict(name=self.name, num_classes=self.num_classes, height=self.height, width=self.width,
                    params=self.params, backbone_params=self.backbone_params, head_params=self.head_params,
                    macs=self.macs, gmacs=round(self.gmacs, 4), gflops=round(2 * self.gmacs, 4),
                    macs_by_kind=dict(self.macs_by_kind))


@torch.no_grad()
def count_macs(model: torch.nn.Module, height: int, width: int, batch_size: int = 1) -> Tuple[int, Dict[str, int]]:
    """MACs of `model(images)` for (batch_size, in_channels, height, width) inputs. The forward runs on fake
    tensors (shapes only, no arithmetic) on a copy of the model. Returns (total, by kind)."""
    import copy

    from torch._subclasses.fake_tensor import FakeTensorMode

    from .models.ham_head import Hamburger

    model_copy = copy.deepcopy(model).eval()
    for module in model_copy.modules():
        # Fixed NMF bases come from a seeded generator, which fake tensors refuse before PyTorch 2.2:
        # draw them for real (a small tensor); the fake forward finds them cached.
        if isinstance(module, Hamburger) and module.ham.seed is not None:
            module.ham.seeded_bases(module.channels)
    with FakeTensorMode(allow_non_fake_inputs=True) as fake_mode:
        channels = getattr(getattr(model, "config", None), "in_channels", 3)
        images = fake_mode.from_tensor(torch.empty(batch_size, channels, height, width))
        with MacCounter() as counter:
            model_copy(images)
    return counter.total, dict(counter.by_kind)


def model_complexity(name: str, height: int, width: int, num_classes: int = 150, **overrides) -> Complexity:
    """Parameters and MACs of variant `name` with `num_classes` classes at height x width."""
    from .models import create_model

    model = create_model(name, num_classes, **overrides).eval()
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    macs, by_kind = count_macs(model, height, width)
    return Complexity(name, num_classes, height, width, params, backbone, params - backbone, macs, by_kind)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s) with torch's current thread count:
    the best of `repeats` products of two size x size matrices (2 n^3 flops each)."""
    import time

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
