"""Training on some of a dataset's classes, or on classes merged from several (`data.classes`).

    [road, car, person]                     these classes, in this order; the others are ignored (255)
    {vehicle: [car, truck, bus], road: road} each new class from one or more of the dataset's
    {road: road, other: "*"}                 "*": every class no other entry names

Pixels of a class that no entry names are ignored, as MMSegmentation ignores the classes left out of
a dataset's `classes` (they are not background: to learn "the rest", name it with "*"). The
selection is applied after the dataset's own label map, so it works the same for every dataset;
each new class keeps the colour of its first class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import did_you_mean
from .datasets import DatasetSpec, LabelMap
from .io import DataError

EVERY_OTHER_CLASS = "*"


@dataclass(frozen=True)
class SelectedLabels:
    """A dataset's label map followed by the selection: class id -> new class id (255: ignored)."""

    inner: Callable[[np.ndarray], np.ndarray]
    new_id: np.ndarray  # (256,) uint8, indexed by the dataset's class id
    source_names: Tuple[str, ...]  # the dataset's classes
    members: Tuple[Tuple[int, ...], ...]  # for each new class, the dataset's classes it takes

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.new_id[self.inner(raw)]


def selection_table(class_names: Sequence[str], selection: Any, where: str = "data.classes"
                    ) -> Tuple[List[str], np.ndarray, List[List[int]]]:
    """(the new class names, new_id (256,) uint8: dataset class id -> new id or 255, for each new
    class the dataset classes it takes) of a selection (see the module docstring)."""
    index = {name: i for i, name in enumerate(class_names)}
    folded: Dict[str, List[int]] = {}
    for name, i in index.items():
        folded.setdefault(name.casefold(), []).append(i)

    def find(name: Any) -> Any:
        """The dataset's class id of `name`; letter case aside where that is unambiguous."""
        if name in index:
            return index[name]
        matches = folded.get(str(name).casefold(), [])
        return matches[0] if len(matches) == 1 else None

    if isinstance(selection, (list, tuple)):  # the dataset's own spelling of each name
        groups: Dict[str, Any] = {class_names[find(n)] if find(n) is not None else str(n): [n] for n in selection}
        if len(groups) != len(selection):
            raise DataError(f"{where}: a class is listed twice in {list(selection)}")
    elif isinstance(selection, dict):
        groups = {str(name): sources for name, sources in selection.items()}
    else:
        raise DataError(f"{where}: a list of class names ([road, car]) or a mapping of new classes to the "
                        f"dataset's ({{vehicle: [car, bus]}}), got {selection!r}")
    if not groups:
        raise DataError(f"{where}: empty; name at least one class")
    taken: Dict[int, str] = {}
    members: List[List[int]] = []
    rest = [name for name, sources in groups.items() if sources == EVERY_OTHER_CLASS]
    if len(rest) > 1:
        raise DataError(f"{where}: \"*\" (every other class) may stand for one new class only, not {rest}")
    for name, sources in groups.items():
        entry = where if isinstance(selection, (list, tuple)) else f"{where}.{name}"
        if sources == EVERY_OTHER_CLASS:
            members.append([])
            continue
        sources = [sources] if isinstance(sources, str) else sources
        if not isinstance(sources, (list, tuple)) or not sources or not all(isinstance(s, str) for s in sources):
            raise DataError(f"{entry}: a class name of the dataset, a list of them, or \"*\"; got {sources!r}")
        ids = []
        for source in sources:
            if find(source) is None:
                raise DataError(f"{entry}: {source!r} is not a class of the dataset "
                                f"({', '.join(class_names[:12])}{', ...' if len(class_names) > 12 else ''})."
                                f"{did_you_mean(source, list(class_names))}")
            if find(source) in taken:
                raise DataError(f"{where}: {source!r} is in both {taken[find(source)]!r} and {name!r}")
            taken[find(source)] = name
            ids.append(find(source))
        members.append(ids)
    names = list(groups)
    if rest:
        members[names.index(rest[0])] = [i for i in range(len(class_names)) if i not in taken]
        if not members[names.index(rest[0])]:
            raise DataError(f"{where}.{rest[0]}: \"*\" takes no class: the other entries name them all")
    new_id = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for new, ids in enumerate(members):
        new_id[ids] = new
    return names, new_id, members


def select_classes(dataset, selection: Any, where: str = "data.classes"):
    """`dataset` (a SegmentationDataset or a Hugging Face one) reading only the selected classes:
    its label map, class names, palette and number of classes replaced."""
    names, new_id, members = selection_table(dataset.class_names, selection, where)
    palette = [list(dataset.palette[ids[0]]) if ids and ids[0] < len(dataset.palette) else [0, 0, 0]
               for ids in members]
    dataset.label_map = SelectedLabels(dataset.label_map, new_id, tuple(dataset.class_names),
                                       tuple(tuple(ids) for ids in members))
    dataset.class_names, dataset.palette, dataset.num_classes = names, palette, len(names)
    return dataset


def select_spec_classes(spec: DatasetSpec, selection: Any, where: str = "--classes") -> DatasetSpec:
    """`spec` read with the selection (for `segnext data check --classes`): its class names, palette
    and every layout's label map (stored value -> selected class id) replaced."""
    names, new_id, members = selection_table(spec.class_names, selection, where)
    palette = tuple(tuple(spec.palette[ids[0]]) if ids and ids[0] < len(spec.palette) else (0, 0, 0)
                    for ids in members)
    layouts = tuple(replace(layout, label_map=LabelMap(new_id[layout.label_map.table], layout.label_map.known,
                                                       f"{layout.label_map.description}; classes selected"))
                    for layout in spec.layouts)
    return replace(spec, class_names=tuple(names), palette=palette, layouts=layouts)
