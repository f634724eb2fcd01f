"""The multi-scale (+ flip) average of class probabilities, one band of output rows at a time
(a fast path of `segnext.inference.segment_logits` / `segment`, selected with `memory_efficient=True`).

Averaging K class probabilities over scales at the original size holds K x H x W floats: 29 GB for
ADE20K's 150 classes on an 8000 x 6000 photo. In the whole-image test the stride-8 logits of every
scale and flip are small, so the average is built one band of output rows at a time: per source,
the rows of the band come from its chain of resizes (stride 8 -> resized image -> original) as a
vertical interpolation with `F.interpolate`'s own weights (a few low-resolution rows per band),
followed by `F.interpolate` along the width. The result equals resizing everything to float rounding.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .resize import bilinear_weights, contributing_rows

BAND_BYTES = 64 << 20  # class scores of one band of output rows

Source = Tuple[torch.Tensor, Sequence[Tuple[int, int]]]  # logits (K, h, w), the sizes they are resized through


def average_probabilities_in_bands(sources: List[Source], height: int, width: int,
                                   band_bytes: Optional[int] = None) -> Iterator[Tuple[slice, torch.Tensor]]:
    """(rows, mean over sources of softmax(resized logits) for those rows (K, rows, width)), for
    consecutive bands of the (height, width) output, each about `band_bytes` of scores (default
    BAND_BYTES). Every chain must end at (height, width)."""
    classes = sources[0][0].shape[0]
    vertical = [bilinear_weights(low.shape[1], [size[0] for size in chain], low.device) for low, chain in sources]
    windows = [[rows.tolist() for rows in contributing_rows(weights)] for weights in vertical]
    band_rows = max(1, (band_bytes or BAND_BYTES) // (4 * classes * width))
    for top in range(0, height, band_rows):
        rows = slice(top, min(top + band_rows, height))
        total = None
        for (low, chain), weights, (first_row, end_row) in zip(sources, vertical, windows):
            first, end = min(first_row[rows]), max(end_row[rows])
            scores = torch.matmul(weights[first:end, rows].t(), low[:, first:end])[None]  # (1, K, band, w)
            for size in chain:  # along the width only: the height is already final
                scores = F.interpolate(scores, size=(scores.shape[2], size[1]), mode="bilinear", align_corners=False)
            probabilities = scores[0].softmax(dim=0)
            total = probabilities if total is None else total.add_(probabilities)
        yield rows, total.div_(len(sources))
