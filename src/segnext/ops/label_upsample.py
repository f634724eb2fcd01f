"""Label maps at full resolution without full-resolution score maps for every class.

`upsampled_argmax(logits, sizes)` returns exactly what

    for size in sizes:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    labels = logits.argmax(1)

returns, with memory that grows with the number of output pixels, not with classes x pixels, and
mostly without computing the per-class maps at all. `segnext.inference.segment(...,
memory_efficient=True)` uses it to resize predictions to the original image size (150 ADE20K classes
on an 8000 x 6000 photo would be 29 GB of float32 scores).

Why the result is identical, not an approximation:

1. A bilinear output pixel is a combination, with non-negative weights summing to one, of a small
   window of input pixels (at most 2 x 2 per resize, 3 x 3 for two chained resizes). Which window
   is measured, not assumed: resizing one-hot rows (and columns) with `F.interpolate` itself shows
   which input rows reach each output row.
2. If one class is the strict argmax at every pixel of the window, by a margin larger than the
   rounding error of the resize (bounded by a few float32 ulps of the largest |logit|; we require
   1e-5 x max|logit|, hundreds of times that), it is the argmax of every combination: its label is
   known without computing any score. This covers all pixels away from class boundaries.
3. The other pixels get their scores from `F.interpolate` itself, restricted to the classes that
   can win there (a class whose window maximum is below another class's window minimum, minus the
   margin, cannot). `F.interpolate` computes every channel of an NCHW tensor by the same code
   independently of the other channels, so a subset of channels gives bit-identical scores; they are
   processed in chunks within `memory_limit` bytes and compared with the same first-index-wins
   tie rule as `argmax`.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from .resize import bilinear_weights, contributing_rows

# How much larger than any float32 resize rounding error a margin must be to be trusted: the error
# of a bilinear resize (two chained ones) is below ~10 float32 ulps (1.2e-7) of the largest |value|.
MARGIN_FACTOR = 1e-5
DEFAULT_MEMORY_LIMIT = 512 * 2**20  # bytes of full-resolution class scores held at once


def resize_chain(logits: torch.Tensor, sizes: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """The reference computation: (B, K, h, w) logits resized through `sizes` in turn."""
    for size in sizes:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


def _contributing_window(in_size: int, sizes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """For each output index of a chain of 1-D resizes (along the height), the first input index
    that contributes and how many further ones do (window = first .. first + extra)."""
    first, end = contributing_rows(bilinear_weights(in_size, sizes))
    return first, end - 1 - first


def _uniform_blocks(labels: torch.Tensor, trusted: torch.Tensor, max_rows: int, max_cols: int) -> torch.Tensor:
    """(max_rows+1, max_cols+1, h, w): the label of block [r..r+dr, c..c+dc] when every pixel in it
    has that label with a trusted margin, else -1."""
    h, w = labels.shape
    out = torch.full((max_rows + 1, max_cols + 1, h, w), -1, dtype=torch.int64)
    rows_agree = trusted.clone()  # block of one row so far
    for dr in range(max_rows + 1):
        if dr > 0:
            same = torch.zeros_like(trusted)
            same[: h - dr] = (labels[dr:] == labels[: h - dr]) & trusted[dr:]
            rows_agree &= same
        block_agree = rows_agree.clone()
        for dc in range(max_cols + 1):
            if dc > 0:
                same = torch.zeros_like(trusted)
                same[:, : w - dc] = rows_agree[:, dc:] & (labels[:, dc:] == labels[:, : w - dc])
                block_agree &= same
            out[dr, dc] = torch.where(block_agree, labels, -1)
    return out


def class_argmax(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """`scores.argmax(dim)`, the same indices (the first of equal maxima; NaN counts as the maximum),
    taken with `max`: PyTorch's argmax over a dimension other than the last is several times slower
    on the CPU (BENCHMARKS.md)."""
    return scores.max(dim).indices


def upsampled_argmax(logits: torch.Tensor, sizes: Sequence[Tuple[int, int]],
                     memory_limit: int = DEFAULT_MEMORY_LIMIT) -> torch.Tensor:
    """argmax over classes of `logits` (K, h, w) resized through `sizes`; int64 (H, W) labels."""
    if logits.dim() != 3:
        raise ValueError(f"expected (K, h, w) logits, got shape {tuple(logits.shape)}")
    logits = logits.detach().float().cpu().contiguous()
    num_classes, h, w = logits.shape
    sizes = [tuple(int(v) for v in s) for s in sizes]
    # Resizing to the current size copies exactly: drop those steps.
    chain: List[Tuple[int, int]] = []
    current = (h, w)
    for size in sizes:
        if size != current:
            chain.append(size)
            current = size
    out_h, out_w = current
    if num_classes == 1:
        return torch.zeros((out_h, out_w), dtype=torch.int64)
    if not chain:
        return class_argmax(logits, 0)
    largest = float(logits.abs().max())
    if largest != largest or largest == float("inf"):  # NaN/inf break the margin argument: the reference way
        return resize_chain(logits[None], chain)[0].argmax(0)

    # Low-resolution winner and its margin over the runner-up (reductions over the outer class
    # dimension; topk there would be slow).
    labels_low = class_argmax(logits, 0)
    best = logits.gather(0, labels_low[None])[0]
    runner_up = logits.scatter(0, labels_low[None], -float("inf")).amax(0)
    threshold = MARGIN_FACTOR * max(1.0, largest)
    trusted = (best - runner_up) > threshold

    row_first, row_extra = _contributing_window(h, [s[0] for s in chain])
    col_first, col_extra = _contributing_window(w, [s[1] for s in chain])
    max_rows, max_cols = int(row_extra.max()), int(col_extra.max())
    blocks = _uniform_blocks(labels_low, trusted, max_rows, max_cols)
    # Per output row, the block row its window starts at; then per output column likewise.
    block_rows = blocks.permute(0, 2, 1, 3)[row_extra, row_first]  # (H, max_cols+1, w)
    labels = block_rows[:, col_extra, col_first]  # (H, W)

    uncertain = labels < 0
    if not bool(uncertain.any()):
        return labels

    candidates = _candidate_classes(logits, labels_low, uncertain, row_first, col_first, max_rows, max_cols, threshold)

    # Exact scores of the candidate classes at the uncertain pixels, a chunk of classes at a time.
    positions = uncertain.view(-1).nonzero().squeeze(1)
    pixels = out_h * out_w
    bytes_per_class = 4 * (sum(a * b for a, b in chain) + pixels + positions.numel())
    chunk = max(1, min(len(candidates), memory_limit // max(1, bytes_per_class)))
    best_value = torch.full((positions.numel(),), -float("inf"))
    best_class = torch.zeros(positions.numel(), dtype=torch.int64)
    for start in range(0, len(candidates), chunk):
        classes = candidates[start:start + chunk]
        scores = resize_chain(logits[classes][None], chain)[0].reshape(len(classes), pixels)
        if 2 * positions.numel() > pixels:
            # Mostly uncertain (class boundaries everywhere, as with untrained weights): reducing
            # every pixel is cheaper than gathering the uncertain ones first, and gives the same
            # values there.
            value, which = scores.max(0)  # the first maximal class of the chunk, as argmax
            value, which = value[positions], which[positions]
        else:
            value, which = scores.index_select(1, positions).max(0)
        better = value > best_value  # strict: an earlier (smaller) class keeps a tie, as argmax
        best_value = torch.where(better, value, best_value)
        best_class = torch.where(better, classes[which], best_class)
    labels.view(-1)[positions] = best_class
    return labels


def _candidate_classes(logits, labels_low, uncertain, row_first, col_first, max_rows, max_cols, threshold):
    """Classes that can be the argmax at some uncertain output pixel (sorted).

    Every output pixel is a non-negative, sum-one combination of the low-resolution pixels of its
    window, so any class's score there lies between its window minimum and maximum, and the best
    score is at least max over classes of the window minimum (LB). Near a boundary between the
    winners A and B, each is low on the other side, so that bound is weak; max(A, B) is also at
    least half the window minimum of A + B, which is high on both sides. A class whose window
    maximum is below LB (minus the rounding margin) can never win there.
    """
    num_classes, h, w = logits.shape
    # Which low-resolution blocks the uncertain pixels start in.
    block_rows = torch.zeros((h, uncertain.shape[1]), dtype=torch.int32)
    block_rows.index_add_(0, row_first, uncertain.to(torch.int32))
    uncertain_blocks = torch.zeros((h, w), dtype=torch.int32)
    uncertain_blocks.index_add_(1, col_first, block_rows)
    uncertain_blocks = uncertain_blocks > 0

    # The scores of every class at the (up to 3 x 3) low-resolution pixels of each such window;
    # windows reaching past the last row/column repeat it (a superset of the true window is fine).
    block_y, block_x = uncertain_blocks.nonzero(as_tuple=True)
    window_pixels = torch.stack([
        (block_y + dr).clamp(max=h - 1) * w + (block_x + dc).clamp(max=w - 1)
        for dr in range(max_rows + 1) for dc in range(max_cols + 1)
    ])  # (O, n) flat low-resolution indices
    window_scores = logits.reshape(num_classes, -1)[:, window_pixels]  # (K, O, n)
    window_max = window_scores.amax(1)  # (K, n)
    lower_bound = window_scores.amin(1).max(0).values  # (n,)

    # The winners at the pixels of each window, each counted once, and the window minimum of
    # their mean score.
    winners = labels_low.view(-1)[window_pixels]  # (O, n)
    repeated = torch.zeros_like(winners, dtype=torch.bool)
    for later in range(1, winners.shape[0]):
        repeated[later] = (winners[:later] == winners[later]).any(0)
    counted = (~repeated).float()
    column = torch.arange(block_y.numel())
    # window_scores[winners[o, n], q, n] for every winner slot o and window pixel q: (O, n, O)
    set_sum = (window_scores[winners, :, column] * counted[:, :, None]).sum(0)  # (n, O)
    mean_of_set = set_sum.amin(1) / counted.sum(0)
    lower_bound = torch.maximum(lower_bound, mean_of_set)
    # Generous slack: the mean is itself computed in float32.
    can_win = window_max >= (lower_bound - 4 * threshold)
    return can_win.any(1).nonzero().squeeze(1)
