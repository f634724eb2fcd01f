"""Training files that cannot be read: stop at the first (`data.on_unreadable: error`, the default)
or skip them (`skip`).

The loader replaces an unreadable sample by the next readable one and says so (`sampler.SampleAt`);
this module decides, in the training process. With `error` the run stops with the file's error.
Large real datasets hold a few broken files: with `skip` every unreadable file is reported once (a
warning and a `{"type": "unreadable"}` record in log.jsonl), the list goes into the checkpoints,
results.json and the report, and the run stops when more than `data.max_unreadable_fraction` of the
training set turned out unreadable. Under torchrun the processes share what each found, so that all
of them stop at the same step.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, List, Tuple

from ..data import DataError

Found = List[Tuple[int, str]]  # (dataset index, error message naming the file)


class TooManyUnreadable(DataError):
    """More of the training set is unreadable than data.max_unreadable_fraction allows."""


class UnreadableFiles:
    """The unreadable training files met so far, by dataset index."""

    def __init__(self, dataset_size: int, skip: bool, max_fraction: float, known: Iterable[Tuple[int, str]] = (),
                 share: Callable[[Found], Found] = lambda found: found):
        """skip: data.on_unreadable is "skip" (else the first unreadable file stops the run). known: those
        of earlier sessions (from the checkpoint). share: every process's new findings, joined (an
        all-gather under torchrun)."""
        self.dataset_size, self.skip, self.max_fraction, self.share = dataset_size, skip, max_fraction, share
        self.known: Dict[int, str] = {int(index): str(message) for index, message in known}

    def __len__(self) -> int:
        return len(self.known)

    def watch(self, batches: Iterator[dict], report: Callable[[int, str], None]) -> Iterator[dict]:
        """The loader's batches, unchanged. A new unreadable file raises DataError (not skipping), or
        is passed to `report(index, message)` once, and TooManyUnreadable is raised when they exceed
        the allowed fraction."""
        for batch in batches:
            new = [(index, message) for index, message in self.share(batch.get("skipped", []))
                   if index not in self.known]
            if new and not self.skip:
                raise DataError(f"{new[0][1]}\n(To train on without unreadable files, set data.on_unreadable=skip.)")
            for index, message in new:
                if index not in self.known:
                    self.known[index] = message
                    report(index, message)
            if new and len(self.known) > self.max_fraction * self.dataset_size:
                raise TooManyUnreadable(
                    f"{len(self.known)} of the {self.dataset_size} training samples cannot be read, more than "
                    f"data.max_unreadable_fraction ({self.max_fraction:g}) allows. The first: "
                    f"{self.known[min(self.known)]}\nFix or remove the files (`segnext data check` lists them all) or "
                    f"raise data.max_unreadable_fraction; the run resumes from its last checkpoint.")
            yield batch

    def as_list(self) -> Found:
        """For the checkpoint and results.json: [(index, message)], by index."""
        return sorted(self.known.items())
