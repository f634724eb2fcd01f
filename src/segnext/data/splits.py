"""Splits by group: hold out whole video sequences (or cities, or sites) instead of frames.

Frames of one video sequence look alike: a validation split whose frames come from sequences that
are also in training measures how well the model remembers those sequences, not how it does on new
data (CamVid's val is 101 frames of a drive whose other frames are in train). The file names of
most datasets carry the group: CamVid's `0001TP_006690` (sequence 0001TP), Cityscapes'
`aachen/aachen_000000_000019` (city aachen). `group_of` reads it with a regular expression (by
default the name up to the first "_" or "/"); `write_split` makes a new split of the same dataset
from chosen pairs (of named groups, or of groups drawn at random by `random_groups`), so that
`data.train_split` / `data.val_split` (and every other tool) can use it: symbolic links in the
layout's folders, or a list file for layouts that are read from one (VOC, Pascal Context).
"""

from __future__ import annotations

import os
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils import count
from .datasets import GROUP_PATTERN, DataError, DatasetSpec, Listing, list_split, split_names

Pair = Tuple[Path, Path]

# What to do where the file names give too few groups.
MORE_GROUPS = ("pass --groups with a regular expression that finds the sequence in each name, or --groups '.+' if "
               "the files are independent photos (each its own group)")

# The names cameras, phones and drones give their files (IMG_0001.jpg, DSC_0042.JPG, DJI_0007.JPG,
# PXL_20240101_...): photos named so share the prefix, not a video sequence.
CAMERA_PREFIXES = frozenset({"img", "dsc", "dscn", "dscf", "dji", "pxl", "gopr", "mvi", "vid", "pano", "photo",
                             "image", "screenshot"})


def relative_stem(listing: Listing, image: Path) -> str:
    """The image's name below its split folder, without the image ending ('aachen/aachen_000000_000019')."""
    image_dir = listing.root / listing.layout.images.format(split=listing.split)
    relative = image.relative_to(image_dir).as_posix()
    for suffix in listing.layout.image_suffixes:
        if relative.lower().endswith(suffix.lower()):
            return relative[: -len(suffix)]
    return relative


def group_of(stem: str, pattern: str = GROUP_PATTERN) -> str:
    match = re.search(pattern, stem)
    if match is None:
        raise DataError(f"{stem}: the group pattern {pattern!r} matches nothing in this name; pass --groups with a "
                        f"regular expression that finds the sequence (or city) in every file name")
    return match.group(1) if match.groups() else match.group(0)


def groups(listing: Listing, pattern: str = GROUP_PATTERN) -> Dict[str, List[Pair]]:
    """The pairs of a split by group, groups in order of first appearance."""
    found: Dict[str, List[Pair]] = OrderedDict()
    for image, label in listing.pairs:
        found.setdefault(group_of(relative_stem(listing, image), pattern), []).append((image, label))
    return found


def shared_group(listing: Listing, image: Path, pattern: str) -> Optional[str]:
    """The image's group, or None where the group is its whole name: an image of its own (named
    0001.png, or read with the pattern ".+"), whose name in another split is another image."""
    stem = relative_stem(listing, image)
    group = group_of(stem, pattern)
    return None if group == stem else group


def split_groups(spec: DatasetSpec, root, split: str) -> Optional[Dict[str, int]]:
    """Frames per group (video sequence, city) of `split` ("+" joins splits; images of their own,
    `shared_group`, left out), or None when the dataset's names carry no groups (spec.group_pattern
    None) or the split cannot be listed."""
    if spec.group_pattern is None:
        return None
    counts: Dict[str, int] = {}
    try:
        for part in split_names(split):
            listing = list_split(spec, root, part)
            for image, _ in listing.pairs:
                group = shared_group(listing, image, spec.group_pattern)
                if group is not None:
                    counts[group] = counts.get(group, 0) + 1
    except DataError:  # a split absent, or names the pattern does not match
        return None
    return counts


