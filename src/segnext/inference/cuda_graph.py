"""`CudaGraphSegNeXt`: a SegNeXt whose forward is replayed from CUDA graphs, one per input shape.

At batch 1 a SegNeXt forward on a large GPU is bound by launching its few hundred small kernels, not
by computing them (eight times the pixels cost 1.5 times the time). A CUDA graph records the kernels
of one forward once and launches them all with one call. What makes SegNeXt capturable is the fixed
NMF bases (an int `nmf_seed`): the forward then draws nothing at random and never waits for the CPU.

How it runs: the first call with a new input shape (and dtype) runs the forward twice on a side
stream (warm-up: cuDNN picks its algorithms, the allocator settles), then records it into a graph
whose input and output live in buffers of their own. Every call copies the images into the input
buffer, replays the graph and returns a copy of the output. The graphs of all shapes share one
memory pool; the least recently used is dropped beyond `max_graphs`. A replay launches exactly the
kernels the eager forward runs, so the logits (and labels) are the eager model's, bit for bit.

The wrapped model is the eager reference (in `segnext.inference.backends` the folded model,
`SegNeXt.reparameterize()`); anything a graph cannot serve (a CPU tensor, gradients wanted) runs it
eagerly.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CapturedForward:
    """One recorded forward: `replay()` reads `input` and writes `output`."""

    input: torch.Tensor
    output: torch.Tensor
    replay: Callable[[], None]


class CudaGraphSegNeXt(nn.Module):
    """`forward_logits` / `forward` of `model` replayed from CUDA graphs (see the module docstring).

    Args:
        model: a SegNeXt (or its folded form) on a CUDA device, with an int `nmf_seed`, for inference.
        max_graphs: input shapes kept recorded at a time.
        autocast_dtype: record the forward under `torch.autocast` to this dtype (None: float32); the
            logits come back as float32.
    """

    inference_only = True  # train(True) is refused: nothing for `evaluation_mode` to switch

    def __init__(self, model: nn.Module, max_graphs: int = 8, autocast_dtype: Optional[torch.dtype] = None):
        super().__init__()
        if getattr(model, "nmf_seed", None) is None:
            raise ValueError("a CUDA graph needs fixed NMF bases: create the model with an int nmf_seed (the default), "
                             "not nmf_seed=None")
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.model = model.eval()
        self.max_graphs = max_graphs
        self.autocast_dtype = autocast_dtype
        self.graphs: OrderedDict[Tuple, CapturedForward] = OrderedDict()
        self.captures = 0  # graphs recorded so far (a new shape, or one dropped and seen again)
        self._pool = None
        self._bases: Optional[torch.Tensor] = None
        self._lock = threading.Lock()

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def config(self):
        return self.model.config

    @property
    def nmf_seed(self) -> Optional[int]:
        return self.model.nmf_seed

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("a CUDA-graph SegNeXt is for inference only; train the model that create_model returns")
        return super().train(False)

    def forward_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Stride-8 logits (float32), from the graph recorded for this input shape."""
        if not self._recordable(images):
            return self._eager(images)
        with self._lock:
            key = (tuple(images.shape), images.dtype, images.device, images.stride())
            captured = self.graphs.get(key)
            if captured is None:
                captured = self._capture(images)
                self.graphs[key] = captured
                while len(self.graphs) > self.max_graphs:
                    self.graphs.popitem(last=False)
            else:
                self.graphs.move_to_end(key)
            captured.input.copy_(images)
            captured.replay()
            return captured.output.clone()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input size: SegNeXt's final bilinear resize, in float32."""
        logits = self.forward_logits(images)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    @staticmethod
    def _recordable(images: torch.Tensor) -> bool:
        return images.device.type == "cuda" and not torch.is_grad_enabled()

    def _eager(self, images: torch.Tensor) -> torch.Tensor:
        # No autocast weight cache: a recorded graph must not point at cast copies freed after the call.
        precision = (torch.autocast(images.device.type, dtype=self.autocast_dtype, cache_enabled=False)
                     if self.autocast_dtype is not None else contextlib.nullcontext())
        with precision:
            logits = self.model.forward_logits(images, self._device_bases(images.device))
        return logits.float()

    def _device_bases(self, device: torch.device) -> Optional[torch.Tensor]:
        """The model's fixed NMF bases, moved to the device once (a copy from the CPU cannot be recorded);
        None for a decoder without NMF."""
        if self.model.nmf is None:
            return None
        if self._bases is None or self._bases.device != device:
            self._bases = self.model.nmf.seeded_bases(self.model.config.ham_channels).to(device)
        return self._bases

    @torch.no_grad()
    def _capture(self, images: torch.Tensor) -> CapturedForward:
        static_input = torch.empty_strided(images.shape, images.stride(), dtype=images.dtype, device=images.device)
        static_input.copy_(images)
        self._device_bases(images.device)
        side = torch.cuda.Stream(images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up, outside the graph
                self._eager(static_input)
        torch.cuda.current_stream(images.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_output = self._eager(static_input)
        self._pool = graph.pool()
        self.captures += 1
        return CapturedForward(static_input, static_output, graph.replay)

    def extra_repr(self) -> str:
        return f"max_graphs={self.max_graphs}, autocast_dtype={self.autocast_dtype}, recorded={len(self.graphs)}"
