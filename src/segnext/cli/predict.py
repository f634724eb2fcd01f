"""`segnext predict --checkpoint C INPUT...`: label maps (palettised PNG), overlays, probabilities.

Inputs are files, folders (searched recursively for images) and glob patterns. Every image gets
OUT/<name>.png, a palettised PNG whose pixel values are the class ids (shown in the dataset's
colours); with --overlay also OUT/<name>_overlay.jpg, with --probs OUT/<name>_probs.npy
(float16, num_classes x H x W), and with --confidence OUT/<name>_confidence.png (each pixel's
confidence) and OUT/confidence.csv (the images least confident first: what to label next); for a
single image, `--out result.png` names the label map itself. With --submission BENCHMARK, the label
maps are written in the ids and layout that benchmark's evaluation server takes, and packed into the
file to upload (`segnext.data.submission`). With --geotiff the label maps are GeoTIFFs that keep
their image's georeference, and so are the overlays, the probabilities and the confidence.
Files from a folder keep their sub-folder below OUT; names that differ only in their ending keep it
(photo.jpg.png, photo.png.png). A video (.mp4, .avi, ...) gets OUT/<name>_overlay.mp4 and a label
PNG per frame in OUT/<name>/ (with --confidence, each frame's confidence PNG there too, and
OUT/<name>/confidence.csv, its frames least confident first).

Images are read by DataLoader workers and saved by a background thread while the model runs;
--batch-size groups images of one resized size into a forward pass (`segnext.inference.streaming`).

An image that cannot be read is reported with its name and skipped; the others are still
processed, and the exit status is 1 at the end.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..constants import ARRAY_SUFFIXES, IGNORE_INDEX, IMAGE_SUFFIXES, SUBMISSION_BENCHMARKS, VIDEO_SUFFIXES
from .arguments import (
    add_amp,
    add_backend,
    add_nmf_seed,
    add_reading,
    add_test_settings,
    amp_setting,
    backend_setting,
    positive_int,
    probability_between,
    test_settings,
    unit_fraction,
    with_examples,
)
from .predict_collectors import (
    CONFIDENCE_TABLE,
    ClassAreas,
    CocoPredictions,
    ConfidenceTable,
    LabelStudioPredictions,
    SubmissionArchive,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment images: label maps, colour overlays, class probabilities",
        description="Segment images and videos with a SegNeXt checkpoint (or an exported ONNX model). Test-time "
                    "settings come from the checkpoint (its evaluation settings, else its dataset's official "
                    "ones) unless given here.",
        **with_examples("segnext predict -c segnext-t-ade/ photo.jpg",
                        "segnext predict -c runs/demo/final_model photos/ --out predictions --overlay",
                        "segnext predict -c segnext-t-ade/ photos/ --batch-size 8 --amp    # on a GPU",
                        "segnext predict -c segnext-t-ade/ clip.mp4    # overlay video + a label PNG per frame",
                        "segnext predict --onnx segnext_t.onnx 'photos/**/*.png' --ms"))
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched for images), glob patterns, video files")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", "-c", help="any checkpoint create_model reads (official .pth, segnext dir)")
    source.add_argument("--onnx", help="an ONNX model written by `segnext export` (runs with onnxruntime)")
    parser.add_argument("--out", "-o", default="predictions",
                        help="output folder (default: predictions); for one image also a file NAME.png (its label "
                             "map; NAME_overlay.jpg, NAME_probs.npy beside it)")
    parser.add_argument("--overlay", action="store_true", help="also write the colours blended on the image")
    parser.add_argument("--alpha", type=unit_fraction, default=0.5, help="overlay colour weight (default 0.5)")
    parser.add_argument("--probs", action="store_true",
                        help="also write per-class probabilities (.npy, float16; a GeoTIFF with --geotiff)")
    parser.add_argument("--confidence", action="store_true",
                        help="also write each pixel's confidence (the probability of its label) as a greyscale PNG "
                             "(255: sure; dark where the model is unsure, which is where most of its errors are), "
                             "and OUT/confidence.csv: each image's mean confidence, least confident first (the "
                             "images to label next); with --label-studio, the mean is each prediction's score; a "
                             "video's frames: OUT/NAME/confidence.csv")
    parser.add_argument("--unsure-below", type=probability_between, metavar="P",
                        help="leave the pixels whose confidence is under P unlabelled: 255 in the label maps, "
                             "uncoloured in the overlays, left out of --coco and --label-studio (for the annotator "
                             "to label); calibrate the model first (`segnext calibrate`) for P to mean how often the "
                             "labels kept are right")
    parser.add_argument("--class-areas", metavar="FILE",
                        help="also write FILE (CSV): each image's size and the share of its pixels (percent) given "
                             "each class (and left unlabelled, with --unsure-below; with the areas in square "
                             "metres for georeferenced images in projected metres or feet, or in degrees on the "
                             "WGS 84 ellipsoid): cover, land use, what a folder "
                             "of images shows, without reading the label maps")
    parser.add_argument("--coco", metavar="FILE", help="also write the labels of all images into one COCO-format "
                                                       "file (a mask per class and image; a background class left "
                                                       "out): pre-annotations to correct in a labelling tool "
                                                       "(CVAT: COCO 1.0), read back by `segnext data prepare folder`")
    parser.add_argument("--label-studio", metavar="FILE",
                        help="also write every image as a Label Studio task with the labels as its predictions (a "
                             "brush per class; a background class left out), and FILE's .xml beside it: the "
                             "labelling interface of the classes. Images are named as local files below the "
                             "current folder (Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), or with "
                             "--label-studio-url")
    parser.add_argument("--label-studio-url", metavar="URL",
                        help="--label-studio names each image URL + its path below the folder given (cloud storage "
                             "Label Studio reads: s3://bucket/photos, gs://..., https://host/photos)")
    parser.add_argument("--submission", choices=SUBMISSION_BENCHMARKS, metavar="BENCHMARK",
                        help="write the label maps as BENCHMARK's evaluation server takes them, for a test split "
                             "whose labels are not public, and pack them into OUT.zip (OUT.tar.gz for voc) to "
                             "upload: cityscapes (label ids, not train ids), ade20k (ids 1..150), voc (the VOC "
                             "colour map, in results/VOC2012/Segmentation/comp6_test_cls/). The model must "
                             "predict that benchmark's classes")
    parser.add_argument("--geotiff", action="store_true",
                        help="write the label maps as GeoTIFFs (NAME.tif, the class colours as their palette) that "
                             "keep the georeference of each TIFF input (its GeoTIFF tags: where it lies, in which "
                             "coordinate system) or of an image with a world file (scene.jgw, .wld, .tfw), for "
                             "a GIS to lay the classes over the map; 255 is their 'no data' "
                             "where a TIFF holds no data (outside a scene's footprint: as GDAL finds it, its mask, "
                             "else its nodata value in every band, else its alpha band at 0) and with "
                             "--unsure-below; --overlay, --probs and --confidence then write "
                             "GeoTIFFs too: NAME_overlay.tif (RGB), NAME_probs.tif, a float16 band per class named "
                             "after it, and NAME_confidence.tif, float32 (needs tifffile)")
    parser.add_argument("--polygons", action="store_true",
                        help="also write each image's classes as polygons for a GIS: NAME.geojson, a feature per "
                             "connected region of one class (its outline along the pixels' edges, holes kept) with "
                             "the class's name, its pixels and its area; in the coordinate system of a georeferenced "
                             "TIFF input, else in pixels; no polygon where no label (needs rasterio: pip install "
                             "'segnext[gis]')")
    parser.add_argument("--sieve", type=positive_int, metavar="N",
                        help="merge each region of one class smaller than N pixels into its largest neighbouring "
                             "region before the label maps and everything made from them are written (GDAL's "
                             "sieve, as gdal_sieve.py: specks and slivers gone, fewer polygons); the confidence "
                             "and probabilities stay the model's (needs rasterio: pip install 'segnext[gis]')")
    parser.add_argument("--label-no-data", action="store_true",
                        help="with --geotiff, label the pixels where a TIFF holds no data like the others (by default "
                             "they are left unlabelled: 255, uncoloured in the overlay, 'unlabelled' in "
                             "--class-areas)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave out the images whose outputs (all those asked for) are in OUT already: a run "
                             "interrupted on a large folder goes on where it stopped (outputs are written whole or "
                             "not at all); videos are segmented again")
    add_test_settings(parser)
    run_group = parser.add_argument_group("execution")
    run_group.add_argument("--device", default="auto",
                           help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    add_reading(run_group)
    add_amp(run_group, "run the model")
    run_group.add_argument("--threads", type=positive_int, help="torch / onnxruntime CPU threads")
    add_backend(run_group)
    add_nmf_seed(run_group, "of the model")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


# Files a folder is searched for: images, and arrays of bands (models of other input channels than RGB).
FOLDER_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES


def collect_inputs(inputs: List[str], out: Optional[Path] = None) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """[(image or video path, output stem relative to --out)] and the inputs that matched nothing.
    Folders are searched for images only, never inside `out` (a run in the folder of the images
    would otherwise take the last run's predictions for images); videos are named as files or by
    glob patterns."""
    found: List[Tuple[Path, Path]] = []
    missing: List[str] = []
    out = out.resolve() if out is not None and out.is_dir() else None
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            skipped = out if out is not None and path.resolve() in out.parents else None  # out below path
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
                           and (skipped is None or skipped not in p.resolve().parents))
            if not files:
                missing.append(f"{item} (a folder with no images)")
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not files:
                missing.append(f"{item} (the pattern matched no file)")
            found += [(p, Path(p.stem)) for p in files]
        elif "://" in item:
            missing.append(f"{item} (a URL; only local files are read: download it first, e.g. curl -O {item})")
        else:
            missing.append(f"{item} (no such file or folder)")
    return found, missing


def distinct_names(inputs: List[Tuple[Path, Path]], out: Path) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """The inputs with output stems that differ: files whose names differ only in their ending
    (photo.jpg and photo.png) keep it (photo.jpg.png, photo.png.png); and the stems so renamed.
    Two files of the same name (from two folders given as files or globs) are an error."""
    by_stem: dict = {}
    for path, stem in inputs:
        by_stem.setdefault(stem, []).append(path)
    result, renamed = [], []
    for path, stem in inputs:
        paths = sorted(set(by_stem[stem]))
        if len(paths) > 1:
            if len({p.suffix for p in paths}) < len(paths):
                raise ValueError(f"{paths[0]} and {paths[1]} would both be written to {out / stem}; pass them in "
                                 f"separate runs with different --out folders")
            stem = stem.with_name(stem.name + path.suffix)
            renamed.append(str(stem))
        result.append((path, stem))
    return result, renamed


def images_for_input(test_config, images: List[Tuple[Path, Path]], videos: List[Tuple[Path, Path]],
                     source, command: str = "predict") -> List[Tuple[Path, Path]]:
    """The images a model of these test settings reads: an RGB model leaves arrays of bands (.npy)
    out, saying so (an error when there is nothing else); a model that reads bands (other input
    channels, or RGB of more than 8 bits: `TestConfig.reads_bands`) reads every file as bands
    (`segnext.data.read_bands`) and no video."""
    channels = test_config.channels
    if test_config.reads_bands:
        if videos:
            kind = f"takes {channels} input channels (in_channels)" if channels != 3 else "reads its images as bands"
            raise ValueError(f"{source} {kind}, and videos are 8-bit RGB; give its images as files of {channels} "
                             f"bands (.npy arrays, TIFFs)")
        return images
    arrays = [path for path, _ in images if path.suffix.lower() in ARRAY_SUFFIXES]
    if arrays and len(arrays) == len(images) and not videos:
        raise ValueError(f"{source} takes 8-bit RGB images, and the inputs are NumPy arrays ({arrays[0]}"
                         f"{', ...' if len(arrays) > 1 else ''}): arrays of bands are read by models of other input "
                         f"channels (in_channels) or trained on bands (data.bands); give image files")
    if arrays:
        print(f"segnext {command}: note: {len(arrays)} NumPy array(s) left out ({arrays[0].name}"
              f"{', ...' if len(arrays) > 1 else ''}): {source} takes RGB images", file=sys.stderr)
    return [(path, stem) for path, stem in images if path.suffix.lower() not in ARRAY_SUFFIXES]


def single_file_output(out: Path, images: List[Tuple[Path, Path]], videos: List[Tuple[Path, Path]],
                       label_suffix: str = ".png") -> Tuple[Path, List[Tuple[Path, Path]]]:
    """The output folder and the images with their output stems: `--out NAME.png` (not a folder
    there; NAME.tif with --geotiff) with one image writes its label map to NAME.png, and
    NAME_overlay.jpg, NAME_probs.npy beside it; any other --out is the folder."""
    if out.is_dir() or out.suffix.lower() not in IMAGE_SUFFIXES:
        return out, images
    if out.suffix.lower() != label_suffix and label_suffix == ".tif":
        raise ValueError(f"--out {out}: --geotiff writes the label map as a GeoTIFF; give --out "
                         f"{out.with_suffix('.tif')}, or a folder")
    if out.suffix.lower() != label_suffix:
        raise ValueError(f"--out {out}: label maps are written as PNG ({out.suffix} would change the class ids at "
                         f"edges, or cannot hold them); give --out {out.with_suffix('.png')}, or a folder")
    if len(images) != 1 or videos:
        raise ValueError(f"--out {out} names one file, but {len(images) + len(videos)} inputs are to be segmented; "
                         f"give a folder for several (e.g. --out predictions)")
    return out.parent, [(images[0][0], Path(out.stem))]


def check_inputs_kept(images: List[Tuple[Path, Path]], out: Path, args) -> None:
    """Refuse, before any work, outputs that would be written over an input image (photo.png
    segmented into its own folder): the image would be lost."""
    inputs = {path.resolve(): path for path, _ in images}
    for path, stem in images:
        for output in _output_paths(out / stem, args).values():
            overwritten = inputs.get(output.resolve())
            if overwritten is not None:
                raise ValueError(f"--out {out}: the prediction of {path} would be written over the input image "
                                 f"{overwritten}; write the predictions to another folder (e.g. --out predictions)")


def without_existing_outputs(images: List[Tuple[Path, Path]], out: Path, args) -> Tuple[List[Tuple[Path, Path]], int]:
    """The images some of whose outputs are not in `out` yet, and how many were left out. The files
    that collect every image (--coco, --label-studio, --confidence's table, --submission's archive)
    would then miss the others: those are refused with --skip-existing."""
    collected = [flag for flag, given in (("--coco", args.coco), ("--label-studio", args.label_studio),
                                          ("--class-areas", args.class_areas), ("--confidence", args.confidence),
                                          ("--submission", args.submission))
                 if given]
    if collected:
        raise ValueError(f"--skip-existing would leave the skipped images out of what {', '.join(collected)} "
                         f"writes for all of them; run without --skip-existing")
    kept = [(path, stem) for path, stem in images
            if not all(output.is_file() for output in _output_paths(out / stem, args).values())]
    return kept, len(images) - len(kept)


def needs_pictures(args, images: List[Tuple[Path, Path]]) -> bool:
    """--label-studio with images a browser cannot show (arrays, TIFFs): pictures of them are written."""
    from ..data.formats.label_studio import SHOWN_SUFFIXES

    return bool(args.label_studio) and any(path.suffix.lower() not in SHOWN_SUFFIXES for path, _ in images)


def label_suffix(args) -> str:
    """The file ending of the label maps: .tif with --geotiff, else .png."""
    return ".tif" if getattr(args, "geotiff", False) else ".png"


def _output_paths(target: Path, args) -> Dict[str, Path]:
    """What `_save` writes for an image with output stem `target`, by kind, the labels first. With
    --geotiff every picture of the image is a GeoTIFF in its place."""
    endings = dict(labels=label_suffix(args),
                   overlay=("_overlay.tif" if args.geotiff else "_overlay.jpg") if args.overlay else None,
                   probabilities=("_probs.tif" if args.geotiff else "_probs.npy") if args.probs else None,
                   confidence=("_confidence.tif" if args.geotiff else "_confidence.png") if args.confidence else None,
                   polygons=".geojson" if args.polygons else None)
    return {kind: target.parent / f"{target.name}{ending}" for kind, ending in endings.items() if ending}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def run(args) -> int:
    import torch

    from ..inference import Segmenter
    from ..inference.segmenter import UNSURE_BELOW
    from ..runtime import use_device
    from ..utils import check_can_make_folder, check_can_write_file, require, resolve_device

    if args.onnx:
        require("onnxruntime", "onnx", "--onnx")
        if amp_setting(args):
            raise ValueError("--amp applies to PyTorch checkpoints (-c), not to --onnx models")
    device = resolve_device(args.device)  # before any work: an unavailable device is a one-line error
    use_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs, missing = collect_inputs(args.inputs, Path(args.out))
    for item in missing:
        print(f"segnext predict: error: {item}", file=sys.stderr)
    images = [(path, stem) for path, stem in inputs if not is_video(path)]
    videos = [(path, stem) for path, stem in inputs if is_video(path)]
    if not inputs:
        print("segnext predict: error: no images to segment", file=sys.stderr)
        return 1
    benchmark = None  # the server --submission writes for
    if args.submission:
        from ..data.submission import submission_format

        check_submission_request(args, videos)
        benchmark = submission_format(args.submission)
    if args.unsure_below is not None:
        check_unsure_request(args)
    if args.geotiff:
        check_geotiff_request(args, images, videos)
    elif args.label_no_data:
        raise ValueError("--label-no-data labels the pixels a TIFF declares no data in --geotiff's label maps; add "
                         "--geotiff (without it they are labelled anyway)")
    check_label_map_gis_request(args, videos)
    if videos:
        require("cv2", "opencv", f"Segmenting videos ({videos[0][0].name})", package="opencv-python-headless")
    images, renamed = distinct_names(images, Path(args.out))
    videos, _ = distinct_names(videos, Path(args.out))  # an image's outputs and a video's never share a name
    if renamed:
        print(f"segnext predict: note: {len(renamed)} image(s) share their name with another but for the ending, "
              f"and keep it in their outputs' names: {', '.join(renamed[:3])}{', ...' if len(renamed) > 3 else ''}",
              file=sys.stderr)
    out_dir, images = single_file_output(Path(args.out), images, videos, label_suffix=label_suffix(args))
    if benchmark is not None:
        out_dir = out_dir / benchmark.folder
    check_can_make_folder(out_dir)  # a wrong --out is one error before the model loads, not one per image
    if args.coco:
        from ..data.formats.coco import pycocotools_mask

        pycocotools_mask()  # writes the masks: missing, it is named before any work
        check_can_write_file(args.coco, replaces=".json")
    if args.class_areas:
        check_can_write_file(args.class_areas, replaces=".csv")
    if args.label_studio:
        check_can_write_file(args.label_studio, replaces=".json")
    elif args.label_studio_url:
        raise ValueError("--label-studio-url names the images of --label-studio FILE; add --label-studio tasks.json")
    check_inputs_kept(images, out_dir, args)
    if args.skip_existing:
        images, skipped = without_existing_outputs(images, out_dir, args)
        if skipped:
            print(f"segnext predict: {skipped} image(s) skipped: their outputs are in {out_dir} already "
                  f"(--skip-existing)", file=sys.stderr)
        if not images and not videos:
            print(f"wrote 0 prediction(s) to {out_dir}", file=sys.stderr)
            return 1 if missing else 0

    if args.onnx:
        segmenter = Segmenter.from_onnx(args.onnx, threads=args.threads)
    else:
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=device, backend=backend_setting(args),
                                              nmf_seed=args.nmf_seed, amp=amp_setting(args))
    images = images_for_input(segmenter.test_config, images, videos, args.checkpoint or args.onnx)
    segmenter.test_config = test_settings(args, segmenter.test_config)
    if benchmark is not None:
        from ..data.submission import check_submission_classes

        check_submission_classes(benchmark, segmenter.class_names, segmenter.num_classes)
    if args.unsure_below is not None and segmenter.num_classes > IGNORE_INDEX:
        raise ValueError(f"--unsure-below writes {IGNORE_INDEX} for no label, which is a class of this model's "
                         f"{segmenter.num_classes}; leave --unsure-below out and use --confidence")
    # --geotiff: where a TIFF holds no data, no label (255 is no class of the model's), and no window run
    segmenter.leave_no_data = args.geotiff and not args.label_no_data and segmenter.num_classes <= IGNORE_INDEX
    out_dir.mkdir(parents=True, exist_ok=True)  # once the model has loaded: a failed run leaves no empty folder
    counts = ", ".join(f"{n} {kind}(s)" for n, kind in ((len(images), "image"), (len(videos), "video")) if n)
    precision = f", {str(segmenter.autocast_dtype).replace('torch.', '')} autocast" if segmenter.autocast_dtype else ""
    destination = args.out if out_dir != Path(args.out) else f"{out_dir}/"
    print(f"{counts} -> {destination}  ({segmenter.num_classes} classes, {segmenter.test_config.describe()}, "
          f"{segmenter.device}{precision})", file=sys.stderr)
    if amp_setting(args) and segmenter.autocast_dtype is None:
        print("segnext predict: note: --amp has no effect on the CPU (float32 is the fast path there)",
              file=sys.stderr)

    collectors = ([CocoPredictions(segmenter.class_names, Path(args.coco))] if args.coco else []) + (
        [ClassAreas(segmenter.class_names, Path(args.class_areas),
                    args.unsure_below is not None or segmenter.leave_no_data)]
        if args.class_areas else []) + (
        [LabelStudioPredictions(segmenter.class_names, segmenter.palette, Path(args.label_studio),
                                Path(args.checkpoint or args.onnx).name, args.label_studio_url,
                                out_dir if needs_pictures(args, images) else None)]
        if args.label_studio else []) + (
        [SubmissionArchive(benchmark, Path(args.out), {path: _output_paths(out_dir / stem, args)["labels"]
                                                       for path, stem in images})]
        if benchmark is not None else []) + (
        [ConfidenceTable(out_dir / CONFIDENCE_TABLE, args.unsure_below or UNSURE_BELOW)]
        if args.confidence and images and out_dir == Path(args.out) else [])  # a video's frames have their own table
    failures = _predict_images(args, segmenter, images, out_dir, collectors, benchmark) if images else []
    for collector in collectors:
        print(collector.write() + (" (videos' frames are not in it)" if videos else ""), file=sys.stderr)
    for path, stem in videos:
        failures += _predict_video(args, segmenter, path, stem, out_dir)
    done = len(images) + len(videos) - len(failures)
    print(f"wrote {done} prediction(s) to {destination}", file=sys.stderr)
    if failures or missing:
        print(f"segnext predict: {len(failures) + len(missing)} input(s) failed", file=sys.stderr)
        return 1
    return 0


def _report(failures: List[str], message: str) -> None:
    from tqdm import tqdm

    failures.append(message)
    tqdm.write(f"segnext predict: error: {message}", file=sys.stderr)


def _predict_images(args, segmenter, images: List[Tuple[Path, Path]], out_dir: Path,
                    collectors: Sequence = (), benchmark=None) -> List[str]:
    """Predict and save the images (their labels into the `collectors` too: `--coco`, `--label-studio`);
    the messages of those that failed."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from ..devices import reading_workers
    from ..inference.streaming import predict_files
    from ..utils import DiskFullError, progress_bar

    workers = reading_workers(len(images), segmenter.device) if args.workers is None else args.workers
    failures: List[str] = []
    progress = progress_bar(len(images), unit="img", enabled=not args.no_progress and len(images) >= 2)
    results = predict_files(segmenter, [path for path, _ in images], batch_size=args.batch_size, workers=workers,
                            with_probabilities=args.probs,
                            with_confidence=args.confidence or args.unsure_below is not None,
                            probabilities_in_bands=True, keep_images=args.overlay or needs_pictures(args, images))
    with ThreadPoolExecutor(max_workers=1) as saver:  # saving overlaps the model's next batch
        pending: deque = deque()

        def collect(limit: int) -> None:
            """Report the saves that are done, and wait for the oldest while more than `limit` are pending."""
            while pending and (len(pending) > limit or pending[0][1].done()):
                path, saved = pending.popleft()
                try:
                    saved.result()
                except DiskFullError:
                    raise  # every later image would fail the same way: stop, naming the file and the space needed
                except (OSError, ValueError) as error:
                    _report(failures, f"{path}: {str(error).strip() or type(error).__name__}")

        for result in results:
            path, stem = images[result.index]
            progress.set_postfix_str(path.name[-40:], refresh=False)
            progress.update(1)
            if result.error:
                _report(failures, result.error)
                continue
            if args.unsure_below is not None:
                from ..inference.segmenter import leave_unsure

                result.labels = leave_unsure(result.labels, result.confidence, args.unsure_below)
            pending.append((path, saver.submit(_save, result, out_dir / stem, segmenter, args, collectors,
                                               path, (stem.parent / path.name).as_posix(), benchmark)))
            collect(limit=2 * args.batch_size)  # bound the results held in memory
        collect(limit=0)
    progress.close()
    return failures


def _save(result, target: Path, segmenter, args, collectors: Sequence = (), path: Optional[Path] = None,
          file_name: str = "", benchmark=None) -> None:
    """OUT/<stem>.png (.tif with --geotiff), and the overlay, probabilities and confidence when asked
    for; each written atomically; the labels added to the `collectors` (one thread saves, in order,
    while the model goes on). With --geotiff, where the image holds no data its pixels get no label
    (255, as --unsure-below's) and NaN probabilities and confidence. With --sieve, the small regions
    are merged first."""
    import numpy as np

    from ..data import overlay, write_image, write_label
    from ..data.geotiff import georeference, write_bands_geotiff, write_image_geotiff, write_label_geotiff
    from ..inference.segmenter import confidence_greyscale

    if args.sieve is not None:  # here, on the saving thread, while the model goes on
        from ..data.polygons import sieve_labels

        result.labels = sieve_labels(result.labels, args.sieve,
                                     IGNORE_INDEX if segmenter.num_classes <= IGNORE_INDEX else -1)
    no_data = result.no_data  # where the image holds no data: no label, NaN probabilities and confidence there
    unlabelled = IGNORE_INDEX if args.unsure_below is not None or no_data is not None else None
    palette, outputs = segmenter.palette, _output_paths(target, args)  # "scene.0001": names keep the ".0001"
    tags = georeference(path) if args.geotiff or args.polygons else ()  # where the image lies, in its CRS
    if benchmark is not None:  # --submission: the server's ids and colours
        from ..data.submission import submission_label

        write_label(outputs["labels"], submission_label(result.labels, benchmark), benchmark.palette)
    elif args.geotiff:
        write_label_geotiff(outputs["labels"], result.labels, palette, tags, nodata=unlabelled)
    else:
        write_label(outputs["labels"], result.labels, palette)
    if args.polygons:  # in the image's coordinate system where it has one, else in pixels
        from ..data.polygons import write_polygons

        write_polygons(outputs["polygons"], result.labels, segmenter.class_names, path if tags else None)
    if args.overlay:
        blended = overlay(result.image, result.labels, palette, args.alpha, ignore_index=unlabelled)
        if args.geotiff:  # RGB in the image's place, to lay over the map as it is
            write_image_geotiff(outputs["overlay"], blended, tags)
        else:
            write_image(outputs["overlay"], blended, quality=90)
    if args.probs:  # a band of rows at a time: a 150-class photo's would not fit in memory at once
        probabilities = result.probabilities
        if args.geotiff:  # float16 bands named after the classes, in the image's place
            bands = (band.cpu().numpy() for _, band in probabilities.bands())
            write_bands_geotiff(outputs["probabilities"], bands, probabilities.shape, np.float16, tags,
                                segmenter.class_names, nodata=None if no_data is None else np.nan)
        else:
            probabilities.save(outputs["probabilities"], np.float16)
    if args.confidence:
        if args.geotiff:  # the probability of each label itself, for a GIS to threshold
            write_bands_geotiff(outputs["confidence"], [result.confidence[None]], (1, *result.confidence.shape),
                                np.float32, tags, ["confidence"], nodata=None if no_data is None else np.nan)
        else:
            write_image(outputs["confidence"], confidence_greyscale(result.confidence))
    for collector in collectors:
        collector.add(path, file_name, result)


def check_submission_request(args, videos: List[Tuple[Path, Path]]) -> None:
    """--submission writes only what is uploaded, into a folder: the other outputs would be packed or
    mistaken for predictions."""
    others = [flag for flag, given in (("--overlay", args.overlay), ("--probs", args.probs),
                                       ("--confidence", args.confidence)) if given]
    if others:
        raise ValueError(f"--submission writes only the label maps to upload; run {', '.join(others)} "
                         f"separately, with another --out")
    if videos:
        raise ValueError(f"--submission is for a benchmark's test images, not videos ({videos[0][0]})")
    if Path(args.out).suffix.lower() in IMAGE_SUFFIXES and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: --submission writes a folder and its archive; give a folder "
                         f"(e.g. --out {args.submission}_test)")


