"""What each kind of device runs by default, in one table, from measurements (BENCHMARKS.md).

Every choice that depends on the device is read from `DEVICE_DEFAULTS` by the code that makes it:
training's memory format, mixed-precision type and loss path (`segnext.train`), the inference backend of
`Segmenter`, `segnext predict`, `eval`, `serve` and `benchmark` (`segnext.inference.backends`), and
cuDNN's autotuning (applied by the command line, as it is process-wide: `segnext.runtime`). A config
key or a command-line option given by the user always wins over the table.

Where the numbers come from:
- cpu: `benchmarks/vs_mmseg.py`, `benchmarks/profile_train_step.py` on 2 cores: channels-last
  training steps 0.45-0.48x MMSegmentation's; the oneDNN-fused optimized backend 0.23-0.34x its
  inference latency; bfloat16 autocast is slower than float32 on CPUs without bfloat16 instructions
  and 0.85-0.91x a training step's time on one with them (AMD Zen 5): `train.amp` stays off by
  default (the official recipe is float32) and gives bf16 when asked for; the banded loss (resize +
  cross-entropy in bands of label rows that stay in the cache) is what makes the CPU step fast;
  test-time labels by the exact label-only upsampling (`benchmarks/vs_mmseg.py`: faster than resize
  + argmax, and small). No reading processes at test time: the model takes nearly all of an image's
  time, and a reader takes cores from it (`benchmarks/bench_predict.py`).
- cuda: one H200 (PyTorch 2.11, CUDA 13), recorded in BENCHMARKS.md: the training step in NCHW
  0.80x (T) / 0.82x (B) MMSegmentation's with fp16 autocast, in channels-last 0.91x / 0.98x, so NCHW;
  the optimized backend (the CPU one) was slower than eager (49 vs 43 ms, B at 1024x2048), so eager
  until the CUDA-graph backend is measured there (`benchmarks/gpu/`); cuDNN autotuning not yet
  measured, so off (PyTorch's default). The loss: the plain reference (interpolate + cross-entropy,
  a few large kernels) until measured: the banded loss is a CPU cache blocking that on a GPU would
  launch some fifteen small kernels per band (at 150 classes and 16 crops of 512x512, one label row
  a band: thousands a step). Test-time labels: the plain resize + argmax on the GPU, not the CPU's
  memory-efficient path (which copies the logits to the CPU and upsamples labels there), up to a
  budget of full-resolution scores (`segnext.inference.segment.FULL_SCORES_BUDGET`). Two reading
  processes at test time (decoding rarely takes longer than the model; not yet measured there).
- mps: not measured; PyTorch's defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict

INFERENCE_BACKENDS = ("eager", "optimized", "cuda_graph")


@dataclass(frozen=True)
class DeviceDefaults:
    """The defaults of one kind of device.

    train_channels_last: NHWC model and input in training (`train.channels_last: null` follows it).
    train_amp_dtype: the reduced precision of `train.amp: true` ("bf16" or "fp16"; fp16 gets a
        gradient scaler).
    inference_backend: what inference runs by default: "eager" (the model as built),
        "optimized" (`optimize_for_inference`: folded, channels-last, oneDNN-fused on CPU) or
        "cuda_graph" (the folded model replayed from CUDA graphs, one per input shape).
    cudnn_benchmark: let cuDNN time its algorithms for each new input shape.
    train_banded_loss: the training loss in bands of label rows (`loss.banded: null` follows it).
    memory_efficient_labels: test-time labels without full-resolution class scores
        (`segnext.inference.segment`; what `Segmenter` and `evaluate` do by default).
    reading_workers: processes that read and resize the next images while the model runs
        (`segnext predict`, `eval`, the evaluations during training); see `reading_workers`.
    """

    train_channels_last: bool
    train_amp_dtype: str
    inference_backend: str
    cudnn_benchmark: bool
    train_banded_loss: bool = False
    memory_efficient_labels: bool = False
    reading_workers: int = 2


DEVICE_DEFAULTS: Dict[str, DeviceDefaults] = {
    "cpu": DeviceDefaults(train_channels_last=True, train_amp_dtype="bf16", inference_backend="optimized",
                          cudnn_benchmark=False, train_banded_loss=True, memory_efficient_labels=True,
                          reading_workers=0),
    "cuda": DeviceDefaults(train_channels_last=False, train_amp_dtype="fp16", inference_backend="eager",
                           cudnn_benchmark=False),
    "mps": DeviceDefaults(train_channels_last=False, train_amp_dtype="fp16", inference_backend="eager",
                          cudnn_benchmark=False),
}


def reading_workers(images: int, device) -> int:
    """The reading processes for `images` images on `device`: its table's number, never more than
    the cores left beside the main process, none for a single image (starting one costs more)."""
    wanted = device_defaults(device).reading_workers
    return max(0, min(wanted, (os.cpu_count() or 1) - 1, images - 1))


def device_defaults(device) -> DeviceDefaults:
    """The defaults of `device` (a torch.device or a name such as "cuda:1"); an unknown kind gets
    the CPU's choices of memory format and PyTorch's plain eager model."""
    kind = str(getattr(device, "type", device)).split(":")[0]
    if kind in DEVICE_DEFAULTS:
        return DEVICE_DEFAULTS[kind]
    return DeviceDefaults(train_channels_last=False, train_amp_dtype="fp16", inference_backend="eager",
                          cudnn_benchmark=False)
