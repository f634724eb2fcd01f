"""`optimize_for_inference`: a faster, inference-only copy of a SegNeXt with the same outputs.

Layered on the model, each layer exact in real arithmetic (float32 outputs move by rounding only):

1. `SegNeXt.reparameterize()`, the modules' own folding: BatchNorms and layer scales into the
   convolutions, the decoder's squeeze conv split by stage (it then runs before the resize).
2. Channels-last activations (the input is converted; every convolution keeps the format of its
   input), where oneDNN's convolutions are fastest on CPU.
3. On CPU, oneDNN convolutions with post-op fusion (`fuse_convolutions`; the only place in
   segnext that calls PyTorch's private `torch.ops.mkldnn` ops, and only when they exist): every
   convolution runs as a oneDNN call on the channels-last map, and one followed by GELU or ReLU, or
   whose output is only added to or multiplied with another tensor (the MSCA branch sums, the
   attention product, the residual additions), runs together with that operation instead of in
   two or three passes over memory. The convolutions are found by tracing the reparameterized
   model with torch.fx, so the model's own forward is the one definition of the network.
4. On CPU, the MLPs of the large stages run in bands of rows (`_mlp_with_residual`, bit-identical
   to one pass), the full-size logits of `forward` are written into a reused buffer
   (`buffer_pool`), and a batch runs one image at a time (its activations stay in cache; every
   image's result is the same either way, as the NMF runs per image and fixed bases are shared by
   the batch).

Elsewhere (CUDA, tracing for ONNX, torch.compile) the same object runs the reparameterized model
with standard operators.
"""

from __future__ import annotations

import copy
import operator
from typing import Optional

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..compat import is_compiling
from ..models.mscan import Mlp, channel_layer_norm
from ..models.nmf import NMF2D
from ..models.segnext import SegNeXt
from . import buffer_pool

__all__ = ["optimize_for_inference", "OptimizedSegNeXt", "fuse_convolutions", "ONEDNN_FUSION"]


def _onednn_fusion_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN_FUSION = _onednn_fusion_available()


