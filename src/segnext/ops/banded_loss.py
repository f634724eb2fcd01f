"""The training loss computed in bands of label rows, with its gradient (a fast path of
`segnext.segmentation_loss`, selected with `banded=True`).

The official head resizes the stride-8 logits bilinearly to the label size and takes the
cross-entropy there. Written that way, a batch of two 512x512 ADE20K crops materialises 150 x 2 x
512 x 512 scores three times over (resized logits, log-softmax, and their gradients: 315 MB each),
which on a CPU dominates the training step. Here the logits are resized along the width once
(stride-8 rows, small), then each band of label rows gets its scores by the vertical interpolation,
their log-sum-exp, the loss, and at once its gradient (softmax minus one-hot), which is folded back
to the stride-8 grid before the next band. Nothing of full resolution and full class count exists
at any time. The interpolation weights are those of `F.interpolate` itself
(`segnext.ops.resize.bilinear_weights`), so loss and gradient equal resize-then-cross-entropy to
float rounding.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .resize import bilinear_weights, contributing_rows

# Scores per band: about this many bytes (a few label rows of the batch), to stay in the cache.
BAND_BYTES = 4 << 20


def banded_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int,
                         weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """sum over label pixels of weight[label] * cross-entropy(resize(logits), label), ignored pixels
    excluded: the same value and gradient as `F.cross_entropy(F.interpolate(logits, labels' size),
    labels, weight, ignore_index, reduction="sum")`, computed in bands. Labels must be valid (int64,
    class ids or ignore_index); `segnext.segmentation_loss(..., banded=True)` checks them."""
    return _BandedCrossEntropy.apply(logits, labels, ignore_index, weight)


class _BandedCrossEntropy(torch.autograd.Function):
    """sum over pixels of weight[label] * CE(resize(logits), label), and its gradient, in bands.

    The gradient is computed in the forward (it needs the same softmax) and only scaled in the
    backward; it is skipped when the logits do not require one.
    """

    @staticmethod
    def forward(ctx, logits, labels, ignore_index, weight):
        batch, classes, height, width = logits.shape
        out_height, out_width = labels.shape[-2:]
        # Width first, on the small grid; then rows are contiguous (W * K) vectors, classes innermost.
        wide = F.interpolate(logits.float().contiguous(memory_format=torch.channels_last), size=(height, out_width),
                             mode="bilinear", align_corners=False)
        rows = wide.permute(0, 2, 3, 1).reshape(batch, height, out_width * classes)
        vertical = bilinear_weights(height, [out_height], logits.device)  # (h, H)
        first_row, end_row = (rows_.tolist() for rows_ in contributing_rows(vertical))
        vertical = vertical.t().contiguous()  # (H, h)

        needs_grad = logits.requires_grad
        grad_rows = torch.zeros_like(rows) if needs_grad else None
        total = torch.zeros((), dtype=torch.float64, device=logits.device)
        band = max(1, BAND_BYTES // (4 * batch * out_width * classes))
        for top in range(0, out_height, band):
            bottom = min(top + band, out_height)
            lo, hi = min(first_row[top:bottom]), max(end_row[top:bottom])
            weights = vertical[top:bottom, lo:hi]
            scores = torch.matmul(weights, rows[:, lo:hi]).view(batch, bottom - top, out_width, classes)
            band_labels = labels[:, top:bottom]
            valid = band_labels != ignore_index
            target = torch.where(valid, band_labels, 0).unsqueeze(-1)
            pixel_weight = valid.float() if weight is None else torch.where(valid, weight[target[..., 0]], 0.0)
            picked = scores.gather(-1, target)
            peak = scores.amax(-1, keepdim=True)
            exp = scores.sub_(peak).exp_()  # in place: `scores` is not needed any more
            sum_exp = exp.sum(-1, keepdim=True)
            per_pixel = (sum_exp.log() + peak - picked)[..., 0]  # log-sum-exp minus the target score
            total += (per_pixel * pixel_weight).sum(dtype=torch.float64)
            if needs_grad:
                grad = exp.div_(sum_exp)  # softmax
                grad.scatter_add_(-1, target, torch.full_like(picked, -1.0))  # minus one-hot
                grad.mul_(pixel_weight.unsqueeze(-1))
                band_grad = grad_rows[:, lo:hi]
                band_grad.baddbmm_(weights.t().expand(batch, -1, -1), grad.view(batch, bottom - top, -1))
        if needs_grad:
            grad_wide = grad_rows.view(batch, height, out_width, classes).permute(0, 3, 1, 2)
            grad_logits = torch.ops.aten.upsample_bilinear2d_backward(
                grad_wide, [height, out_width], [batch, classes, height, width], False, None, None)
            ctx.save_for_backward(grad_logits)
        ctx.logits_dtype = logits.dtype
        return total.float()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad_logits,) = ctx.saved_tensors
        # Scale first, then cast: a GradScaler's factor must not meet float16 underflow.
        return (grad_logits * grad_output).to(ctx.logits_dtype), None, None, None
