"""What every `segnext data prepare` converter shares: running many small conversions file by file in
a process pool (each output written atomically, finished ones skipped, a broken file reported and the
others converted), the report, links to the images, and colour masks read as class ids."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..constants import ARRAY_SUFFIXES, IGNORE_INDEX, IMAGE_SUFFIXES
from ..utils import atomic_write, progress_bar
from .datasets import visible_entries
from .io import DataError
from .resize import opencv_if_installed

# --------------------------------------------------------------------------------------------
# Running many small conversions


@dataclass
class PrepareReport:
    name: str
    destination: Path
    converted: int = 0
    skipped: int = 0
    failures: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add(self, outcomes: Sequence[Tuple[str, str]]) -> None:
        for status, message in outcomes:
            if status == "converted":
                self.converted += 1
            elif status == "skipped":
                self.skipped += 1
            else:
                self.failures.append(message)
            if status != "failed" and message:
                self.notes.append(message)


def _init_worker() -> None:
    cv2 = opencv_if_installed()
    if cv2 is not None:
        cv2.setNumThreads(0)  # one process per core already


def run_tasks(function: Callable, tasks: Sequence, workers: Optional[int], description: str,
              progress: bool = True) -> list:
    """[function(task) for task in tasks], in a process pool when workers > 1, with a progress bar.

    function must be picklable (a module-level function or Guarded) and should not raise for a
    bad input file, so that one broken file does not stop the others. Results keep the task order.
    """
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    bar = progress_bar(len(tasks), enabled=progress, desc=description, unit="file", dynamic_ncols=True)
    results = []
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(function(task))
                bar.update()
        else:
            chunk = max(1, min(64, len(tasks) // (workers * 8)))
            with multiprocessing.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for result in pool.imap(function, tasks, chunksize=chunk):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


def run_counted_tasks(report: PrepareReport, convert: Callable, tasks: Sequence, workers: Optional[int],
                      description: str, progress: bool = True) -> int:
    """`run_tasks` of a converter whose note is a count (of the shapes it could not draw): the
    outcomes added to `report`, the counts summed."""
    outcomes = run_tasks(Guarded(convert), tasks, workers, description, progress)
    report.add([(status, "" if status == "converted" else message) for status, message in outcomes])
    return sum(int(message) for status, message in outcomes if status == "converted")


class Guarded:
    """Run convert(*task) -> ("converted" | "skipped", note), turning the expected errors of one
    file into ("failed", message naming it). A class, not a closure, so the pool can pickle it."""

    def __init__(self, convert: Callable):
        self.convert = convert

    def __call__(self, task):
        try:
            return self.convert(*task)
        except (DataError, FileNotFoundError, OSError, ValueError, KeyError) as error:
            return "failed", str(error)


def up_to_date(outputs: Sequence[Path], overwrite: bool) -> bool:
    return not overwrite and all(Path(p).is_file() for p in outputs)


# --------------------------------------------------------------------------------------------
# The images of DST: links to the source's, not copies


def link_folder(destination: Path, source: Path, name: str, report: PrepareReport, source_name: str = "") -> None:
    """Make DST/name point at SRC/name (or SRC/source_name) when DST is elsewhere: images are not copied."""
    target, link = source / (source_name or name), destination / name
    if not target.is_dir():
        report.notes.append(f"{target} not found: put the images there (the labels are converted anyway)")
        return
    if link.exists() or link.is_symlink() or link.resolve() == target.resolve():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target.resolve(), target_is_directory=True)
        report.notes.append(f"linked {link} -> {target.resolve()}")
    except OSError as error:
        report.notes.append(f"could not link {link} -> {target} ({error}); copy or move the images there")


class ImageIndex:
    """The images under some folders (arrays of bands too), found by a relative path or any ending of
    one (`photo.jpg`, `seq1/photo.jpg`), as exports name them by a path of the machine that labelled
    them."""

    def __init__(self, roots: Sequence[Path], left_out: Sequence[Path] = ()):
        self.roots = list(dict.fromkeys(roots))
        self.by_ending: Dict[str, List[Path]] = {}
        left_out = [p.resolve() for p in left_out]
        for root in self.roots:
            for path in visible_entries(root, recursive=True) if root.is_dir() else []:
                if path.suffix.lower() not in IMAGE_SUFFIXES + ARRAY_SUFFIXES:
                    continue
                if not any(p == path.resolve() or p in path.resolve().parents for p in left_out):
                    parts = path.relative_to(root).parts
                    for start in range(len(parts)):
                        found = self.by_ending.setdefault("/".join(parts[start:]), [])
                        if path not in found:  # one folder inside another: the same image once
                            found.append(path)

    def describe(self) -> str:
        return " or ".join(str(root) for root in self.roots)

    def find(self, names: Sequence[str], where: str) -> Optional[Tuple[Path, str]]:
        """(the one image whose path ends with the first of `names` (most specific first) that any
        image's does, that name)."""
        for name in names:
            found = self.by_ending.get(name, [])
            if len(found) > 1:
                raise DataError(f"{where}: {len(found)} images under {self.describe()} end with {name} "
                                f"({', '.join(str(p) for p in found[:3])}); keep one")
            if found:
                return found[0], name
        return None


def extract_download(archive: Path) -> Tuple[Path, str]:
    """(the folder of a downloaded .zip, a note saying so): extracted beside it (EXPORT.zip ->
    EXPORT/) the first time and read from there after, as the converted dataset links to its
    images; the one folder it holds if it holds nothing else (exports often wrap theirs)."""
    import zipfile

    target = archive.with_suffix("")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target}: a file where {archive} would be extracted; move it, or extract the "
                              f"archive yourself and give the folder")
    if target.is_dir():
        note = f"read {target}, extracted from {archive} before"
    else:
        with zipfile.ZipFile(archive) as zipped:
            needed = sum(member.file_size for member in zipped.infolist())
            free = shutil.disk_usage(target.parent).free
            if needed > free:
                raise OSError(f"{archive}: extracting it needs {needed / 2 ** 30:.1f} GiB, {free / 2 ** 30:.1f} GiB "
                              f"are free in {target.parent}")
            partial = target.with_name(f".{target.name}.extracting")  # never taken for a whole extraction
            shutil.rmtree(partial, ignore_errors=True)
            zipped.extractall(partial)  # member names with "..", or absolute, stay inside (zipfile strips them)
        partial.rename(target)
        note = f"extracted {archive} to {target}"
    entries = [p for p in target.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    return (entries[0] if len(entries) == 1 and entries[0].is_dir() else target), note


def link_image(image: Optional[str], image_target: str) -> None:
    """DST's image as a link to the export's (a copy where the file system has no links)."""
    if image is not None and not os.path.lexists(image_target):
        os.makedirs(os.path.dirname(image_target), exist_ok=True)
        try:
            os.symlink(os.path.relpath(image, os.path.dirname(image_target)), image_target)
        except OSError:
            shutil.copyfile(image, image_target)


# --------------------------------------------------------------------------------------------
# Colour masks and the classes of DST


def colours_to_ids(mask: np.ndarray, palette: Sequence[Sequence[int]],
                   ignore_colours: Sequence[Sequence[int]] = ()) -> Tuple[np.ndarray, Dict[Tuple[int, int, int], int]]:
    """RGB mask (H, W, 3) -> (ids uint8: colour palette[k] -> k, an ignore colour -> 255; {colour
    found in neither list: its number of pixels}, those pixels 255 too)."""
    def code(colours) -> np.ndarray:
        colours = np.asarray(colours, dtype=np.int32).reshape(-1, 3)
        return (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]

    codes = code(mask.reshape(-1, 3)).reshape(mask.shape[:2])
    known = np.concatenate([code(palette), code(ignore_colours)])
    ids_of_known = np.concatenate([np.arange(len(palette)), np.full(len(known) - len(palette), IGNORE_INDEX)])
    order = np.argsort(known, kind="stable")
    sorted_codes = known[order]
    position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    matched = sorted_codes[position] == codes
    ids = np.where(matched, ids_of_known[order][position], IGNORE_INDEX).astype(np.uint8)
    unknown_codes, counts = np.unique(codes[~matched], return_counts=True)
    unknown = {((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255): int(n) for c, n in zip(unknown_codes, counts)}
    return ids, unknown


def describe_colours(pixels_by_colour: Dict[Tuple[int, int, int], int], shown: int = 5) -> str:
    """'[r, g, b] (N px), ...' for the most frequent colours, and how many more there are."""
    ranked = sorted(pixels_by_colour.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{list(colour)} ({pixels} px)" for colour, pixels in ranked[:shown])
    return listed + (f" and {len(ranked) - shown} more" if len(ranked) > shown else "")


def check_distinct_colours(path: Path, palette: List[List[int]], ignore_colours: List[List[int]]) -> None:
    colours = [tuple(c) for c in palette + ignore_colours]
    repeated = sorted({c for c in colours if colours.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: the colours {[list(c) for c in repeated]} stand for more than one class (or "
                        f"for a class and ignore); each colour must mean one thing")


def write_classes_json(destination: Path, meta: dict, palette: List[List[int]], overwrite: bool = False) -> None:
    """DST/classes.json of converted labels: they hold class ids from 0 with 255 for no label, whatever
    the source's classes.json said of its stored values; its other keys are kept. Written before the
    labels: a DST whose classes.json names other classes holds labels of those (a conversion resumed
    after the classes changed would mix both), so it is refused unless `overwrite` redoes them all."""
    written = {key: value for key, value in meta.items() if key not in ("ignore_colors", "reduce_zero_label")}
    written.update(palette=palette, ignore_index=IGNORE_INDEX)
    path = destination / "classes.json"
    if path.is_file() and not overwrite:
        try:
            before = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            before = None
        if not isinstance(before, dict) or (before.get("classes"), before.get("palette")) != (written["classes"],
                                                                                                  palette):
            shown = before.get("classes") if isinstance(before, dict) else None
            raise DataError(f"{path} names other classes or colours ({shown}) than this conversion's "
                            f"({written['classes']}): the labels there hold those. Run again with --overwrite to redo "
                            f"every label, or convert into another DST")
    destination.mkdir(parents=True, exist_ok=True)
    atomic_write(destination / "classes.json", lambda tmp: tmp.write_text(json.dumps(written, indent=2) + "\n"))
