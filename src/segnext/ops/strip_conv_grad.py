"""The weight gradient of MSCAN's horizontal strip convolutions, taken on the transposed image (a
training fast path, selected with `train.transposed_strip_grads`; `segnext train` uses it by default).

Each multi-scale convolutional attention applies depthwise 1xK then Kx1 convolutions (K = 7, 11,
21). On a CPU with channels-last tensors, oneDNN computes the weight gradient of a depthwise 1xK
convolution through a much slower kernel than that of the Kx1 one, although the two are the same
computation with height and width exchanged. Here a 1xK convolution's weight gradient is computed
as that of the Kx1 convolution of the transposed input and output gradient (copied to channels-last),
then transposed back: the same sums, in another order, so equal to float rounding. The forward and
the input gradient are PyTorch's own; under autocast the whole convolution is. BENCHMARKS.md has the
measurements.

`use_transposed_strip_grads(model)` switches the qualifying convolutions of a model in place (their
class becomes `TransposedGradStripConv2d`, a `nn.Conv2d`: parameters, state_dict keys, forward
values and `reparameterize()` are unchanged); `restore_strip_convs(model)` switches them back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..compat import is_autocast_enabled

# Kernel widths from which the transposed route was measured to be faster (1x7 about even).
MIN_KERNEL_WIDTH = 11


def _is_horizontal_strip(conv: nn.Module) -> bool:
    """A depthwise 1xK convolution (K >= MIN_KERNEL_WIDTH) with stride and dilation 1."""
    return (type(conv) is nn.Conv2d and conv.groups == conv.in_channels == conv.out_channels
            and conv.kernel_size[0] == 1 and conv.kernel_size[1] >= MIN_KERNEL_WIDTH
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple))


class _StripConvTransposedGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, weight, bias, padding, groups):
        ctx.save_for_backward(inputs, weight)
        ctx.padding, ctx.groups, ctx.has_bias = padding, groups, bias is not None
        return F.conv2d(inputs, weight, bias, 1, padding, 1, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        inputs, weight = ctx.saved_tensors
        padding, groups = list(ctx.padding), ctx.groups
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(
                grad_output, inputs, weight, None, [1, 1], padding, [1, 1], False, [0, 0], groups,
                [True, False, False])[0]
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            transposed = [t.transpose(2, 3).contiguous(memory_format=torch.channels_last)
                          for t in (grad_output, inputs)]
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                transposed[0], transposed[1], weight.transpose(2, 3), [weight.shape[0]] if ctx.has_bias else None,
                [1, 1], padding[::-1], [1, 1], False, [0, 0], groups, [False, True, ctx.has_bias])
            grad_weight = grad_weight.transpose(2, 3).contiguous()
        return grad_input, grad_weight, grad_bias, None, None


class TransposedGradStripConv2d(nn.Conv2d):
    """A depthwise 1xK `nn.Conv2d` whose weight gradient is computed on the transposed image."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # Under autocast the convolution runs in a lower precision than its saved inputs: PyTorch's own
        # backward handles that; the measured gain is for float32 training.
        if (not torch.is_grad_enabled() or not (self.weight.requires_grad or inputs.requires_grad)
                or is_autocast_enabled(inputs.device.type)):
            return super().forward(inputs)
        return _StripConvTransposedGrad.apply(inputs, self.weight, self.bias, self.padding, self.groups)


def use_transposed_strip_grads(model: nn.Module) -> int:
    """Switch every qualifying depthwise 1xK convolution of `model` to `TransposedGradStripConv2d`, in
    place. Returns how many were switched."""
    switched = 0
    for module in model.modules():
        if _is_horizontal_strip(module):
            module.__class__ = TransposedGradStripConv2d
            switched += 1
    return switched


def restore_strip_convs(model: nn.Module) -> int:
    """Undo `use_transposed_strip_grads`: the convolutions become plain `nn.Conv2d` again."""
    restored = 0
    for module in model.modules():
        if type(module) is TransposedGradStripConv2d:
            module.__class__ = nn.Conv2d
            restored += 1
    return restored
