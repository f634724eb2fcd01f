"""`segnext data check NAME ROOT`: is this dataset complete and readable?

For each split it lists the pairs like `build_dataset` does, then decodes every image and label
(in a process pool) and reports, one line per problem naming the file:
- a split that is empty or has no labels; a train or val split that is absent;
- images without a label, labels without an image, split-list entries without an image;
- files that cannot be read (missing, truncated, corrupt, unusable mode);
- image and label of different sizes;
- label values that are not classes of the dataset (nor the ignore value);
- file names in which the dataset's own group pattern (a classes.json's "groups") finds nothing;
- a training split that labels one class or none (a note for each class it lacks), with what to
  do where the pixels are likely stored as the ignore value (binary masks of 0 and 255).
A note also counts the pixels where a TIFF image holds no data (`no_data_of`: an orthophoto's
outside) that its label gives a class, which a model trained on the images as they are would learn.
It also counts the pairs (compared with the standard release, as a note), notes images of 16-bit
samples read as RGB by their top byte (with the highest level it reaches), and counts the pixels of
every class, from which `median_frequency_weights` derives class weights for the loss. `check_dataset`
returns the reports; the CLI exits non-zero when any problem was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..constants import IGNORE_INDEX
from ..utils import count
from .bands import read_bands, read_image_or_bands, reads_bands, row_bands
from .conversion import run_tasks
from .datasets import (
    GROUP_PATTERN,
    DatasetSpec,
    Listing,
    SplitNotFound,
    empty_split_problem,
    flat_images_hint,
    get_spec,
    labels_of_another_type,
    list_split,
    resolve_split,
    split_names,
    splits_on_disk,
)
from .geotiff import no_data_where
from .io import DataError, has_16_bit_samples, read_label
from .selection import select_spec_classes
from .splits import CAMERA_PREFIXES, shared_group
from .tiff_scene import TiffScene, open_tiff_scene_as

ABSENT = "absent"  # SplitReport.layout of a standard split with no folder below the root


@dataclass
class SplitReport:
    dataset: str
    split: str
    root: str
    layout: str
    pairs: int
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    groups: Optional[Dict[str, int]] = None  # pairs per group read from the file names (None: the names carry none)
    class_pixels: Optional[np.ndarray] = None  # pixels per class id (after the label map)
    images_with_class: Optional[np.ndarray] = None  # pairs in which each class occurs
    pixels_of_images_with_class: Optional[np.ndarray] = None  # all pixels of those pairs (ignored ones too)
    ignored_pixels: int = 0


def _check_pair(image_path: str, label_path: str, table: np.ndarray, known: np.ndarray,
                channels: Optional[int] = None, bands: bool = False):
    """(problems, histogram of the stored label values, 256 bins, or None when the label is unreadable,
    the image's channels or None when it is unreadable, the highest level of an image of 16-bit
    samples read as RGB or None, (pixels where the image holds no data, those of them its label gives
    a class, the histogram of its stored label values there) or None where it holds data everywhere).
    channels: other than 3, the images are files of that many bands (a model's in_channels); bands:
    three are too."""
    problems = []
    image = label = top_level = None
    as_bands = reads_bands(channels, bands)
    try:  # a TIFF scene and label map decoded a band of rows at a time: a scene larger than memory is checked
        image = _tiff_read_through(image_path, "bands" if as_bands else "picture", channels)
        if image is None:
            image = read_bands(image_path, channels) if as_bands else read_image_or_bands(image_path)
        if image.dtype == np.uint8 and has_16_bit_samples(image_path):
            top_level = int(image.max())
    except (DataError, FileNotFoundError) as error:
        problems.append(str(error))
    raw_counts = np.zeros(256, dtype=np.int64)
    try:
        label = _tiff_read_through(label_path, "label", counts=raw_counts)
        if label is None:
            label = read_label(label_path)
            raw_counts = np.bincount(label.ravel(), minlength=256)
    except (DataError, FileNotFoundError) as error:
        problems.append(str(error))
    image_channels = None if image is None else image.shape[2]
    if label is None:
        return problems, None, image_channels, top_level, None
    if image is not None and image.shape[:2] != label.shape[:2]:
        problems.append(f"{label_path}: label is {label.shape[1]}x{label.shape[0]} but its image {image_path} "
                        f"is {image.shape[1]}x{image.shape[0]}")
    unknown = np.flatnonzero((raw_counts > 0) & ~known)
    if unknown.size:
        shown = ", ".join(f"{v} ({raw_counts[v]} px)" for v in unknown[:10])
        problems.append(f"{label_path}: label values outside the classes: {shown}")
    no_data = None
    if image is not None and image.shape[:2] == label.shape[:2]:
        try:
            no_data = _labelled_no_data(image_path, label, table)
        except DataError as error:
            problems.append(str(error))
    return problems, raw_counts, image_channels, top_level, no_data


def _labelled_no_data(image_path: str, label, table: np.ndarray) -> Optional[Tuple[int, int, np.ndarray]]:
    """(pixels where the TIFF image holds no data, those of them `label` gives a class, the histogram
    of the stored label values there, 256 bins), None where it holds data everywhere (or is no TIFF).
    A `TiffScene` label is read a band of rows at a time."""
    no_data = no_data_where(image_path)
    if no_data is None:
        return None
    if no_data.shape != tuple(label.shape[:2]):  # an image turned by its orientation tag as it is read
        raise DataError(f"{image_path}: its no-data mask is {no_data.shape[1]}x{no_data.shape[0]} and the image as "
                        f"read {label.shape[1]}x{label.shape[0]}; write it without an orientation tag")
    stored = np.zeros(256, dtype=np.int64)
    for rows in row_bands(*no_data.shape, at_least=getattr(label, "segment_rows", 1)):
        values = np.asarray(label[rows])
        values = values if values.ndim == 2 else values[:, :, 0]
        stored += np.bincount(values[no_data[rows]], minlength=256)
    labelled = int(stored[table != IGNORE_INDEX].sum())
    return int(no_data.sum()), labelled, stored


def _tiff_read_through(path: str, reader: str, channels: Optional[int] = None,
                       counts: Optional[np.ndarray] = None) -> Optional[TiffScene]:
    """The TIFF at `path` as a `TiffScene` (see `open_tiff_scene_as`) once each of its tiles or strips
    is decoded (a damaged one raises `DataError` naming the file), the stored values counted into
    `counts` on the way; None where it is read whole."""
    scene = open_tiff_scene_as(path, reader, channels) if find_spec("tifffile") else None
    if scene is not None:
        for rows in row_bands(*scene.shape[:2], at_least=scene.segment_rows):
            values = scene[rows]
            if counts is not None:
                counts += np.bincount(values.ravel(), minlength=len(counts))
    return scene


def _check_task(task):
    return _check_pair(*task)


def _listing_problems(listing: Listing) -> List[str]:
    other_type = labels_of_another_type([label for _, label in listing.images_without_label])
    problems = [f"{image}: image without label (looked for {label}{other_type.get(label, '')})"
                for image, label in listing.images_without_label]
    problems += [f"{label}: label without image" for label in listing.labels_without_image]
    problems += [f"{listing.split_file}: lists {stem} but {image} does not exist"
                 for stem, image in listing.listed_but_missing]
    return problems


def _groups(spec: DatasetSpec, listing: Listing) -> Tuple[Optional[Dict[str, int]], List[str]]:
    """(pairs per group (video sequence, city, site) as the file names carry them, in order of first
    appearance, None where they carry none: each name its own group, or no pattern; the prefixes
    cameras give their files (IMG_0001) are no groups. The problem of a group pattern of the
    dataset's own, a classes.json's, that finds nothing in some names: every tool that reads groups
    (data split, the intervals, the notes on shared sequences) would stop at them.)"""
    if spec.group_pattern is None:
        return None, []
    found: Dict[str, int] = {}
    missed = []
    for image, _ in listing.pairs:
        try:
            group = shared_group(listing, image, spec.group_pattern)
        except DataError:
            missed.append(image)
            continue
        if group is not None and group.lower() not in CAMERA_PREFIXES:
            found[group] = found.get(group, 0) + 1
    if not missed or spec.group_pattern == GROUP_PATTERN:  # the default finds a group in all but "_..." names
        return found or None, []
    return found or None, [
        f"{missed[0]}: the group pattern {spec.group_pattern!r} (\"groups\" in classes.json) finds nothing in this "
        f"name ({len(missed)} of the {count(len(listing.pairs), 'name')}); correct the pattern so that it finds the "
        f"video sequence (or site) in every file name, or write \".+\" if the images are independent"]


def check_split(spec: DatasetSpec, root, split: str, workers: Optional[int] = None,
                progress: bool = True, channels: Optional[int] = None, bands: bool = False,
                label_no_data: bool = False) -> SplitReport:
    try:
        listing = list_split(spec, root, split)
    except SplitNotFound:
        raise
    except DataError as error:  # there, but it cannot be listed (two images with the same stem)
        return SplitReport(spec.name, resolve_split(spec, split), str(root), "cannot be listed", 0,
                           problems=[str(error)])
    layout = listing.layout
    report = SplitReport(spec.name, listing.split, str(listing.root), layout.describe(listing.root, listing.split),
                         len(listing.pairs), problems=_listing_problems(listing))
    if listing.linked_folders:
        report.notes.append(f"{', '.join(listing.linked_folders)}: left out, their images are links to images listed "
                            f"here (splits written by `segnext data split`)")
    report.groups, group_problems = _groups(spec, listing)
    report.problems += group_problems
    expected = spec.expected_counts.get(listing.split)
    if expected is not None and expected != len(listing.pairs):
        report.notes.append(f"{count(len(listing.pairs), 'pair')} in {listing.split}; the standard release has "
                            f"{expected:,}")
    if not listing.pairs:
        report.problems.append(empty_split_problem(listing))
        return report
    table = layout.label_map.table
    tasks = [(str(image), str(label), table, layout.label_map.known, channels, bands)
             for image, label in listing.pairs]
    outcomes = run_tasks(_check_task, tasks, workers, f"check {spec.name} {listing.split}", progress)
    totals = np.zeros(256, dtype=np.int64)
    presence = np.zeros(256, dtype=np.int64)
    pixels_where_present = np.zeros(256, dtype=np.int64)
    stored_values = np.zeros(256, dtype=np.int64)
    images_by_channels: Dict[int, List[str]] = {}
    sixteen_bit: List[Tuple[str, int]] = []
    labelled_no_data: List[Tuple[str, int, int]] = []  # (image, its no-data pixels, those labelled)
    for (image, _), (problems, raw_counts, image_channels, top_level, no_data) in zip(listing.pairs, outcomes):
        report.problems += problems
        if no_data is not None and no_data[1]:
            labelled_no_data.append((str(image), *no_data[:2]))
        ignored_no_data = 0
        if no_data is not None and raw_counts is not None and not label_no_data:  # as training reads the pair
            stored_values += no_data[2]  # what the file holds; the classes count what training learns
            raw_counts, ignored_no_data = raw_counts - no_data[2], no_data[0]
        if top_level is not None:
            sixteen_bit.append((str(image), top_level))
        if image_channels is not None:
            images_by_channels.setdefault(image_channels, []).append(str(image))
        if raw_counts is not None:
            stored_values += raw_counts
            counts = np.bincount(table, weights=raw_counts, minlength=256).astype(np.int64)
            counts[IGNORE_INDEX] += ignored_no_data
            totals += counts
            presence += counts > 0
            pixels_where_present += (counts > 0) * counts.sum()
    if len(images_by_channels) > 1:  # arrays and TIFFs are read with the bands they hold
        kinds = " and ".join(f"{count(len(paths), 'image')} of {channels_held} (e.g. {paths[0]})"
                             for channels_held, paths in sorted(images_by_channels.items()))
        report.problems.append(f"{spec.name} {listing.split}: the images hold different numbers of channels: {kinds}; "
                               f"a model takes one: give every image its bands, in one order")
    if sixteen_bit:  # aerial and satellite RGB: often 12 bits or reflectances in 16-bit files
        path, level = max(sixteen_bit, key=lambda item: item[1])
        report.notes.append(f"{count(len(sixteen_bit), 'image')} of 16-bit samples, read as 8-bit RGB by their top "
                            f"byte as OpenCV reads them (the brightest, {path}: levels up to {level} of 255): where "
                            f"the data use a smaller range than 16 bits, read them as bands at all their bits "
                            f"(--bands here, data.bands=true in training, data.mean/data.std from `segnext data "
                            f"stats --bands`) or stretch them to 8 bits over the range they use (e.g. gdal_translate "
                            f"-ot Byte -scale LOW HIGH 0 255)")
    if labelled_no_data:  # rasterized polygons with a background, label maps of the whole raster
        path, pixels, labelled = max(labelled_no_data, key=lambda item: item[2])
        treated = ("counted here as their classes, as training with data.label_no_data true learns them"
                   if label_no_data else "training and evaluation leave them unlabelled, as `segnext data tile` "
                   "does, and the class counts here leave them out (--label-no-data counts them, as training with "
                   "data.label_no_data true learns them)")
        report.notes.append(f"{count(len(labelled_no_data), 'image')} with no data in places (a mask, 'no data' "
                            f"value or alpha band, as GDAL finds them) labelled as classes there: "
                            f"{sum(item[2] for item in labelled_no_data):,} pixels (the most, {path}: {labelled:,} of "
                            f"its {pixels:,}); {treated}")
    num_classes = len(spec.class_names)
    report.class_pixels = totals[:num_classes]
    report.images_with_class = presence[:num_classes]
    report.pixels_of_images_with_class = pixels_where_present[:num_classes]
    report.ignored_pixels = int(totals[IGNORE_INDEX])
    if listing.split == resolve_split(spec, "train") and report.class_pixels.sum() + report.ignored_pixels > 0:
        _report_unlearnable_classes(spec, report, stored_values, table)
    return report


def _report_unlearnable_classes(spec: DatasetSpec, report: SplitReport, stored_values: np.ndarray,
                                table: np.ndarray) -> None:
    """The classes the training split never labels: a note (a subset of a dataset may lack some), a
    problem where it labels one class or none (nothing to tell apart). Where the labels store class
    ids and many pixels hold the ignore value 255, the likely cause: binary masks of 0 and 255."""
    absent = np.flatnonzero(report.class_pixels == 0)
    if not absent.size:
        return
    names = ", ".join(f"'{spec.class_names[i]}' (id {i})" for i in absent[:10])
    names += f" and {absent.size - 10} more classes" if absent.size > 10 else ""
    message = f"{spec.name} {report.split}: no labelled pixel of {names}: the model cannot learn " + \
              ("it" if absent.size == 1 else "them")
    num_classes = len(spec.class_names)
    stores_ids = np.array_equal(table[:num_classes], np.arange(num_classes))  # stored value k is class k
    if stores_ids and stored_values[IGNORE_INDEX]:
        share = 100 * stored_values[IGNORE_INDEX] / stored_values.sum()
        message += (f". {share:.1f}% of the pixels are stored as 255, the ignore value: if 255 marks a class "
                    f"(binary masks of 0 and 255), give that class the colour [255, 255, 255] in classes.json's "
                    f"\"palette\" (and each other class its grey, e.g. [0, 0, 0]) and convert the labels once "
                    f"with `segnext data prepare folder SRC DST`")
    if num_classes - absent.size <= 1:
        report.problems.append(message)
    else:
        report.notes.append(message)


def training_splits(spec: DatasetSpec) -> List[str]:
    """The standard splits a training run reads with the default data.train_split / data.val_split
    ("train" and "val", by the dataset's own names)."""
    return [split for split in spec.splits if split in (resolve_split(spec, "train"), resolve_split(spec, "val"))]


def check_dataset(name: str, root, split: Optional[str] = None, workers: Optional[int] = None,
                  progress: bool = True, classes: Any = None, channels: Optional[int] = None,
                  bands: bool = False, label_no_data: bool = False) -> List[SplitReport]:
    """Check `split` (or every standard split; "train+val": each) of dataset `name` below `root`.

    A split that exists but is empty or unlabelled is a problem. Without `split`, a standard split
    that is absent is reported with layout ABSENT: a problem when training reads it (the train and
    val splits), a note otherwise (e.g. a test split). A `split` asked for that is absent raises
    DataError, as does a root where no standard split is found. classes: a selection as
    `data.classes` takes it: the frequencies and weights are those of the classes selected.
    channels: other than 3, every image must be a file of that many bands (`read_bands`); by default
    image files are read as RGB and arrays with the bands they hold. bands: images of three channels
    are files of bands too (colour of more than 8 bits a sample). label_no_data: count the pixels
    where a TIFF image holds no data as the classes its label gives them (as training with
    data.label_no_data true learns them); by default they are ignored pixels, as training reads them.
    """
    spec = get_spec(name, root)
    if classes is not None:
        spec = select_spec_classes(spec, classes)
    if split is not None:  # "train+val": each of them
        return [check_split(spec, root, part, workers, progress, channels, bands, label_no_data)
                for part in split_names(split)]
    reports = []
    needed = training_splits(spec)
    for standard_split in spec.splits:
        try:
            reports.append(check_split(spec, root, standard_split, workers, progress, channels, bands,
                                       label_no_data))
        except SplitNotFound as error:
            report = SplitReport(spec.name, standard_split, str(root), ABSENT, 0)
            if standard_split in needed:
                report.problems.append(f"{spec.name} {standard_split}: absent, and training reads it. {error}")
            reports.append(report)
    # a folder dataset's splits are whatever its folders are called (valid, test): each is checked
    others = [found for found in splits_on_disk(spec, root) if found not in spec.splits] if name == "folder" else []
    sources = _linked_from_standard_splits(spec, root, others, reports)
    others = [found for found in others if found not in sources]
    if sources:
        next(report for report in reports if report.pairs).notes.append(
            f"{', '.join(sources)} hold the frames that {' and '.join(r.split for r in reports if r.pairs)} link to "
            f"(as `segnext data split` writes them): checked there, not again (--split {sources[0]} checks one)")
    reports += [check_split(spec, root, found, workers, progress, channels, bands, label_no_data) for found in others]
    if not others and all(report.layout == ABSENT for report in reports):
        raise DataError(f"{root}: none of the {spec.title} splits {', '.join(spec.splits)} found "
                        f"(pass --split for another). To make the layout: {spec.prepare}; see docs/datasets.md"
                        f"{flat_images_hint(spec, root)}")
    return reports


def _linked_from_standard_splits(spec: DatasetSpec, root, others: Sequence[str],
                                 reports: Sequence[SplitReport]) -> List[str]:
    """The folders of `others` whose every image the standard splits hold too, through links: the
    sequence folders a `data split --split .` divided into train and val."""
    standard = [report.split for report in reports if report.pairs]
    if not others or not standard:
        return []
    linked = {image.resolve() for split in standard for image, _ in list_split(spec, root, split).pairs}
    sources = []
    for other in others:
        images = [image.resolve() for image, _ in list_split(spec, root, other).pairs]
        if images and all(image in linked for image in images):
            sources.append(other)
    return sources


def median_frequency_weights(report: SplitReport, power: float = 0.5) -> List[float]:
    """Class weights for `loss.class_weight` from a split's pixels: median-frequency balancing as
    SegNet uses it (Badrinarayanan et al., after Eigen and Fergus), weight = median(freq) / freq with
    freq = a class's pixels / all pixels of the images where it occurs, raised to `power`. The
    square root (0.5, the CamVid recipes' choice) lifts the rare classes less than the full weights
    (power 1), which over-predict them. A class the split never shows gets 1.0 (it has no pixels to
    weight); rounded to 2 decimals, as a config holds them."""
    present = report.class_pixels > 0
    if not present.any():
        raise DataError(f"{report.dataset} {report.split}: no labelled pixels, so no class frequencies to weight")
    frequency = report.class_pixels[present] / report.pixels_of_images_with_class[present]
    weights = np.ones(len(report.class_pixels))
    weights[present] = (np.median(frequency) / frequency) ** power
    return [round(float(w), 2) for w in weights]


def format_frequencies(spec_names: Sequence[str], report: SplitReport) -> List[str]:
    """A table of the pixels of each class of a split, with the class weights they suggest."""
    labelled = int(report.class_pixels.sum())
    total = labelled + report.ignored_pixels
    width = max(12, max(len(n) for n in spec_names))
    weights = median_frequency_weights(report) if labelled else [1.0] * len(spec_names)
    lines = [f"class pixel frequencies, {report.split} ({count(report.pairs, 'pair')}, {total:,} pixels, "
             f"ignored {report.ignored_pixels:,} = {100 * report.ignored_pixels / max(total, 1):.2f}%)",
             f"  {'id':>3}  {'class':<{width}} {'pixels':>15} {'% labelled':>10} {'images':>8} {'weight':>7}"]
    for class_id, name in enumerate(spec_names):
        pixels = int(report.class_pixels[class_id])
        lines.append(f"  {class_id:>3}  {name:<{width}} {pixels:>15,} {100 * pixels / max(labelled, 1):>10.2f} "
                     f"{int(report.images_with_class[class_id]):>8} {weights[class_id]:>7.2f}")
    if labelled and "train" in report.split:  # weights to train with come from a training split
        lines.append(f"  weight: square root of median-frequency balancing, for rare classes; to train with it: "
                     f"loss.class_weight=[{','.join(f'{w:g}' for w in weights)}]")
    return lines
