"""Which training sample goes where: a deterministic stream of positions, so that a resumed or a
differently parallelised run sees exactly the batches an uninterrupted single-process run sees.

The training stream is the concatenation of per-epoch permutations of the dataset: global position p
is sample `permutation(seed, epoch)[p % n]` of epoch `p // n`. Optimizer step `it` consumes positions
`it * batch_size ... (it + 1) * batch_size - 1`, split as

    position = it * batch_size + micro_step * (world_size * micro_batch_size) + rank * micro_batch_size + j

for accumulation micro-step `micro_step`, process `rank` and image `j` of its micro-batch. So
1 process x micro-batch 2 x 1 step, 2 processes x micro-batch 1 and 1 process x micro-batch 1 x 2
accumulation steps all train on the same images at every step, and resuming at iteration `it`
needs nothing but `it`.

Augmentation randomness is tied to the sample too: `SampleAt` seeds it from (seed, epoch, index),
whichever process or worker loads the sample.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..data import ClassPaste, DataError
from ..data.augment import seeded_global_rngs

PASTE_STREAM = 0xC1A55  # tells ClassPaste's random stream apart from the sample's own


def mix_seed(*values: int) -> int:
    """A well-spread 63-bit seed from several integers (SplitMix64 steps)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        state = (state * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
        state = (state * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state & 0x7FFFFFFFFFFFFFFF


class EpochPermutations:
    """permutation(epoch) of range(n), a pure function of (seed, epoch); the last one is cached."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples = num_samples
        self.seed = seed
        self._epoch, self._order = -1, None

    def __call__(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x5A3))
            self._epoch, self._order = epoch, torch.randperm(self.num_samples, generator=generator)
        return self._order

    def sample_at(self, position: int) -> Tuple[int, int]:
        """(dataset index, epoch) of global stream position `position`."""
        epoch, offset = divmod(position, self.num_samples)
        return int(self(epoch)[offset]), epoch


def micro_batch_position(iteration: int, micro_step: int, rank: int, batch_size: int, world_size: int,
                         micro_batch_size: int) -> int:
    """Global stream position of the first image of one process's micro-batch."""
    return iteration * batch_size + micro_step * world_size * micro_batch_size + rank * micro_batch_size


class TrainStreamSampler(Sampler):
    """Yields (dataset index, epoch) for one process, forever, from optimizer step `start_iteration`."""

    def __init__(self, num_samples: int, seed: int, batch_size: int, micro_batch_size: int, rank: int = 0,
                 world_size: int = 1, start_iteration: int = 0):
        if num_samples < 1:
            raise ValueError("the training set is empty")
        if batch_size % (micro_batch_size * world_size):
            raise ValueError(f"batch size {batch_size} is not a multiple of micro-batch size {micro_batch_size} "
                             f"x {world_size} processes")
        self.permutations = EpochPermutations(num_samples, seed)
        self.batch_size, self.micro_batch_size = batch_size, micro_batch_size
        self.rank, self.world_size = rank, world_size
        self.accumulation = batch_size // (micro_batch_size * world_size)
        self.start_iteration = start_iteration

    def positions(self) -> Iterator[int]:
        iteration = self.start_iteration
        while True:
            for micro_step in range(self.accumulation):
                first = micro_batch_position(iteration, micro_step, self.rank, self.batch_size, self.world_size,
                                             self.micro_batch_size)
                yield from range(first, first + self.micro_batch_size)
            iteration += 1

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for position in self.positions():
            yield self.permutations.sample_at(position)


class SampleAt(Dataset):
    """dataset[(index, epoch)]: sample `index` with the augmentation of `epoch`, reproducibly.

    The dataset's own per-epoch seeding (`set_epoch`) is set, and the global RNGs are seeded from
    (seed, epoch, index) around the call, so that a transform drawing from either gives the same crop,
    flip and colour jitter in any process or worker, on any run.

    A sample whose file cannot be read (DataError) is replaced by the next readable one, index + 1,
    + 2, ... (with that sample's own augmentation) and listed in the item's `skipped` as (index,
    error message): the training process decides what to do about it (`unreadable.UnreadableFiles`),
    and a DataLoader worker never dies with a traceback over a broken file.

    paste: a `segnext.data.ClassPaste`; whether it applies, the donor and the donor's augmentation
    are drawn from a stream of (seed, epoch, index) of their own, so they are reproducible too. An
    unreadable donor is listed in `skipped` and the sample is left as it was.
    """

    def __init__(self, dataset, seed: int, paste: Optional[ClassPaste] = None):
        self.dataset, self.seed, self.paste = dataset, seed, paste

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int, epoch: int) -> dict:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        with seeded_global_rngs(mix_seed(self.seed, epoch, index)):
            return self.dataset[index]

    def __getitem__(self, item: Tuple[int, int]) -> dict:
        index, epoch = item
        skipped: List[Tuple[int, str]] = []
        for offset in range(len(self.dataset)):
            candidate = (index + offset) % len(self.dataset)
            try:
                sample = self.load(candidate, epoch)
            except DataError as error:
                skipped.append((candidate, str(error)))
                continue
            if self.paste is not None:
                sample = self.pasted(sample, candidate, epoch, skipped)
            return {"image": sample["image"], "label": sample["label"], "skipped": skipped}
        raise DataError(f"none of the {len(self.dataset)} training samples can be read; the first: {skipped[0][1]}")


    def pasted(self, sample: dict, index: int, epoch: int, skipped: List[Tuple[int, str]]) -> dict:
        rng = np.random.default_rng([self.seed, epoch, index, PASTE_STREAM])
        if rng.random() >= self.paste.probability:
            return sample
        donor = int(rng.integers(len(self.dataset)))
        try:
            with seeded_global_rngs(mix_seed(self.seed, epoch, index, donor, PASTE_STREAM)):
                return self.paste(sample, self.dataset.get(donor, rng))
        except DataError as error:
            skipped.append((donor, str(error)))
            return sample


def collate_samples(samples: List[dict]) -> dict:
    """A micro-batch: images and labels stacked (default_collate), the samples' `skipped` lists joined."""
    skipped = [entry for sample in samples for entry in sample.pop("skipped", [])]
    batch = default_collate(samples)
    batch["skipped"] = skipped
    return batch


def worker_init(worker_id: int, rank: int = 0) -> None:
    """worker_init_fn of the training loop's own DataLoader workers (with the process's rank): per-worker
    seeds, one OpenCV thread (the workers are the parallelism), and Ctrl-C left to the main process,
    which saves a checkpoint and then stops the workers."""
    from ..data import seed_worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed_worker(worker_id, rank)


def default_num_workers(local_processes: int = 1, most: int = 4) -> int:
    """The loader workers of `data.num_workers: null`: `most` (the official configs' workers_per_gpu),
    no more than this process's share of the CPUs it may run on (more only queue for the same cores,
    and PyTorch warns of them), and at least one, so that loading overlaps the step."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(most, cpus // max(1, local_processes)))


def training_loader(dataset, seed: int, batch_size: int, micro_batch_size: int, num_workers: int, rank: int = 0,
                    world_size: int = 1, start_iteration: int = 0, pin_memory: bool = False,
                    paste: Optional[ClassPaste] = None) -> DataLoader:
    """The micro-batches of one process from optimizer step `start_iteration` on, forever: dicts of
    `image`, `label` and `skipped` (see SampleAt). The generator is explicit, so the workers' seeds
    never draw from the caller's global RNG."""
    sampler = TrainStreamSampler(len(dataset), seed, batch_size, micro_batch_size, rank, world_size, start_iteration)
    return DataLoader(SampleAt(dataset, seed, paste), batch_size=micro_batch_size, sampler=sampler,
                      num_workers=num_workers, collate_fn=collate_samples,
                      worker_init_fn=functools.partial(worker_init, rank=rank) if num_workers else None,
                      pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed), prefetch_factor=2 if num_workers else None)


def step_seeds(seed: int, iteration: int, accumulation: int, rank: int, batch_size: int, world_size: int,
               micro_batch_size: int) -> List[int]:
    """The seeds of the model's random draws for each micro-batch of one optimizer step: functions of
    the micro-batch's position in the sample stream, not of how many forwards this process ran."""
    return [mix_seed(seed, micro_batch_position(iteration, step, rank, batch_size, world_size, micro_batch_size),
                     0x6D6F64) for step in range(accumulation)]
