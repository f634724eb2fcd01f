"""What `segnext predict` writes once for all the images of a run, each image's labels added as it is
saved (`add`), the file written at the end (`write`, which says what it wrote): the COCO-format
masks (`--coco`), Label Studio's tasks (`--label-studio`), the archive a benchmark's server takes
(`--submission`), each image's share of every class (`--class-areas`) and the images least
confident first (`--confidence`)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from ..constants import IGNORE_INDEX, TIFF_SUFFIXES

CONFIDENCE_TABLE = "confidence.csv"


class CocoPredictions:
    """The label maps of a run as one COCO-format file (`--coco`): per image, an RLE mask per class."""

    def __init__(self, class_names, path: Path):
        from ..data.formats import coco

        self.format, self.class_names, self.path = coco, list(class_names), path
        self.skipped = coco.background_classes(self.class_names)
        self.images: List[dict] = []
        self.annotations: List[dict] = []

    def add(self, image: Path, file_name: str, result) -> None:
        labels = result.labels
        height, width = labels.shape
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)})
        self.annotations += self.format.label_annotations(labels, image_id, len(self.annotations) + 1, self.skipped)

    def write(self) -> str:
        import json

        from ..utils import atomic_write

        document = {"info": {"description": "segnext predictions"}, "images": self.images,
                    "annotations": self.annotations, "categories": self.format.categories(self.class_names,
                                                                                          self.skipped)}
        atomic_write(self.path, lambda temporary: temporary.write_text(json.dumps(document) + "\n"))
        return f"wrote {self.path}: {len(self.annotations)} masks of {len(self.images)} image(s) in COCO format"


class LabelStudioPredictions:
    """The label maps of a run as Label Studio tasks with predictions (`--label-studio`): per image a
    brush per class, the image named as a local file below the current folder (or `url` + its path
    below the folder given); and the labelling interface of the classes beside them.

    With `pictures_in` (the output folder), images a browser cannot show (arrays and TIFFs of bands)
    are shown from a picture of their first three bands written there (NAME_picture.png), named in
    each task's "picture", while its "image" keeps naming the file the labels belong to (what
    `segnext data prepare folder` pairs the exported labels with)."""

    def __init__(self, class_names, palette, path: Path, model_version: str, url: Optional[str] = None,
                 pictures_in: Optional[Path] = None):
        from ..data.formats import coco, label_studio

        self.format, self.class_names, self.palette, self.path = label_studio, list(class_names), palette, path
        self.skipped = coco.background_classes(self.class_names)
        self.model_version, self.url, self.pictures_in = model_version, url, pictures_in
        self.tasks: List[dict] = []
        self.pictures = 0

    def reference(self, file: Path, relative: str) -> str:
        """How a task names `file`: `url` + its `relative` path, or Label Studio's URL of a local file."""
        from urllib.parse import quote

        if self.url:
            return self.url.rstrip("/") + "/" + quote(relative, safe="/")
        absolute = file.resolve()
        try:
            local = absolute.relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:  # outside the current folder: its path from the root
            local = absolute.as_posix().lstrip("/")
        return self.format.LOCAL_FILES_URL + quote(local, safe="/")

    def add(self, image: Path, file_name: str, result) -> None:
        from ..data import write_image

        data = {"image": self.reference(image, file_name)}
        if self.pictures_in is not None:
            data[self.format.PICTURE_FIELD] = data["image"]
            if image.suffix.lower() not in self.format.SHOWN_SUFFIXES:
                relative = f"{PurePosixPath(file_name).with_suffix('')}_picture.png"
                picture = self.pictures_in / relative
                picture.parent.mkdir(parents=True, exist_ok=True)
                write_image(picture, result.image)
                data[self.format.PICTURE_FIELD] = self.reference(picture, relative)
                self.pictures += 1
        prediction = {"model_version": self.model_version,
                      "result": self.format.label_results(result.labels, self.class_names, self.skipped)}
        if result.confidence is not None:  # Label Studio's Data Manager sorts tasks by it
            from ..inference.segmenter import confidence_summary

            prediction["score"] = round(confidence_summary(result.confidence)[0] / 100, 4)
        self.tasks.append({"data": data, "predictions": [prediction]})

    def write(self) -> str:
        import json

        from ..utils import atomic_write

        config = self.path.with_suffix(".xml")
        atomic_write(self.path, lambda temporary: temporary.write_text(json.dumps(self.tasks) + "\n"))
        shown = self.format.PICTURE_FIELD if self.pictures_in is not None else "image"
        atomic_write(config, lambda temporary: temporary.write_text(
            self.format.label_config(self.class_names, self.palette, self.skipped, shown)))
        serve = f"the images at {self.url}" if self.url else (
            f"serve the images with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={Path.cwd()}")
        pictures = "" if not self.pictures else (
            f"; {self.pictures} image(s) a browser cannot show (arrays, TIFFs) are shown from pictures of their first "
            f"three bands, NAME_picture.png in {self.pictures_in}" +
            (f" (copy them to {self.url} beside the images)" if self.url else " (a local storage of that folder too)"))
        return (f"wrote {self.path}: {len(self.tasks)} Label Studio task(s) with predictions, and {config}: their "
                f"labelling interface (Settings > Labeling Interface > Code); {serve}{pictures}")