def image_groups(spec: DatasetSpec, root, split: str, image_paths: Sequence[str]) -> Optional[List[Optional[str]]]:
    """The group (video sequence, city) of each of `image_paths` (images of `split` below `root`; "+"
    joins splits): None for an image of its own (`shared_group`), whose name is one a camera gives
    its files (`CAMERA_PREFIXES`) or that the split does not list. None when the dataset's names
    carry no groups (spec.group_pattern None), when no two of the images share one, or when the split
    cannot be listed."""
    if spec.group_pattern is None:
        return None
    found: Dict[str, str] = {}
    try:
        for part in split_names(split):
            listing = list_split(spec, root, part)
            for image, _ in listing.pairs:
                found[str(image)] = shared_group(listing, image, spec.group_pattern)
    except DataError:  # a split absent, or names the pattern does not match
        return None
    named = [found.get(str(path)) for path in image_paths]
    return shared_groups([group if group is not None and group.lower() not in CAMERA_PREFIXES else None
                          for group in named])


def shared_groups(groups: Sequence[Optional[str]]) -> Optional[List[Optional[str]]]:
    """Each image's group (None: in none) as given, or None where no two images share one: then there
    is nothing to resample or score by group."""
    named = [group for group in groups if group is not None]
    return list(groups) if len(set(named)) < len(named) else None


def shared_group_note(spec: DatasetSpec, root, train_split: str, other_split: str,
                      trained_groups: Optional[Dict[str, int]] = None) -> Optional[str]:
    """What `other_split`'s scores are worth when it shares data with `train_split` (either may join
    splits with "+"): a note when it is part of the training data, or holds frames of the groups
    (sequences, cities) trained on; None when it shares nothing, when the names carry no groups
    (spec.group_pattern None), when every training name has the same prefix, or when the prefixes
    shared are those cameras give their files (IMG_0001, DSC_0042: `CAMERA_PREFIXES`).
    trained_groups: the frames per group trained on, when known (a model folder records them);
    by default those of `train_split` below `root`."""
    if set(split_names(other_split)) & set(split_names(train_split)):
        return (f"{other_split} is (part of) the training data ({train_split}): its scores say how well the model "
                f"fits what it trained on, not how it does on new images")
    trained = trained_groups if trained_groups is not None else split_groups(spec, root, train_split)
    other = split_groups(spec, root, other_split)
    if not trained or not other or len(trained) < 2:
        return None
    shared = {group: (trained[group], frames) for group, frames in other.items()
              if group in trained and group.lower() not in CAMERA_PREFIXES}
    if not shared:
        return None
    counts = ", ".join(f"{group} ({frames} frames; {trained_frames} in {train_split})"
                       for group, (trained_frames, frames) in shared.items())
    return (f"{other_split} shares groups with {train_split}: {counts}. Scores on {other_split} are optimistic for "
            f"new sequences; hold whole groups out with `segnext data split {spec.name} {root} --hold-out GROUP`.")


def write_split(listing: Listing, pairs: Sequence[Pair], name: str) -> None:
    """Make split `name` of the same dataset root, holding `pairs` of `listing`'s split."""
    layout, root = listing.layout, listing.root
    if name == listing.split:
        raise DataError(f"the new split {name!r} would overwrite the split it is made from")
    if layout.split_files:
        path = root / layout.split_files[0].format(split=name)
        path.write_text("".join(relative_stem(listing, image) + "\n" for image, _ in pairs))
        return
    image_dir = root / layout.images.format(split=name)
    label_dir = root / layout.labels[0].format(split=name)
    for directory in (image_dir, label_dir):
        if directory.exists() and any(directory.iterdir()):
            raise DataError(f"{directory} exists and is not empty: choose another split name, or remove it first")
    for directory in (image_dir, label_dir):
        _without_folder_links(root, directory)
    for image, label in pairs:
        stem = relative_stem(listing, image)
        for source, target in ((image, image_dir / (stem + image.name[len(Path(stem).name):])),
                               (label, label_dir / (stem + label.name[len(Path(stem).name):]))):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(source, target.parent), target)


