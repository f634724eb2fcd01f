"""segnext.inference.buffer_pool: pooled outputs are ordinary tensors whose buffers are reused only when nothing
uses them, and the resize is F.interpolate exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segnext.inference import buffer_pool as memory

LARGE = (1, 40, 512, 512)  # 42 MB of float32: above memory.MIN_BYTES, comes from the pool


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), LARGE], ids=["small", "large"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_empty_has_the_requested_shape_dtype_and_layout(shape, channels_last):
    tensor = memory.empty(shape, channels_last=channels_last)
    assert tuple(tensor.shape) == shape and tensor.dtype == torch.float32
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert tensor.is_contiguous(memory_format=layout)
    tensor.fill_(2.5)
    assert float(tensor.sum()) == 2.5 * tensor.numel()


def test_pooled_buffer_is_reused_only_when_nothing_uses_it():
    memory.release_pool()
    first = memory.empty(LARGE)
    address = first.data_ptr()
    del first
    second = memory.empty(LARGE)
    assert second.data_ptr() == address  # idle: reused
    second.fill_(1.0)
    view, array = second[0, 5], second.numpy()
    del second
    third = memory.empty(LARGE)  # the view and the array still use the buffer
    assert third.data_ptr() != address
    third.fill_(2.0)
    assert float(view.max()) == 1.0 and float(array.max()) == 1.0
    del view, array
    assert memory.empty(LARGE).data_ptr() == address


def test_pool_keeps_a_bounded_amount_of_idle_memory(monkeypatch):
    memory.release_pool()
    monkeypatch.setattr(memory, "POOL_BYTES", 100 << 20)
    held = [memory.empty(LARGE) for _ in range(4)]  # all in use: all pooled, none can be dropped
    assert len(memory._pool) == 4
    del held
    bigger = memory.empty((1, 100, 512, 512))  # no idle buffer fits: a new one, and the idle ones go
    assert [entry.capacity for entry in memory._pool] == [bigger.numel() * 4]
    del bigger
    memory.release_pool()
    assert memory._pool == []


def test_tensor_larger_than_the_pool_limit_is_not_kept(monkeypatch):
    memory.release_pool()
    monkeypatch.setattr(memory, "POOL_MAX_BUFFER_BYTES", 10 << 20)
    tensor = memory.empty(LARGE)
    assert tensor.shape == LARGE and memory._pool == []


@pytest.mark.parametrize("size", [(512, 512), (37, 1000), (1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_resize_bilinear_is_interpolate_bit_for_bit(size, channels_last):
    logits = torch.randn(1, 150, 64, 64, generator=torch.Generator().manual_seed(0)) * 10
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    expected = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    got = memory.resize_bilinear(logits, size)
    assert got.shape == expected.shape and torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last) == expected.is_contiguous(
        memory_format=torch.channels_last)


def test_unpoolable_dtype_gets_a_plain_tensor():
    tensor = memory.empty(LARGE, dtype=torch.bfloat16)
    assert tensor.shape == LARGE and tensor.dtype == torch.bfloat16