def _standard_ops_required() -> bool:
    """While exporting or compiling: those need standard aten ops, not oneDNN's private ones."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or is_compiling())


class OptimizedSegNeXt(nn.Module):
    """What `optimize_for_inference` returns: SegNeXt's `forward` and `forward_logits`, eval only.

    `model` is the reparameterized SegNeXt (standard operators); `fused` its oneDNN-fused graph
    (None where oneDNN fusion is unavailable), which shares its weights.
    """

    inference_only = True  # train(True) is refused: nothing for `evaluation_mode` to switch

    def __init__(self, model: SegNeXt, fused: Optional[fx.GraphModule], channels_last: bool):
        super().__init__()
        self.model = model
        self.fused = fused
        self.channels_last = channels_last
        self.config = model.config

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def nmf_seed(self) -> Optional[int]:
        return self.model.nmf_seed

    @property
    def nmf(self) -> Optional[NMF2D]:
        return self.model.nmf

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("an optimized SegNeXt is for inference only (BatchNorm is folded); "
                               "train the model that create_model returns")
        return super().train(False)

    def forward_logits(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits at stride 8 (channels-last in memory when channels_last)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
            if images.shape[0] == 1 and images.stride(0) != images[0].numel():
                # channels-last by PyTorch's rule (a size-1 dimension's stride is free), e.g. a
                # permuted HWC image, but oneDNN takes a much slower path on it: standard strides
                images = images.clone(memory_format=torch.channels_last)
        use_fused = (self.fused is not None and images.device.type == "cpu" and images.dtype == torch.float32
                     and not _standard_ops_required())
        if not use_fused:
            return self.model.forward_logits(images, nmf_bases)
        if images.shape[0] == 1:
            return self.fused(images, nmf_bases)
        outputs = []
        for index in range(images.shape[0]):
            bases = nmf_bases[index:index + 1] if nmf_bases is not None and nmf_bases.shape[0] > 1 else nmf_bases
            outputs.append(self.fused(images[index:index + 1], bases))
        return torch.cat(outputs)

    def forward(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        """images (B, 3, H, W), normalised -> logits (B, num_classes, H, W)."""
        logits = self.forward_logits(images, nmf_bases)
        if logits.device.type != "cpu" or _standard_ops_required():
            return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)
        return buffer_pool.resize_bilinear(logits, images.shape[2:])  # F.interpolate, into a reused buffer


@torch.no_grad()
def optimize_for_inference(model: SegNeXt, channels_last: bool = True, compile: bool = False) -> nn.Module:
    """A faster, inference-only copy of `model` with the same outputs (the model is not modified).

    Args:
        model: a SegNeXt from `segnext.create_model`.
        channels_last: keep activations NHWC (fastest with oneDNN on CPU).
        compile: wrap the result in `torch.compile` (off by default: long compile times on CPU and
            a recompile for every new input size).
    """
    if isinstance(model, OptimizedSegNeXt):
        return model
    if not isinstance(model, SegNeXt):
        raise TypeError(f"optimize_for_inference expects a segnext SegNeXt model, got {type(model).__name__}")
    reparameterized = copy.deepcopy(model).reparameterize().requires_grad_(False)
    fused = None
    if ONEDNN_FUSION and next(model.parameters()).device.type == "cpu":
        fused = fuse_convolutions(reparameterized)
    optimized = OptimizedSegNeXt(reparameterized, fused, channels_last).eval()
    return torch.compile(optimized, dynamic=False) if compile else optimized


# --------------------------------------------------------------------------------------------
# oneDNN post-op fusion of a traced graph


class _StrideEightLogits(nn.Module):
    def __init__(self, model: SegNeXt):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, nmf_bases: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model.forward_logits(images, nmf_bases)


class _Tracer(fx.Tracer):
    """Records the model's operators; the NMF and the stage LayerNorm run as they are written, and
    the MLPs stay single nodes (they get their own fused form, `_mlp_with_residual`)."""

    def __init__(self):
        super().__init__(autowrap_functions=(channel_layer_norm,))

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, (NMF2D, Mlp)) or super().is_leaf_module(module, qualified_name)


def fuse_convolutions(model: SegNeXt) -> fx.GraphModule:
    """`model.forward_logits` as a graph whose convolutions are oneDNN calls, each with its post-op
    fused where there is one: GELU/ReLU after it, or an addition or multiplication with one other
    tensor that is the only use of its output. For a reparameterized model on CPU; the graph shares
    the model's weights."""
    root = _StrideEightLogits(model)
    graph = _Tracer().trace(root)
    modules = dict(root.named_modules())
    for node in list(graph.nodes):
        conv = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros":
            continue
        user = next(iter(node.users)) if len(node.users) == 1 else None
        activation = _activation(user, modules) if user is not None else None
        other, binary = _binary_operand(user, node) if user is not None and activation is None else (None, None)
        with graph.inserting_before(node):
            weight = graph.get_attr(f"{node.target}.weight")
            bias = graph.get_attr(f"{node.target}.bias") if conv.bias is not None else None
            geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        with graph.inserting_before(user if other is not None or activation is not None else node):
            if other is not None:
                fused = graph.call_function(_conv_binary, (node.args[0], other, weight, bias, *geometry, binary))
            else:
                fused = graph.call_function(_conv_unary, (node.args[0], weight, bias, *geometry, activation or "none"))
        if other is not None or activation is not None:
            user.replace_all_uses_with(fused)
            graph.erase_node(user)
        else:
            node.replace_all_uses_with(fused)
        graph.erase_node(node)
    for node in list(graph.nodes):  # x + mlp(x) -> one _mlp_with_residual call
        mlp = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(mlp, Mlp):
            continue
        user = next(iter(node.users)) if len(node.users) == 1 else None
        other, kind = _binary_operand(user, node) if user is not None else (None, None)
        if kind != "add" or other is not node.args[0]:
            raise NotImplementedError("fuse_convolutions expects every MLP in a residual x + mlp(x)")
        with graph.inserting_before(user):
            fused = graph.call_function(_mlp_with_residual, (node.args[0], graph.get_attr(node.target)))
        user.replace_all_uses_with(fused)
        graph.erase_node(user)
        graph.erase_node(node)
    graph.lint()
    return fx.GraphModule(root, graph)