def _without_folder_links(root: Path, directory: Path) -> None:
    """Make the folders from `root` down to `directory` folders of the root's own where they are links
    to folders elsewhere (`data prepare folder` links its `images/` to the source's), holding a link
    to each entry of the folder linked to: the split's links then go there, not into the other
    dataset's folder, and every path that worked still does."""
    folder = root
    for part in directory.relative_to(root).parts:
        folder = folder / part
        if folder.is_symlink() and folder.is_dir():
            linked = folder.resolve()
            folder.unlink()  # the link alone: what it points to is left as it is
            folder.mkdir()
            for entry in sorted(linked.iterdir()):
                (folder / entry.name).symlink_to(os.path.relpath(entry, folder))


def random_groups(listing: Listing, fraction: float, pattern: str = GROUP_PATTERN, seed: int = 0) -> List[str]:
    """Whole groups drawn at random (the same for the same `seed`), each only where it brings the
    pairs held out nearer `fraction` of the split's, for `hold_out`; at least one group is drawn and
    at least one left."""
    if not 0 < fraction < 1:
        raise ValueError(f"the fraction to hold out must be between 0 and 1, got {fraction}")
    by_group = groups(listing, pattern)
    if len(by_group) < 2:
        only = next(iter(by_group), None)
        raise DataError(f"{listing.split}: all {len(listing.pairs)} pairs are in one group ({only!r}, pattern "
                        f"{pattern!r}), so none can be held out whole; {MORE_GROUPS}")
    names = sorted(by_group)
    random.Random(seed).shuffle(names)
    target, drawn, held = fraction * len(listing.pairs), [], 0
    for name in names:  # a group is drawn where it brings the pairs held nearer the target: few large groups
        if abs(held + len(by_group[name]) - target) < abs(held - target):  # would overshoot it by far
            drawn.append(name)
            held += len(by_group[name])
    drawn = drawn or names[:1]
    if len(drawn) == len(names):
        raise DataError(f"{listing.split}: holding out {fraction:.0%} of {len(listing.pairs)} pairs takes every one of "
                        f"its {len(names)} groups; hold out a smaller fraction")
    return drawn


def group_folds(listing: Listing, folds: int, pattern: str = GROUP_PATTERN, seed: int = 0) -> List[List[str]]:
    """The groups dealt into `folds` folds of near-equal pairs (group k-fold cross-validation: each
    group held out by one fold's split and trained on by the others'): the largest group first, each
    to the fold that has the fewest pairs so far; groups of one size in an order drawn from `seed`."""
    by_group = groups(listing, pattern)
    if folds < 2 or folds > len(by_group):
        fewer = f"ask for 2 to {len(by_group)} folds, or " if len(by_group) >= 2 else ""
        raise DataError(f"{listing.split}: {count(len(by_group), 'group')} (pattern {pattern!r}) cannot make {folds} "
                        f"folds, each holding out a group of its own and training on the others; {fewer}{MORE_GROUPS}")
    names = sorted(by_group)
    random.Random(seed).shuffle(names)
    names.sort(key=lambda name: -len(by_group[name]))  # stable: the drawn order among groups of one size
    dealt: List[List[str]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for name in names:
        smallest = sizes.index(min(sizes))
        dealt[smallest].append(name)
        sizes[smallest] += len(by_group[name])
    return dealt


def hold_out(listing: Listing, held_out: Sequence[str], pattern: str = GROUP_PATTERN) -> Tuple[List[Pair], List[Pair]]:
    """(pairs of the other groups, pairs of `held_out` groups); every named group must exist."""
    by_group = groups(listing, pattern)
    unknown = [g for g in held_out if g not in by_group]
    if unknown:
        raise DataError(f"{listing.split}: no group {', '.join(map(repr, unknown))}; the groups are "
                        f"{', '.join(by_group)} (pattern {pattern!r})")
    fit = [pair for group, pairs in by_group.items() if group not in held_out for pair in pairs]
    kept = [pair for group in held_out for pair in by_group[group]]
    if not fit:
        raise DataError(f"{listing.split}: holding out {', '.join(held_out)} leaves nothing to train on")
    return fit, kept