class SubmissionArchive:
    """The label maps of a run packed into the file a benchmark's server takes (`--submission`):
    OUT.zip or OUT.tar.gz beside OUT, holding the files of this run only."""

    def __init__(self, benchmark, out: Path, label_paths: Dict[Path, Path]):
        self.benchmark = benchmark  # a segnext.data.submission.SubmissionFormat
        self.out = out
        self.label_paths = label_paths  # each image's label map, as the run writes it
        self.written: List[Path] = []
        resolved = out.resolve()
        self.archive = resolved.with_name(f"{resolved.name}.{self.benchmark.archive}")

    def add(self, image: Path, file_name: str, result) -> None:
        self.written.append(self.label_paths[image])

    def write(self) -> str:
        from ..data.submission import write_submission_archive

        write_submission_archive(self.archive, self.out, self.written)
        missing = len(self.label_paths) - len(self.written)
        return (f"wrote {self.archive}: {len(self.written)} label map(s) as the {self.benchmark.name} evaluation "
                f"server takes them; upload this file" + (f" ({missing} image(s) failed and are not in it)"
                                                          if missing else ""))


class ClassAreas:
    """Each image's share of pixels per class (`--class-areas`), in the order the images came, and
    for a georeferenced image whose georeference gives its pixels' ground area (`row_ground_areas`:
    projected metres or feet, or longitude and latitude on the WGS 84 ellipsoid, where a pixel's area
    is its row's), each class's area in square metres, and the mean area of its pixels."""

    def __init__(self, class_names, path: Path, unlabelled: bool):
        self.class_names, self.path, self.unlabelled = list(class_names), path, unlabelled
        self.rows: List[list] = []
        self.areas: List[Optional[list]] = []  # per row: its pixel's area and each class's, or None

    def add(self, image: Path, file_name: str, result) -> None:
        import numpy as np

        from ..data.bands import row_bands

        labels = np.asarray(result.labels)
        counts = np.bincount(labels.ravel(), minlength=max(len(self.class_names), IGNORE_INDEX + 1))
        kept = list(counts[: len(self.class_names)]) + ([counts[IGNORE_INDEX]] if self.unlabelled else [])
        shares = [100.0 * pixels / max(labels.size, 1) for pixels in kept]
        self.rows.append([file_name, labels.shape[1], labels.shape[0], *(f"{share:.2f}" for share in shares)])
        row_areas = _row_ground_areas(image, labels.shape[0])
        if row_areas is None:
            self.areas.append(None)
            return
        if np.all(row_areas == row_areas[0]):  # projected: every pixel alike
            areas = np.asarray(kept, dtype=np.float64) * row_areas[0]
        else:  # each row's pixels their row's area, a band of rows at a time
            weighted = np.zeros(counts.size)
            for rows in row_bands(*labels.shape):
                weighted += np.bincount(labels[rows].ravel(), weights=np.repeat(row_areas[rows], labels.shape[1]),
                                        minlength=counts.size)
            areas = np.concatenate([weighted[: len(self.class_names)], [weighted[IGNORE_INDEX]] if self.unlabelled
                                    else []])
        self.areas.append([f"{row_areas.mean():.6g}", *(f"{area:.2f}" for area in areas)])

    def write(self) -> str:
        from ..utils import write_csv

        columns = self.class_names + (["unlabelled"] if self.unlabelled else [])
        header = ["image", "width", "height", *columns]
        rows = self.rows
        measured = sum(areas is not None for areas in self.areas)
        if measured:
            header += ["pixel m2", *(f"{name} m2" for name in columns)]
            blank = [""] * (len(columns) + 1)
            rows = [row + (areas if areas is not None else blank) for row, areas in zip(rows, self.areas)]
        write_csv(self.path, header, rows)
        return (f"wrote {self.path}: the share of the pixels of {len(self.rows)} image(s) given each of the "
                f"{len(self.class_names)} classes (percent)" +
                (f", and their areas in square metres for the {measured} whose georeference gives them" if measured
                 else ""))


def _row_ground_areas(image: Path, height: int):
    """The ground area in square metres of a pixel of each of `image`'s rows, None where its
    georeference does not give it (or it has none, or it is a TIFF and tifffile is not installed)."""
    if image.suffix.lower() in TIFF_SUFFIXES and not find_spec("tifffile"):
        return None
    from ..data.geotiff import row_ground_areas

    return row_ground_areas(image, height)


class ConfidenceTable:
    """Each image's mean confidence (`--confidence`), least confident first: the images to label next."""

    def __init__(self, path: Path, unsure_below: float):
        self.path, self.unsure_below = path, unsure_below  # what counts as unsure: --unsure-below's, else 50%
        self.rows: List[tuple] = []

    def add(self, image: Path, file_name: str, result) -> None:
        from ..inference.segmenter import confidence_summary

        self.rows.append((*confidence_summary(result.confidence, self.unsure_below), str(image)))

    def write(self, shown: int = 5) -> str:
        from ..utils import write_csv

        self.rows.sort()
        write_csv(self.path, ["image", "confidence", "unsure_pixels"],
                  ([image, f"{mean:.2f}", f"{unsure:.2f}"] for mean, unsure, image in self.rows))
        least = "\n".join(f"  confidence {mean:5.1f}%  unsure pixels {unsure:5.1f}%  {image}"
                           for mean, unsure, image in self.rows[:shown])
        return (f"wrote {self.path}: the mean confidence of {len(self.rows)} image(s) and their share of pixels "
                f"under {self.unsure_below:.0%}, least confident first (label those first):\n{least}")