def check_geotiff_request(args, images: List[Tuple[Path, Path]], videos: List[Tuple[Path, Path]]) -> None:
    """--geotiff writes images' label maps with their georeference: tifffile is needed, videos and a
    benchmark's PNGs have none; the images that carry no georeference are named in a note."""
    from ..data.geotiff import georeference
    from ..utils import require

    require("tifffile", "tiff", "--geotiff")
    if args.submission:
        raise ValueError("--geotiff writes GeoTIFFs, and --submission the files its server takes: give one of them")
    if videos:
        raise ValueError(f"--geotiff writes the label maps of georeferenced images, and {videos[0][0].name} is a "
                         f"video; segment videos without --geotiff")
    plain = [path for path, _ in images if not georeference(path)]
    if plain:
        print(f"segnext predict: note: {len(plain)} of the {len(images)} image(s) carry no georeference (GeoTIFF "
              f"tags or a world file), e.g. {plain[0].name}: their label maps are TIFFs without one", file=sys.stderr)


def check_label_map_gis_request(args, videos: List[Tuple[Path, Path]]) -> None:
    """--polygons and --sieve work on images' label maps with rasterio: not on a video's, nor with a
    benchmark's --submission."""
    from ..utils import require

    against_submission = {"--polygons": "writes GeoJSON beside the label maps, and --submission only the files its "
                                        "server takes",
                          "--sieve": "changes the labels the model gave, and --submission sends a benchmark's server "
                                     "the model's own"}
    for flag, given in (("--polygons", args.polygons), ("--sieve", args.sieve is not None)):
        if not given:
            continue
        require("rasterio", "gis", flag)
        if args.submission:
            raise ValueError(f"{flag} {against_submission[flag]}: give one of them")
        if videos:
            raise ValueError(f"{flag} works on the label maps of images, and {videos[0][0].name} is a video; segment "
                             f"videos without {flag}")


