"""segnext.memory: huge-page outputs are ordinary tensors, and the resize is F.interpolate exactly."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

from segnext import memory

LARGE = (1, 40, 512, 512)  # 42 MB of float32: above memory.MIN_BYTES, takes the huge-page path


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), LARGE], ids=["small", "large"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_empty_has_the_requested_shape_dtype_and_layout(shape, channels_last):
    tensor = memory.empty(shape, channels_last=channels_last)
    assert tuple(tensor.shape) == shape and tensor.dtype == torch.float32
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert tensor.is_contiguous(memory_format=layout)
    tensor.fill_(2.5)
    assert float(tensor.sum()) == 2.5 * tensor.numel()


def test_large_tensor_outlives_its_buffer_and_behaves_normally():
    tensor = memory.empty(LARGE)
    gc.collect()  # the mmap object is referenced only through the tensor's storage
    tensor.copy_(torch.arange(tensor.numel(), dtype=torch.float32).view(LARGE))
    assert float(tensor[0, -1, -1, -1]) == tensor.numel() - 1
    assert torch.equal(tensor.clone(), tensor) and tensor.numpy().shape == LARGE


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


def test_plain_allocation_when_huge_pages_are_unavailable(monkeypatch):
    monkeypatch.setattr(memory, "HUGE_PAGES", False)
    logits = torch.randn(1, 40, 64, 64)
    got = memory.resize_bilinear(logits, (512, 512))
    assert torch.equal(got, F.interpolate(logits, size=(512, 512), mode="bilinear", align_corners=False))
    assert memory.empty(LARGE).shape == LARGE


def test_reuse_freed_memory_respects_a_malloc_setting_in_the_environment(monkeypatch):
    monkeypatch.setattr(memory, "_reuse_done", False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert memory.reuse_freed_memory() is False


def test_reuse_freed_memory_applies_on_glibc(monkeypatch):
    import platform
    import sys

    monkeypatch.setattr(memory, "_reuse_done", False)
    for name in memory._ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert memory.reuse_freed_memory() is expected
    assert memory.reuse_freed_memory() is expected  # idempotent
