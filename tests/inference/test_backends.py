"""The inference backends and the device table: which backend a device gets, what each returns, and
the CUDA-graph wrapper's bookkeeping (one recording per input shape, least recently used dropped,
outputs that are copies). The recording itself needs a GPU: tests/inference/test_cuda.py."""

from __future__ import annotations

import pytest
import torch

import segnext
from segnext.devices import DEVICE_DEFAULTS, device_defaults
from segnext.inference import OptimizedSegNeXt
from segnext.inference.backends import inference_model, resolve_backend
from segnext.inference.cuda_graph import CapturedForward, CudaGraphSegNeXt


@pytest.fixture(scope="module")
def model():
    return segnext.create_model("segnext_t", 5).eval()


def test_the_device_table_decides_the_defaults():
    assert device_defaults("cpu").inference_backend == "optimized" and device_defaults("cpu").train_channels_last
    assert device_defaults(torch.device("cuda", 1)) is DEVICE_DEFAULTS["cuda"]
    assert not device_defaults("cuda").train_channels_last and device_defaults("cuda").train_amp_dtype == "fp16"
    assert device_defaults("cpu").train_banded_loss and not device_defaults("cuda").train_banded_loss
    assert device_defaults("xpu").inference_backend == "eager"  # a device not measured: the plain model
    assert resolve_backend("auto", "cpu") == "optimized" and resolve_backend("auto", "cuda:0") == "eager"


def test_backends_and_their_errors(model):
    assert inference_model(model, "eager") is model
    assert isinstance(inference_model(model, "auto"), OptimizedSegNeXt)  # the CPU's default
    with pytest.raises(ValueError, match="cuda_graph backend needs a CUDA device, not cpu"):
        inference_model(model, "cuda_graph")
    with pytest.raises(ValueError, match="unknown inference backend 'fast'"):
        resolve_backend("fast", "cpu")
    with pytest.raises(ValueError, match="cuda_graph backend needs a CUDA device"):
        segnext.Segmenter.from_checkpoint("no/such/model", device="cpu", backend="cuda_graph")


def test_segmenter_backend_and_the_old_optimize_switch(tmp_path, model):
    folder = segnext.save_model(model, tmp_path / "m")
    assert isinstance(segnext.Segmenter.from_checkpoint(folder, device="cpu").model, OptimizedSegNeXt)
    assert isinstance(segnext.Segmenter.from_checkpoint(folder, device="cpu", backend="eager").model, segnext.SegNeXt)
    assert isinstance(segnext.Segmenter.from_checkpoint(folder, device="cpu", optimize=False).model, segnext.SegNeXt)


class RecordedOnTheCpu(CudaGraphSegNeXt):
    """The wrapper's bookkeeping with a stand-in for the recording: CPU tensors count as recordable and
    'replay' runs the model from the input buffer into the output buffer, as a graph would."""

    @staticmethod
    def _recordable(images):
        return not torch.is_grad_enabled()

    def _capture(self, images):
        static_input = images.clone()
        static_output = self._eager(static_input)
        self.captures += 1
        return CapturedForward(static_input, static_output,
                               lambda: static_output.copy_(self._eager(static_input)))


def test_one_recording_per_shape_and_the_least_recently_used_dropped(model):
    graphed = RecordedOnTheCpu(model, max_graphs=2)
    a, b, c = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 96), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for images in (a, b, a, a, b):
            torch.testing.assert_close(graphed.forward_logits(images), model.forward_logits(images))
        assert graphed.captures == 2
        graphed.forward_logits(c)  # a third shape: the least recently used (a) goes
        assert graphed.captures == 3 and len(graphed.graphs) == 2
        graphed.forward_logits(a)
        assert graphed.captures == 4
        first = graphed.forward_logits(a)
        second = graphed.forward_logits(a * 0)
    assert not torch.equal(first, second)  # each call returns its own copy, not the shared buffer


def test_the_wrapper_needs_fixed_bases_and_runs_eagerly_off_the_gpu(model):
    with pytest.raises(ValueError, match="fixed NMF bases"):
        CudaGraphSegNeXt(segnext.create_model("segnext_t", 5, nmf_seed=None))
    graphed = CudaGraphSegNeXt(model)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(graphed(images), model(images))  # a CPU tensor: the eager model
    assert graphed.captures == 0 and graphed.num_classes == 5
    with pytest.raises(RuntimeError, match="inference only"):
        graphed.train()
