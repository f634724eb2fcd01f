"""data.on_unreadable: skip: unreadable training files are skipped, each reported once, counted, and
the run stops when too many are; the default stops at the first, naming it."""

from __future__ import annotations

import json

import pytest
from train_helpers import tiny_config, write_config

from segnext.data import DataError
from segnext.train import load_config, train
from segnext.train import state as checkpointing
from segnext.train.sampler import EpochPermutations
from segnext.train.unreadable import TooManyUnreadable, UnreadableFiles


def test_each_file_is_reported_once_and_too_many_stop_the_run():
    reported = []
    files = UnreadableFiles(dataset_size=100, skip=True, max_fraction=0.02, known=[(7, "a.png: truncated")])
    batches = iter([{"skipped": [(7, "a.png: truncated")]}, {"skipped": [(3, "b.png: bad CRC")]},
                    {"skipped": [(3, "b.png: bad CRC")]}, {"skipped": []}, {"skipped": [(9, "c.png: empty")]}])
    watched = files.watch(batches, lambda index, message: reported.append(index))
    for _ in range(4):
        next(watched)
    assert reported == [3] and len(files) == 2  # 7 was known from the checkpoint, 3 is reported once
    with pytest.raises(TooManyUnreadable, match=r"3 of the 100 training samples .* The first: b.png: bad CRC"):
        next(watched)
    assert files.as_list() == [(3, "b.png: bad CRC"), (7, "a.png: truncated"), (9, "c.png: empty")]
    strict = UnreadableFiles(dataset_size=100, skip=False, max_fraction=0.5)
    with pytest.raises(DataError, match="b.png: bad CRC\n.*data.on_unreadable=skip"):
        next(strict.watch(iter([{"skipped": []}, {"skipped": [(3, "b.png: bad CRC")]}]), reported.append))
        next(strict.watch(iter([{"skipped": [(3, "b.png: bad CRC")]}]), reported.append))


@pytest.fixture()
def broken_scenes(tmp_path, scenes):
    """The scenes with the first training image of the stream truncated."""
    import shutil

    root = tmp_path / "scenes"
    shutil.copytree(scenes, root)
    images = sorted((root / "images" / "train").iterdir())
    first = images[int(EpochPermutations(len(images), seed=0)(0)[0])]  # train.seed 0: the first sample drawn
    first.write_bytes(first.read_bytes()[:200])
    return root, first


def test_by_default_an_unreadable_training_file_stops_the_run_naming_it(tmp_path, broken_scenes):
    root, broken = broken_scenes
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(root))),
                         ["train.max_iters=2", "data.num_workers=1"])
    with pytest.raises(DataError) as error:
        train(config, tmp_path / "run", progress=False)
    message = str(error.value)
    assert message.startswith("folder train dataset index") and str(broken) in message
    assert "Traceback" not in message and "worker" not in message  # from a DataLoader worker, yet clean


def test_skip_trains_on_logs_and_counts_and_a_low_limit_stops(tmp_path, broken_scenes, capsys):
    root, broken = broken_scenes
    path = write_config(tmp_path / "c.yaml", tiny_config(root))
    skip = ["data.on_unreadable=skip", "data.max_unreadable_fraction=0.1", "train.max_iters=4"]
    result = train(load_config(str(path), skip), tmp_path / "run", progress=False)
    assert result.stop_reason == "finished" and result.unreadable_files == 1
    out = capsys.readouterr().out
    assert out.count("warning: skipped an unreadable training file") == 1 and str(broken) in out
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    [record] = [r for r in records if r["type"] == "unreadable"]
    assert record["iter"] == 1 and str(broken) in record["error"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["unreadable_training_files"]) == 1 and str(broken) in results["unreadable_training_files"][0]
    from segnext.train.report import read_run, stop_text

    assert stop_text(read_run(tmp_path / "run")).endswith("; 1 unreadable training file(s) skipped (results.json "
                                                          "lists them)")
    saved = checkpointing.load(tmp_path / "run" / "checkpoints" / checkpointing.checkpoint_name(4))
    assert [message for _, message in saved["unreadable_files"]] == results["unreadable_training_files"]
    # One bad file in 16 is more than 5%: the run stops at once, naming it.
    with pytest.raises(TooManyUnreadable, match=f"1 of the 16 training samples .*{broken}"):
        train(load_config(str(path), skip + ["data.max_unreadable_fraction=0.05"]), tmp_path / "strict",
              progress=False)