def check_unsure_request(args) -> None:
    """--unsure-below leaves pixels without a label, and a benchmark's server scores every pixel."""
    if args.submission:
        raise ValueError("--unsure-below leaves pixels unlabelled, and --submission's server scores every pixel: "
                         "leave --unsure-below out")


def _predict_video(args, segmenter, path: Path, stem: Path, out_dir: Path) -> List[str]:
    """Predict one video; its failure message, if it failed."""
    from tqdm import tqdm

    from ..inference.video import predict_video

    try:
        outputs = predict_video(segmenter, path, out_dir, name=stem, batch_size=args.batch_size, alpha=args.alpha,
                                probabilities=args.probs, confidence=args.confidence, unsure_below=args.unsure_below,
                                progress=not args.no_progress)
    except (OSError, ValueError, RuntimeError) as error:
        failures: List[str] = []
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _report(failures, message if str(path) in message else f"{path}: {message}")
        return failures
    tqdm.write(f"{path}: {outputs.frames} frames -> {outputs.overlay}, {outputs.labels}/", file=sys.stderr)
    if outputs.confidence_table:
        least = "\n".join(f"  confidence {mean:5.1f}%  unsure pixels {unsure:5.1f}%  frame {frame:06d} "
                           f"({seconds:.2f} s)" for frame, seconds, mean, unsure in outputs.least_confident[:5])
        tqdm.write(f"wrote {outputs.confidence_table}: each frame's mean confidence, least confident first (the frames "
                   f"to label first):\n{least}", file=sys.stderr)
    return []
