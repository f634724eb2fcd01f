"""The sample stream: the same images at every step whatever the process/accumulation layout, and
from any resume point."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from segnext.data import DataError
from segnext.train.sampler import (
    EpochPermutations,
    SampleAt,
    TrainStreamSampler,
    collate_samples,
    default_num_workers,
)


def step_images(num_samples, steps, batch, micro, world, start=0):
    """For each optimizer step: the sorted dataset indices all processes load, micro-step by micro-step."""
    streams = [iter(TrainStreamSampler(num_samples, seed=3, batch_size=batch, micro_batch_size=micro, rank=r,
                                       world_size=world, start_iteration=start)) for r in range(world)]
    accumulation = batch // (micro * world)
    out = []
    for _ in range(steps):
        images = []
        for _ in range(accumulation):
            for stream in streams:
                images += [next(stream) for _ in range(micro)]
        out.append(images)
    return out


def test_layouts_see_the_same_samples_in_the_same_order():
    single = step_images(10, 7, batch=4, micro=4, world=1)
    assert step_images(10, 7, batch=4, micro=1, world=1) == single  # accumulation 4
    assert step_images(10, 7, batch=4, micro=1, world=2) == single  # 2 processes x accumulation 2
    assert step_images(10, 7, batch=4, micro=2, world=2) == single  # 2 processes x 2 images


def test_resume_continues_the_stream():
    full = step_images(10, 9, batch=4, micro=2, world=1)
    assert step_images(10, 4, batch=4, micro=2, world=1, start=5) == full[5:]


def test_every_epoch_is_a_permutation_and_epochs_differ():
    permutations = EpochPermutations(10, seed=3)
    seen = [permutations.sample_at(p) for p in range(30)]
    for epoch in range(3):
        indices = [i for i, e in seen if e == epoch]
        assert sorted(indices) == list(range(10))
    assert permutations(0).tolist() != permutations(1).tolist()
    assert EpochPermutations(10, seed=4)(0).tolist() != permutations(0).tolist()


class _RandomDataset:
    """Draws from every global RNG, as a careless transform might."""

    def __init__(self):
        self.epoch = None

    def __len__(self):
        return 5

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        value = np.random.rand() + torch.rand(()).item()
        return {"image": torch.tensor([value, float(self.epoch)]), "label": torch.tensor(index)}


def test_augmentation_depends_only_on_seed_epoch_and_index_and_leaves_the_caller_rng_alone():
    dataset = SampleAt(_RandomDataset(), seed=0)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = dataset[(3, 2)]["image"]
    assert torch.equal(torch.get_rng_state(), before)
    dataset[(1, 0)]
    assert torch.equal(dataset[(3, 2)]["image"], first) and first[1] == 2
    assert not torch.equal(dataset[(3, 1)]["image"], first)


class _DatasetWithBrokenFiles:
    """Samples 1 and 2 cannot be read."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index in (1, 2):
            raise DataError(f"file_{index}.png: cannot read this file (image file is truncated)")
        return {"image": torch.full((2,), float(index)), "label": torch.tensor(index)}


def test_an_unreadable_sample_is_replaced_by_the_next_readable_one_and_named():
    skipping = SampleAt(_DatasetWithBrokenFiles(), seed=0)
    item = skipping[(1, 0)]
    assert item["label"] == 3 and [index for index, _ in item["skipped"]] == [1, 2]
    assert "file_2.png" in item["skipped"][1][1]
    assert skipping[(0, 0)]["skipped"] == []
    batch = collate_samples([skipping[(0, 0)], skipping[(2, 0)]])
    assert batch["label"].tolist() == [0, 3] and [index for index, _ in batch["skipped"]] == [2]


class _Stripes:
    """Sample i: a 4x4 crop whose label is i on the left half and 7 (a thin class) in column 3 of odd
    samples; the image holds the label value in each of its three channels. Sample 5 cannot be read;
    `get` with a stream other than the sample's own shifts the image by 100 (an augmentation)."""

    def __len__(self):
        return 6

    def sample(self, index, shift):
        if index == 5:
            raise DataError("file_5.png: cannot read this file (image file is truncated)")
        label = torch.full((4, 4), index, dtype=torch.long)
        if index % 2:
            label[:, 3] = 7
        return {"image": label.float().expand(3, 4, 4) + shift, "label": label}

    def __getitem__(self, index):
        return self.sample(index, 0.0)

    def get(self, index, rng):
        return self.sample(index, 100.0)


def test_class_paste_puts_the_donors_chosen_classes_onto_the_sample_reproducibly():
    from segnext.data import ClassPaste

    pasting = SampleAt(_Stripes(), seed=0, paste=ClassPaste([7], probability=1.0))
    pasted = [pasting[(0, epoch)] for epoch in range(24)]
    for item in pasted:
        donor_had_the_class = bool((item["label"] == 7).any())
        assert torch.equal(item["label"][:, :3], torch.zeros(4, 3, dtype=torch.long))
        if donor_had_the_class:  # column 3, image and label alike, from the donor's own augmentation
            assert (item["label"][:, 3] == 7).all() and (item["image"][:, :, 3] == 107).all()
        elif not item["skipped"]:
            assert (item["label"] == 0).all() and (item["image"] == 0).all()
    assert any((item["label"] == 7).any() for item in pasted)  # some donors are odd samples
    assert [i["label"].tolist() for i in pasted] == [pasting[(0, e)]["label"].tolist() for e in range(24)]
    unreadable = [item for item in pasted if item["skipped"]]  # donor 5: listed, the sample left as it was
    assert unreadable and all(i["skipped"][0][0] == 5 and "file_5.png" in i["skipped"][0][1] and (i["label"] == 0).all()
               for i in unreadable)
    never = SampleAt(_Stripes(), seed=0, paste=ClassPaste([7], probability=0.0))
    assert all(torch.equal(never[(1, e)]["image"], SampleAt(_Stripes(), seed=0)[(1, e)]["image"]) for e in range(4))


@pytest.mark.parametrize("cpus,local_processes,workers", [(1, 1, 1), (2, 1, 2), (16, 1, 4), (16, 8, 2), (4, 8, 1)])
def test_default_workers_are_four_at_most_within_the_processes_share_of_the_cpus(monkeypatch, cpus,
                                                                                 local_processes, workers):
    """data.num_workers: null. More workers than CPUs only queue for the same cores (PyTorch warns of them)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert default_num_workers(local_processes) == workers
