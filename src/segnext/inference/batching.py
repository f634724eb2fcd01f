"""Groups of images that can share a forward pass, cut from a stream.

`segnext.inference.segment` runs the test on a group of prepared images of one resized size
(`PreparedImage.group_key`); `batches_by_size` forms such groups from images as they arrive (files,
video frames), holding a bounded number while a group fills. With the official keep-ratio resize,
photos of one camera and frames of one video share a size.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable, Iterable, Iterator, List, Optional, Tuple, TypeVar

from .preprocess import PreparedImage

Tag = TypeVar("Tag")


def batches_by_size(stream: Iterable[Tuple[Tag, PreparedImage]], batch_size: int,
                    max_waiting: Optional[int] = None) -> Iterator[List[Tuple[Tag, PreparedImage]]]:
    """Groups of up to `batch_size` (tag, image) pairs of one `group_key`, as they fill up.

    A group is given out as soon as it is full. While more than `max_waiting` images (default
    4 x batch_size) wait in groups that are not full, the fullest group is given out (the oldest
    among equals), so memory stays bounded when sizes vary. The rest is given out at the end, in
    order of first arrival.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    max_waiting = max(batch_size, max_waiting if max_waiting is not None else 4 * batch_size)
    waiting: OrderedDict[Hashable, List[Tuple[Tag, PreparedImage]]] = OrderedDict()
    count = 0
    for tag, image in stream:
        group = waiting.setdefault(image.group_key, [])
        group.append((tag, image))
        count += 1
        if len(group) == batch_size:
            del waiting[image.group_key]
            count -= batch_size
            yield group
        elif count > max_waiting:
            fullest = max(waiting, key=lambda key: len(waiting[key]))  # max() keeps the first (oldest) of ties
            count -= len(waiting[fullest])
            yield waiting.pop(fullest)
    yield from waiting.values()


def as_is(item):
    """A DataLoader's collate function for images that are grouped by size later, not by position."""
    return item
