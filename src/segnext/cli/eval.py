"""`segnext eval CONFIG --checkpoint C`: score a model on the config's validation set."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

from ..constants import DEFAULT_METRIC_COLUMNS, PER_CLASS_METRICS, SUBMISSION_BENCHMARKS
from .arguments import (
    add_amp,
    add_backend,
    add_reading,
    add_test_settings,
    amp_setting,
    backend_setting,
    check_test_channels,
    positive_int,
    test_settings,
    with_examples,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (aAcc, mIoU, mAcc, per-class IoU) on a config's validation data",
        description="Evaluate CHECKPOINT (a training checkpoint, a segnext model directory or an official "
                    "MMSegmentation file) on the validation split of CONFIG's dataset. The test settings are "
                    "those the model was saved with, as `segnext predict` uses them (a model folder's or a "
                    "training checkpoint's evaluation section, and its nmf_seed), else CONFIG's evaluation "
                    "section; evaluation.* overrides on the command line and the test-time options below (as `segnext "
                    "predict` takes them: --mode slide, --ms, --flip ...) apply on top. "
                    "--config-settings tests with CONFIG's section instead. Writes the metrics as JSON. Under "
                    "torchrun the images are split over the processes.",
        **with_examples("segnext eval segnext_t_ade20k_512x512_160k data.root=data/ade/ADEChallengeData2016 "
                        "--checkpoint segnext-t-ade/",
                        "segnext eval runs/demo/config.yaml --checkpoint runs/demo/final_model --ms",
                        "segnext eval runs/demo/config.yaml -c runs/demo/final_model --hardest 8",
                        "segnext eval runs/demo --interval      # a run's folder: its config and final_model",
                        "segnext eval camvid/segnext_t_camvid_cpu_60min data.root=data/camvid --predictions served/"))
    parser.add_argument("config", help="YAML config file or shipped config name, or a training run's folder (its "
                                       "config.yaml, and its final_model unless --checkpoint says otherwise)")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides (values are YAML)")
    source = parser.add_mutually_exclusive_group()  # one of them is required: `run` says which and how
    source.add_argument("--checkpoint", "-c", help="weights to evaluate")
    source.add_argument("--onnx", help="an ONNX model written by `segnext export` (float32 or --int8), run on the CPU "
                                       "by onnxruntime")
    source.add_argument("--predictions", metavar="DIR",
                        help="score the label maps in DIR instead of running a model: PNGs of class ids at each "
                             "image's size, named after the images (what `segnext predict IMAGE_FOLDER --out DIR` "
                             "writes; another implementation's or a deployed service's in that form)")
    parser.add_argument("--skip-unlabelled", action="store_true",
                        help="with --predictions: leave the pixels the files leave unlabelled (255, `segnext predict "
                             "--unsure-below`'s) out of the scores, which are then those of the labels given, and "
                             "say the share of the labelled pixels given one (coverage)")
    parser.add_argument("--predictions-format", choices=("classes",) + SUBMISSION_BENCHMARKS, default="classes",
                        help="what the --predictions files hold: class ids (default), or a benchmark server's ids: "
                             "cityscapes (label ids), ade20k (1..150), voc (as `segnext predict --submission` or "
                             "MMSegmentation's format_only write them)")
    parser.add_argument("--split", help="dataset split (default: the config's data.val_split)")
    parser.add_argument("--config-settings", action="store_true",
                        help="test with CONFIG's evaluation section (and its nmf_seed) even when the checkpoint was "
                             "saved with settings of its own")
    parser.add_argument("--model-settings", action="store_true",
                        help="test with the settings saved with the checkpoint (the default; an error when there are "
                             "none)")
    parser.add_argument("--metrics", nargs="+", choices=PER_CLASS_METRICS, default=list(DEFAULT_METRIC_COLUMNS),
                        metavar="METRIC", help=f"the per-class columns printed, with their means: any of "
                                               f"{', '.join(PER_CLASS_METRICS)} (default: IoU Acc); the results JSON "
                                               f"holds them all")
    parser.add_argument("--max-images", type=positive_int,
                        help="evaluate only the first N images (the override evaluation.max_images=N does the same)")
    parser.add_argument("--out", help="results JSON (default: eval_<checkpoint>_<split>.json in the checkpoint's run "
                                      "folder, or beside the checkpoint)")
    one_by_one = parser.add_argument_group("images one by one (what the model fails on, or labels that are wrong)")
    one_by_one.add_argument("--per-image", action="store_true",
                            help="also score each image on its own (aAcc, mIoU over the classes in its label or its "
                                 "prediction, IoU per class): a CSV beside the results JSON (its name + "
                                 "_per_image.csv), hardest first; the hardest are printed")
    one_by_one.add_argument("--hardest", type=positive_int, metavar="N",
                            help="also draw the N hardest images (image, ground truth, prediction, errors in red) as "
                                 "JPEGs in a folder beside the results JSON (its name + _hardest); implies "
                                 "--per-image")
    parser.add_argument("--calibration", action="store_true",
                        help="also count the labelled pixels by the model's confidence in their label: how often it "
                             "is right when it says 90%%, the expected calibration error (ECE), and what share of its "
                             "errors lies under 50/70/90%% confidence (printed, and in the results JSON)")
    drawn = parser.add_argument_group("how much the scores owe to the images drawn (bootstrap)")
    drawn.add_argument("--interval", action="store_true",
                       help="also the 95%% interval of aAcc, mIoU, mAcc and each class's IoU over 1,000 resamples "
                            "of the images (whole video sequences or cities where the file names carry ten or more): "
                            "how far the scores would move on another draw of such images. The results JSON keeps each "
                            "image's class areas, for a later --compare")
    drawn.add_argument("--compare", metavar="RESULTS",
                       help="the results JSON of another model evaluated on the same images with --interval (or "
                            "--compare), or a training run's results.json (or its folder): the differences in aAcc, "
                            "mIoU, mAcc and per class, each with its 95%% interval over resamples shared by the two "
                            "models")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: the config's train.device)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: the config's train.threads)")
    add_backend(parser)
    add_amp(parser, "run the model (to see what it costs in mIoU)")
    add_reading(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--restart", action="store_true",
                        help="score every image, even where an interrupted run of the same evaluation left its "
                             "partial scores (NAME.partial.json beside the results), which it otherwise resumes from")
    add_test_settings(parser, default="the checkpoint's, else CONFIG's evaluation section")
    parser.set_defaults(func=run, model_option_defaults={name: parser.get_default(name) for name in MODEL_OPTIONS})


def results_path(checkpoint: str, split: str) -> Path:
    """Where results go by default: the run folder of a run's final_model or checkpoints/*.pt, else
    the model folder itself, or the folder of a checkpoint file."""
    path = Path(checkpoint)
    if path.parent.name == "checkpoints":
        folder = path.parent.parent
    elif path.is_dir():
        folder = path.parent if (path.parent / "checkpoints").is_dir() else path
    else:
        folder = path.parent
    return folder / f"eval_{path.stem}_{split}.json"


def training_note(source: str, config, split: str, *, onnx_metadata: Optional[dict] = None) -> Optional[str]:
    """What scores on `split` of CONFIG's dataset are worth for the model `source` when it trained on
    that split or on its sequences: for a checkpoint of a `segnext train` run (its final_model or
    checkpoints/*.pt) on the same dataset root, the run's validation note; for a model folder (or an
    ONNX file, by its `onnx_metadata`) that records its training data (`save_model`'s training_data),
    the same from what it recorded. None otherwise, or when it cannot tell."""
    from ..data.datasets import get_spec
    from ..data.splits import shared_group_note
    from ..models import recorded_training_data
    from ..train import load_config

    path = Path(source)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if onnx_metadata is None and (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir():
        try:
            trained = load_config(str(run_dir / "config.yaml")).data
        except (ValueError, FileNotFoundError):  # a run of an older version, or its config edited since
            trained = None
        same_root = trained is not None and \
            Path(trained.root).expanduser().resolve() == Path(config.data.root).expanduser().resolve()
        if trained is not None and trained.dataset == config.data.dataset and same_root:
            trained.val_split = split
            return trained.validation_note()
    if onnx_metadata is not None:
        try:
            recorded = json.loads(onnx_metadata.get("training_data") or "null")
        except ValueError:
            recorded = None
    else:
        recorded = recorded_training_data(source)
    if not isinstance(recorded, dict) or recorded.get("dataset") != config.data.dataset or not recorded.get("split"):
        return None
    root = Path(config.data.root).expanduser()
    try:
        return shared_group_note(get_spec(config.data.dataset, root), root, recorded["split"], split,
                                 trained_groups=recorded.get("groups"))
    except ValueError:  # a Hugging Face dataset, or a split name that cannot be read
        return None


def run(args) -> int:
    import torch

    from ..devices import reading_workers
    from ..evaluation import evaluate, test_record
    from ..inference import OnnxModel
    from ..inference.backends import inference_model
    from ..inference.cuda_graph import CudaGraphSegNeXt
    from ..inference.precision import AutocastModel, autocast_dtype
    from ..models import create_model
    from ..runtime import use_device
    from ..train import distributed, load_config
    from ..train.report import draw_hardest

    if args.config_settings and args.model_settings:
        raise ValueError("--config-settings and --model-settings contradict each other; give one of them")
    if args.predictions:
        return score_predictions(args)
    if args.predictions_format != "classes":
        raise ValueError("--predictions-format says what the --predictions files hold; give --predictions DIR")
    if args.skip_unlabelled:
        raise ValueError("--skip-unlabelled scores the label maps of --predictions DIR that leave pixels unlabelled; "
                         "a model run here labels every pixel")
    use_run_folder(args)
    if not (args.checkpoint or args.onnx):
        raise ValueError(missing_weights_message(args.config))
    if args.onnx and amp_setting(args):
        raise ValueError("--amp applies to PyTorch checkpoints (--checkpoint), not to --onnx models")
    config = load_config(args.config, args.overrides)
    if args.threads:
        config.train.threads = args.threads
    source = args.checkpoint or args.onnx
    if args.max_images is None and any(o.split("=", 1)[0].strip() == "evaluation.max_images" for o in args.overrides):
        args.max_images = config.evaluation.max_images  # the key training's periodic evaluations read
    if args.onnx:
        model = OnnxModel(args.onnx, threads=config.train.threads)
        saved_settings = json.loads(model.metadata["test_config"]) if model.metadata.get("test_config") else None
    else:
        model = create_model(checkpoint=args.checkpoint)  # with the NMF seed it was saved with
        saved_settings = model.config.test_settings
    choose_test_settings(args, config, model, saved_settings, source)
    config.evaluation = test_settings(args, config.evaluation)  # --mode, --ms, --flip ... on top
    channels = check_test_channels(model, config.evaluation, source)
    env = distributed.setup("cpu" if args.onnx else args.device or config.train.device)
    use_device(env.device)
    try:
        if env.device.type == "cpu" and config.train.threads:
            torch.set_num_threads(config.train.threads)
        dataset = config.data.build(args.split or config.data.val_split, channels=channels,
                                    bands=config.evaluation.bands)
        precision = None if args.onnx else autocast_dtype(env.device, amp_setting(args))
        if not args.onnx:  # as `segnext predict` runs it (`Segmenter.inference_model`)
            model = inference_model(model.eval().to(env.device), backend_setting(args), autocast_dtype=precision)
            if precision is not None and not isinstance(model, CudaGraphSegNeXt):
                model = AutocastModel(model, env.device.type, precision)
        if model.num_classes != dataset.num_classes:
            raise ValueError(f"{source} predicts {model.num_classes} classes but the {config.data.dataset} "
                             f"dataset has {dataset.num_classes}; evaluate it with a config for its dataset.")
        test_config = config.evaluation
        split = args.split or config.data.val_split
        outputs = Outputs(args, config, dataset, source, split)
        per_image, resampled, hardest_folder = outputs.per_image, outputs.resampled, outputs.hardest_folder
        if args.hardest and hardest_folder.exists() and not hardest_folder.is_dir():
            raise ValueError(f"--hardest: {hardest_folder} exists and is not a folder; move it or give another --out")
        note = training_note(source, config, split, onnx_metadata=model.metadata if args.onnx else None) \
            if env.is_main else None
        if env.is_main:
            count = min(len(dataset), args.max_images or len(dataset))
            autocast = f", {str(precision).replace('torch.', '')} autocast" if precision else ""
            print(f"{source} on {config.data.dataset} {split} ({count} images): "
                  f"{test_config.describe()}{autocast}", file=sys.stderr)
            if amp_setting(args) and precision is None:
                print("segnext eval: note: --amp has no effect on the CPU (float32 is the fast path there)",
                      file=sys.stderr)
            if note:
                print(f"segnext eval: note: {note}", file=sys.stderr)
        start = time.perf_counter()
        count = min(len(dataset), args.max_images or len(dataset)) // env.world_size
        workers = reading_workers(count, env.device) if args.workers is None else args.workers
        tested = test_record(test_config, config.evaluation.nmf_seed,
                             None if args.onnx else str(precision or torch.float32)[len("torch."):])
        progress_file = None
        if env.world_size == 1:  # one process resumes what an interrupted run of the same evaluation scored
            progress_file = EvaluationProgress(outputs, tested, args.calibration, restart=args.restart)
        try:
            results = evaluate(model, dataset, test_config, max_images=args.max_images, device=env.device,
                               shard=(env.rank, env.world_size), reduce=lambda t: distributed.all_reduce_sum(t, env),
                               progress=not args.no_progress, batch_size=args.batch_size, workers=workers,
                               per_image=per_image or resampled, calibration=args.calibration,
                               resume_from=progress_file.resume_from if progress_file else None,
                               save_partial=progress_file.save if progress_file else None)
        except KeyboardInterrupt:
            if progress_file and progress_file.path.is_file():
                print(f"segnext eval: the scores so far are kept in {progress_file.path}; the same command resumes "
                      f"from them", file=sys.stderr)
            raise
        if env.is_main:
            outputs.write(results, tested=tested, processes=env.world_size, validation_note=note,
                          wall_seconds=round(time.perf_counter() - start, 2))
            if progress_file:
                progress_file.remove()
            if args.hardest:
                drawn = draw_hardest(model, dataset, results["per_image"], test_config, env.device, args.hardest,
                                     hardest_folder)
                print(f"the {len(drawn)} hardest drawn in {hardest_folder} (image, ground truth / prediction, "
                      f"errors in red)" if drawn else "--hardest: no image has a labelled pixel; nothing to draw")
        distributed.barrier(env)
    finally:
        distributed.cleanup(env)
    return 0


class Outputs:
    """Where an evaluation's results go and what is printed of them, checked before any work: the
    results JSON (`--out`), the per-image CSV, the --compare baseline's images."""

    def __init__(self, args, config, dataset, source: str, split: str):
        from ..evaluation import check_same_images, image_names, read_results
        from ..utils import check_can_write_file

        self.args, self.config, self.dataset, self.source, self.split = args, config, dataset, source, split
        self.out = Path(args.out) if args.out else results_path(source, split)
        check_can_write_file(self.out, replaces=".json")  # on every process: a refused path stops them all first
        self.compared = None
        if args.compare:
            self.compared = read_results(args.compare)
            count = min(len(dataset), args.max_images or len(dataset))
            check_same_images(self.compared, config.data.dataset, image_names(dataset, count), count)
        self.resampled = args.interval or self.compared is not None
        self.per_image = args.per_image or args.hardest is not None
        self.per_image_csv = self.out.with_name(f"{self.out.stem}_per_image.csv")
        self.hardest_folder = self.out.with_name(f"{self.out.stem}_hardest")
        if self.per_image:
            check_can_write_file(self.per_image_csv, replaces=".csv")

    def write(self, results, *, tested, **record) -> None:
        """Write the results JSON (and the per-image CSV) and print the scores."""
        from ..evaluation import (
            dataset_image_groups,
            format_calibration,
            format_categories,
            format_comparison,
            format_groups,
            format_interval,
            format_results,
            most_confused,
            resampled_scores,
            write_per_image,
            write_results,
        )

        args, dataset = self.args, self.dataset
        drawn = resampled_scores(results, dataset, interval=args.interval, baseline=self.compared) \
            if self.resampled else {}
        write_results(self.out, results, checkpoint=str(self.source), dataset=self.config.data.dataset,
                      split=self.split, test=tested, **record, confusion=results["confusion"].tolist(), **drawn)
        print(format_results(results, args.metrics, (drawn.get("interval") or {}).get("IoU")))
        if "category_IoU" in results:
            print(format_categories(results))
        confused = most_confused(results["confusion"], dataset.class_names)
        if confused:
            print("most confused (share of a class's pixels predicted as another): " + ", ".join(
                f"{truth} as {predicted} {share:.1f}%" for truth, predicted, share in confused))
        if args.calibration:
            print(format_calibration(results["calibration"]))
        if "interval" in drawn:
            print(format_interval(drawn["interval"]))
        if drawn.get("per_group"):
            print(format_groups(drawn["per_group"]))
        if "compared_with" in drawn:
            print(format_comparison(drawn["compared_with"], dataset.class_names, tested, str(self.source)))
        print(f"Results written to {self.out} (with the confusion matrix: [ground truth][prediction] pixels)")
        if self.per_image:
            write_per_image(self.per_image_csv, results, dataset_image_groups(dataset, len(results["per_image"])))
            print_hardest(results, self.per_image_csv)


class EvaluationProgress:
    """What an evaluation has scored so far, kept beside its results JSON (NAME.partial.json, rewritten
    every minute and when the run is interrupted) with what identifies the evaluation: the weights (and
    their file's size and time), the images, the test. A rerun of the same evaluation resumes from it;
    another evaluation writing the same results starts over. Removed once the results are written."""

    def __init__(self, outputs: Outputs, tested, calibration: bool, restart: bool = False):
        from ..evaluation import PartialScores, image_names

        self.path = outputs.out.with_name(f"{outputs.out.stem}.partial.json")
        count = min(len(outputs.dataset), outputs.args.max_images or len(outputs.dataset))
        names = image_names(outputs.dataset, count) or []
        self.key = {"weights": str(outputs.source), "weights_file": _file_stamp(outputs.source),
                    "dataset": outputs.config.data.dataset, "split": outputs.split, "images": count,
                    "image_names": hashlib.sha256("\n".join(names).encode()).hexdigest(), "test": tested,
                    "per_image": outputs.per_image or outputs.resampled, "calibration": calibration}
        self.resume_from = None
        if restart or not self.path.is_file():
            return
        try:
            saved = json.loads(self.path.read_text())
            scores = PartialScores.from_json(saved["scores"], count) if saved.get("key") == self.key else None
        except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError):
            scores = None
        if scores is None:
            print(f"segnext eval: note: {self.path} holds the partial scores of another evaluation (other weights, "
                  f"images or test); scoring every image", file=sys.stderr)
            return
        self.resume_from = scores
        print(f"segnext eval: resuming: {len(scores.done)} of {count} images were scored by an interrupted run "
              f"({self.path}); --restart scores them all again", file=sys.stderr)

    def save(self, scores) -> None:
        from ..utils import atomic_write

        text = json.dumps({"key": self.key, "scores": scores.to_json()})
        atomic_write(self.path, lambda temporary: temporary.write_text(text))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _file_stamp(source: str):
    """The size and modification time of the weights' file (a model folder's model.safetensors):
    retrained weights at the same path are other weights."""
    path = Path(source)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


# What needs a model to run: refused with --predictions, which scores files as they are.
MODEL_OPTIONS = ("config_settings", "model_settings", "hardest", "calibration", "restart", "device", "threads",
                 "backend", "no_optimize", "amp", "amp_dtype", "batch_size", "workers", "mode", "img_scale",
                 "keep_size", "size_divisor", "crop_size", "stride", "ms", "scales", "flip")


def score_predictions(args) -> int:
    """`segnext eval CONFIG --predictions DIR`: the label maps in DIR scored against CONFIG's split."""
    from ..evaluation import evaluate_predictions
    from ..train import load_config

    given = [name for name, default in args.model_option_defaults.items() if getattr(args, name) != default]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags}: {'options' if len(given) > 1 else 'an option'} of running a model; --predictions "
                         f"scores the files in {args.predictions} as they are (give --checkpoint instead to run one)")
    config = load_config(args.config, args.overrides)
    if args.max_images is None and any(o.split("=", 1)[0].strip() == "evaluation.max_images" for o in args.overrides):
        args.max_images = config.evaluation.max_images
    dataset = config.data.build(args.split or config.data.val_split)
    split = args.split or config.data.val_split
    source = args.predictions.rstrip("/\\") or args.predictions
    if not args.out:
        args.out = str(Path(source).resolve().with_name(f"eval_{Path(source).resolve().name}_{split}.json"))
    outputs = Outputs(args, config, dataset, source, split)
    count = min(len(dataset), args.max_images or len(dataset))
    print(f"{source} on {config.data.dataset} {split} ({count} images): the label maps as they are", file=sys.stderr)
    start = time.perf_counter()
    results = evaluate_predictions(dataset, args.predictions, max_images=args.max_images,
                                   per_image=outputs.per_image or outputs.resampled, progress=not args.no_progress,
                                   benchmark_ids=None if args.predictions_format == "classes" else
                                   args.predictions_format, skip_unlabelled=args.skip_unlabelled)
    outputs.write(results, tested=None, processes=1, validation_note=None,
                  wall_seconds=round(time.perf_counter() - start, 2))
    if "coverage" in results:
        coverage = results["coverage"]
        print(f"coverage: the label maps give a label to {coverage['percent']:.2f}% of the "
              f"{coverage['labelled_pixels']:,} labelled pixels ({coverage['unlabelled_pixels']:,} left unlabelled); "
              f"the scores above are those of the labels given")
    return 0


def print_hardest(results, per_image_csv: Path, shown: int = 5) -> None:
    """The `shown` images of lowest mIoU, each with its weakest classes."""
    from ..evaluation import hardest_first

    names = results["class_names"]
    hardest = [scores for scores in hardest_first(results["per_image"]) if scores["pixels"]][:shown]
    print(f"hardest images (mIoU over the classes in the label or the prediction; all in {per_image_csv}):")
    for scores in hardest:
        present = sorted((iou, k) for k, iou in enumerate(scores["IoU"]) if not math.isnan(iou))  # NaN: in neither
        weakest = ", ".join(f"{names[k]} {iou:.1f}" for iou, k in present[:3])
        print(f"  mIoU {scores['mIoU']:5.1f}  aAcc {scores['aAcc']:5.1f}  {scores.get('image', scores['index'])}"
              f"  (weakest: {weakest})")


def use_run_folder(args) -> None:
    """CONFIG given as a training run's folder: its config.yaml, and its final_model unless
    --checkpoint or --onnx names other weights."""
    run_dir = Path(args.config)
    if not (run_dir.is_dir() and (run_dir / "config.yaml").is_file()):
        return
    args.config = str(run_dir / "config.yaml")
    if args.checkpoint or args.onnx:
        return
    if not (run_dir / "final_model").is_dir():
        saved = sorted((run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").is_dir() else []
        raise ValueError(f"{run_dir} has no final_model yet (the run has not finished)"
                         + (f"; evaluate one of its checkpoints: --checkpoint {saved[-1]}" if saved else ""))
    args.checkpoint = str(run_dir / "final_model")


def missing_weights_message(config: str) -> str:
    """What to say when no weights are given; the usual slip being a model given where the config goes."""
    path = Path(config)
    is_model = (path.is_dir() and (path / "config.json").is_file()) or \
        (path.is_file() and path.suffix in (".pt", ".pth", ".safetensors", ".onnx"))
    if not is_model:
        return ("no weights to evaluate: give --checkpoint (a run's final_model folder, a checkpoint or an official "
                "MMSegmentation file) or --onnx")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    run_config = run_dir / "config.yaml"
    config_arg = str(run_config) if run_config.is_file() else "CONFIG"
    flag = "--onnx" if path.suffix == ".onnx" else "--checkpoint"
    return (f"{config} is a model, not a config: give it as {flag}, after the config of the data to evaluate on, "
            f"e.g. segnext eval {config_arg} {flag} {config}")


def choose_test_settings(args, config, model, saved_settings, source) -> None:
    """Set config.evaluation (and the NMF seed) as `segnext predict` would test the model: the
    settings it was saved with, unless --config-settings; evaluation.* overrides given here win."""
    from dataclasses import fields

    from ..inference import TestConfig

    given = {override.split("=", 1)[0][len("evaluation."):] for override in args.overrides
             if override.startswith("evaluation.")}
    use_saved = bool(saved_settings) and not args.config_settings
    if use_saved:
        saved = TestConfig.from_dict(saved_settings)
        differing = [f"{name}={getattr(saved, name)}" for name in (field.name for field in fields(TestConfig))
                     if name not in given and getattr(saved, name) != getattr(config.evaluation, name)]
        if differing:
            print(f"segnext eval: note: testing with the settings {source} was saved with "
                  f"({', '.join(differing)}), not {args.config}'s evaluation section; --config-settings uses that.",
                  file=sys.stderr)
        for field in fields(TestConfig):
            if field.name not in given:
                setattr(config.evaluation, field.name, getattr(saved, field.name))
    elif args.model_settings:
        raise ValueError(f"--model-settings: {source} carries no test settings; drop the option to test "
                         f"with {args.config}'s evaluation section")
    if args.onnx:  # its NMF bases are constants of the graph
        config.evaluation.nmf_seed = int(model.metadata.get("nmf_seed", 0))
    elif use_saved and "nmf_seed" not in given:
        config.evaluation.nmf_seed = model.nmf_seed
    else:
        model.nmf_seed = config.evaluation.nmf_seed
