"""use_transposed_strip_grads: the 1xK strip convolutions' weight gradients taken on the transposed
image equal PyTorch's own (autograd through nn.Conv2d) to float rounding, and nothing else changes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import segnext
from segnext.ops.strip_conv_grad import TransposedGradStripConv2d, restore_strip_convs, use_transposed_strip_grads


def gradients(module, inputs, grad_output):
    module.zero_grad(set_to_none=True)
    inputs = inputs.detach().clone().requires_grad_()
    output = module(inputs)
    output.backward(grad_output)
    return output.detach(), inputs.grad, module.weight.grad, module.bias.grad


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("width", [11, 21])
def test_a_strip_convolution_has_the_reference_value_and_gradients(channels_last, width):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 6, (1, width), padding=(0, width // 2), groups=6)
    fast = copy.deepcopy(reference)
    assert use_transposed_strip_grads(fast) == 1 and type(fast) is TransposedGradStripConv2d
    inputs, grad_output = torch.randn(2, 6, 9, 30), torch.randn(2, 6, 9, 30)
    if channels_last:
        inputs, grad_output = (t.contiguous(memory_format=torch.channels_last) for t in (inputs, grad_output))
    for expected, actual in zip(gradients(reference, inputs, grad_output), gradients(fast, inputs, grad_output)):
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_under_autocast_the_convolution_is_pytorchs_own():
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 6, (1, 21), padding=(0, 10), groups=6)
    fast = copy.deepcopy(reference)
    use_transposed_strip_grads(fast)
    inputs = torch.randn(2, 6, 9, 30).contiguous(memory_format=torch.channels_last)
    for module in (reference, fast):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = module(inputs)
        assert output.dtype == torch.bfloat16
        output.float().sum().backward()
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=0, atol=0)


def test_only_depthwise_horizontal_strips_from_width_11_are_switched():
    convs = nn.ModuleList([
        nn.Conv2d(4, 4, (1, 11), padding=(0, 5), groups=4),  # switched
        nn.Conv2d(4, 4, (1, 7), padding=(0, 3), groups=4),  # about even: left alone
        nn.Conv2d(4, 4, (11, 1), padding=(5, 0), groups=4),  # already the fast kernel
        nn.Conv2d(4, 8, (1, 11), padding=(0, 5), groups=4),  # not depthwise
        nn.Conv2d(4, 4, (1, 11), stride=2, padding=(0, 5), groups=4),  # strided
    ])
    assert use_transposed_strip_grads(convs) == 1
    assert [type(c) for c in convs] == [TransposedGradStripConv2d] + [nn.Conv2d] * 4
    assert restore_strip_convs(convs) == 1 and all(type(c) is nn.Conv2d for c in convs)


def test_a_segnext_training_step_has_the_reference_gradients_and_weights():
    torch.manual_seed(0)
    reference = segnext.create_model("segnext_t", num_classes=5).train().to(memory_format=torch.channels_last)
    fast = copy.deepcopy(reference)
    assert use_transposed_strip_grads(fast) == 26  # a 1x11 and a 1x21 in each of the 13 blocks
    assert list(fast.state_dict()) == list(reference.state_dict())
    images = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 5, (2, 64, 64))
    for model in (reference, fast):
        torch.manual_seed(1)  # the same drop-path draws
        segnext.segmentation_loss(model.forward_logits(images), labels, banded=True).backward()
    for (name, expected), actual in zip(reference.named_parameters(), fast.parameters()):
        scale = expected.grad.abs().max().clamp_min(1e-12)
        assert ((actual.grad - expected.grad).abs().max() / scale) < 1e-4, name
    with torch.no_grad():  # eval: the forward itself is nn.Conv2d's
        torch.testing.assert_close(fast.eval()(images), reference.eval()(images), rtol=0, atol=0)