MLP_BAND_BYTES = 4 << 20  # hidden-map slice per band of rows


def _mlp_with_residual(x: torch.Tensor, mlp: Mlp) -> torch.Tensor:
    """x + fc2(GELU(dw3x3(fc1(x)))) with fused oneDNN calls, in bands of rows when the hidden map
    is large.

    The hidden map is 8x (4x) wider than the block: 16 MiB for SegNeXt-T's first stage at 512x512.
    Allocated and freed three times a block, maps that large are unmapped by glibc's default
    malloc and page-faulted in again every time; bands of rows whose hidden slice is about
    `MLP_BAND_BYTES` avoid that. Each band reads one extra row above and below for the 3x3
    depthwise conv, so every output row sees exactly the inputs it would see unbanded: the values
    are the same, bit for bit.
    """
    def fc1(rows):
        return _conv_unary(rows, mlp.fc1.weight, mlp.fc1.bias, [0, 0], [1, 1], [1, 1], 1, "none")

    def hidden(rows):
        dw = mlp.dwconv.dwconv
        return _conv_unary(fc1(rows), dw.weight, dw.bias, [1, 1], [1, 1], [1, 1], dw.groups, "gelu")

    def fc2_plus(hidden_rows, residual):
        return _conv_binary(hidden_rows, residual, mlp.fc2.weight, mlp.fc2.bias, [0, 0], [1, 1], [1, 1], 1, "add")

    height, width = x.shape[2], x.shape[3]
    band_rows = max(1, MLP_BAND_BYTES // (width * mlp.fc1.out_channels * x.element_size()))
    if height <= band_rows or not x.is_contiguous(memory_format=torch.channels_last):
        return fc2_plus(hidden(x), x)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    for top in range(0, height, band_rows):
        bottom = min(top + band_rows, height)
        halo_top, halo_bottom = max(top - 1, 0), min(bottom + 1, height)
        band = hidden(x[:, :, halo_top:halo_bottom])[:, :, top - halo_top:bottom - halo_top]
        out[:, :, top:bottom] = fc2_plus(band, x[:, :, top:bottom])
    return out


def _activation(user: fx.Node, modules) -> Optional[str]:
    """"gelu"/"relu" when `user` applies exactly that to its single input, else None."""
    if user.op == "call_module":
        module = modules.get(user.target)
        if isinstance(module, nn.GELU) and module.approximate == "none":
            return "gelu"  # oneDNN's "gelu" with algorithm "none" is the exact (erf) GELU
        if isinstance(module, nn.ReLU):
            return "relu"
    if user.op == "call_function" and user.target in (F.relu, torch.relu) and len(user.args) == 1 \
            and not user.kwargs.get("inplace", False):
        return "relu"
    return None


def _binary_operand(user: fx.Node, conv_node: fx.Node):
    """(the other tensor, "add"/"mul") when `user` is `conv_node + other` or `conv_node * other`."""
    kinds = {operator.add: "add", torch.add: "add", operator.mul: "mul", torch.mul: "mul"}
    if user.op != "call_function" or user.target not in kinds or user.kwargs or len(user.args) != 2:
        return None, None
    first, second = user.args
    other = second if first is conv_node else first
    if not isinstance(other, fx.Node) or other is conv_node:
        return None, None
    return other, kinds[user.target]


def _conv_unary(x, weight, bias, padding, stride, dilation, groups, activation):
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, groups,
                                                   activation, [], "none")


def _conv_binary(x, other, weight, bias, padding, stride, dilation, groups, kind):
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.ops.mkldnn._convolution_pointwise.binary(x, other.contiguous(memory_format=layout), weight, bias,
                                                          padding, stride, dilation, groups, kind, None, None, [],
                                                          None)
