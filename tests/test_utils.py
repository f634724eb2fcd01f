"""The helpers of segnext.utils: atomic writes (permissions, a full disk)."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from segnext.utils import (
    DiskFullError,
    atomic_write,
    check_can_make_folder,
    check_can_write_file,
    count,
    format_bytes,
    json_text,
)


def test_a_full_disk_leaves_the_previous_file_and_names_the_space_needed(tmp_path, full_disk):
    target = tmp_path / "results.json"
    atomic_write(target, lambda temporary: temporary.write_text("old"))
    full_disk(tmp_path, free=10)
    with pytest.raises(DiskFullError) as error:
        atomic_write(target, lambda temporary: temporary.write_bytes(bytes(3000)), size=3000)
    assert error.value.errno == errno.ENOSPC
    assert str(error.value).startswith(f"{target}: no space left on the device: writing it needs 2.9 KB (")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    with pytest.raises(DiskFullError, match="needs more than the 0 bytes written before the disk filled"):
        atomic_write(tmp_path / "other.txt", lambda temporary: temporary.write_text("no size given"))
    # Other errors pass through unchanged, and leave no temporary file either.
    with pytest.raises(ZeroDivisionError):
        atomic_write(target, lambda temporary: 1 / 0)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**40)] == [
        "0 bytes", "1023 bytes", "1.5 KB", "5.0 MB", "3072.0 GB"]


def test_a_short_write_without_errno_counts_when_the_rest_does_not_fit(tmp_path, monkeypatch):
    """NumPy's tofile on a full disk: OSError("N requested and M written"), no errno."""
    import shutil

    def numpy_like_write(temporary):
        temporary.write_bytes(bytes(100))
        raise OSError("768000 requested and 100 written")

    free = {"bytes": 50}
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=free["bytes"]))
    with pytest.raises(DiskFullError, match="probs.npy: no space left on the device: writing it needs 750.0 KB"):
        atomic_write(tmp_path / "probs.npy", numpy_like_write, size=768000)
    free["bytes"] = 10**9  # room enough: some other failure, passed on as it is
    with pytest.raises(OSError, match="768000 requested") as error:
        atomic_write(tmp_path / "probs.npy", numpy_like_write, size=768000)
    assert not isinstance(error.value, DiskFullError) and list(tmp_path.iterdir()) == []


def test_a_writer_that_only_says_so_in_its_message_counts_too(tmp_path):
    """safetensors on a full disk: SafetensorError("... No space left on device (os error 28)")."""

    class SafetensorError(Exception):
        pass

    def safetensors_like_write(temporary):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(DiskFullError, match="model.safetensors: no space left on the device: writing it needs 2.0 MB"):
        atomic_write(tmp_path / "model.safetensors", safetensors_like_write, size=2 * 2**20)


def test_atomic_write_gives_the_umask_permissions_without_touching_the_umask(tmp_path, monkeypatch):
    """The file gets the mode any new file gets (0666 less the umask), and the umask, process-wide
    state, is never set, not even to read it back."""
    previous = os.umask(0o027)  # the test, not the library, sets it
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_write called os.umask"))
        written = atomic_write(tmp_path / "a.json", lambda temporary: Path(temporary).write_text("{}"))
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "plain.json"]


def test_output_checks_raise_what_making_the_path_would_raise_and_make_nothing(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    for path, error in ((tmp_path / "file", FileExistsError), (tmp_path / "file" / "a" / "b", NotADirectoryError)):
        with pytest.raises(error) as raised:
            Path(path).mkdir(parents=True, exist_ok=True)
        with pytest.raises(error) as checked:
            check_can_make_folder(path)
        assert checked.value.filename == str(path) and checked.value.errno == raised.value.errno
    check_can_make_folder(tmp_path / "new" / "deeper")
    check_can_make_folder(tmp_path)
    assert not (tmp_path / "new").exists()

    with pytest.raises(IsADirectoryError):
        check_can_write_file(tmp_path)
    with pytest.raises(NotADirectoryError):
        check_can_write_file(tmp_path / "file" / "sub" / "r.json")
    check_can_write_file(tmp_path / "new" / "r.json")

    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # as if tmp_path were read-only
    with pytest.raises(PermissionError) as checked:
        check_can_make_folder(tmp_path / "new")
    assert checked.value.filename == str(tmp_path)


def test_count_says_one_in_the_singular():
    assert [count(n, "pair") for n in (0, 1, 2, 1500)] == ["0 pairs", "1 pair", "2 pairs", "1,500 pairs"]


def test_json_text_keeps_each_list_of_numbers_on_one_line():
    value = {"confusion": [[1, 2], [3, 4]], "IoU": [12.5, None], "flags": [True], "empty": {}, "name": 'a "b"',
             "rows": [{"class": "sky", "IoU": [1.0, 2.0]}]}
    text = json_text(value)
    assert json.loads(text) == value
    assert '"confusion": [\n    [1, 2],\n    [3, 4]\n  ]' in text and '"IoU": [12.5, null]' in text
    assert text == json_text(value) and json.dumps(value, indent=2).count("\n") > text.count("\n")


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_in_a_log_file_is_a_line_per_report_not_a_redrawn_bar(monkeypatch, capsys, terminal):
    """On a terminal the bar is redrawn in place; in a log file (a batch job) a redrawn bar would be
    one endless line of carriage returns: there each report is a plain line, and erasures vanish."""
    from segnext import utils

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    monkeypatch.setattr(utils, "LOG_PROGRESS_SECONDS", 0.0)  # every update reported
    bar = utils.progress_bar(3, desc="eval", unit="img", leave=False)
    for _ in range(3):
        bar.update(1)
        bar.clear()  # what tqdm.write does around a message
    bar.close()
    err = capsys.readouterr().err
    if terminal:
        assert "\r" in err
    else:
        lines = err.splitlines()
        assert "\r" not in err and all(line.startswith("eval: ") for line in lines)
        assert lines[0].startswith("eval:   0%") and "3/3" in lines[-1] and len(lines) >= 4  # the last one is kept
        counts = [line.split("[")[0] for line in lines]
        assert len(set(counts)) == len(counts), lines  # the close does not repeat the last count
    quiet = utils.progress_bar(3, enabled=False, desc="eval")
    quiet.update(3)
    quiet.close()
    assert capsys.readouterr().err == ""
