"""seed_worker: distinct, reproducible global random streams per DataLoader worker and per rank."""

from __future__ import annotations

import functools
import random

import numpy as np
import torch

from segnext.data import seed_worker
from segnext.data.resize import opencv_if_installed


class _Draws(torch.utils.data.Dataset):
    """Each item: which worker made it and what the global generators give there."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        info = torch.utils.data.get_worker_info()
        return torch.tensor([info.id, np.random.randint(2**31), random.randrange(2**31),
                             int(torch.randint(2**31, (1,)))], dtype=torch.int64)


def _run(seed, worker_init_fn=seed_worker):
    loader = torch.utils.data.DataLoader(_Draws(), batch_size=1, num_workers=2, worker_init_fn=worker_init_fn,
                                         generator=torch.Generator().manual_seed(seed), timeout=60)
    return torch.cat(list(loader))


def test_streams_differ_by_worker_and_rank_and_repeat(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    first = _run(0)
    assert set(first[:, 0].tolist()) == {0, 1}  # both workers took part
    for column in (1, 2, 3):  # numpy, random, torch: every draw distinct across the two workers
        assert len(set(first[:, column].tolist())) == 4
    assert torch.equal(_run(0), first)  # reproducible from the loader's seed
    assert not torch.equal(_run(1)[:, 1:], first[:, 1:])
    other_rank = _run(0, functools.partial(seed_worker, rank=1))  # the same seed, other streams
    assert not set(other_rank[:, 1].tolist()) & set(first[:, 1].tolist())
    assert torch.equal(_run(0, functools.partial(seed_worker, rank=0)), first)
    # Without rank=, $RANK (torchrun's) gives it: seed this process as worker 0 would be, then restore.
    saved = np.random.get_state(), random.getstate(), torch.get_rng_state()
    cv2 = opencv_if_installed()  # seed_worker gives a worker one OpenCV thread
    threads = cv2.getNumThreads() if cv2 is not None else None
    streams = []
    try:
        for rank in ("0", "1"):
            monkeypatch.setenv("RANK", rank)
            seed_worker(0)
            streams.append(np.random.randint(2**31))
    finally:
        np.random.set_state(saved[0]), random.setstate(saved[1]), torch.set_rng_state(saved[2])
        if cv2 is not None:
            cv2.setNumThreads(threads)
    assert streams[0] != streams[1]
