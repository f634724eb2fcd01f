"""`segnext demo`: the first command to run. No download, no dataset: generate the built-in scene
dataset, train SegNeXt-T on it, evaluate, and write the report (metrics JSON, curves, overlays)."""

from __future__ import annotations

import time
from pathlib import Path

from .arguments import add_training_progress, positive_int, training_progress_bar, with_examples

DEMO_CONFIG = "demo/segnext_t_scenes"
QUICK_OVERRIDES = [  # the reduced form the tests run: seconds, not minutes
    "data.crop_size=[64,64]", "data.img_scale=[80,64]", "train.max_iters=30", "train.batch_size=4",
    "train.micro_batch_size=4", "train.log_interval=5", "train.checkpoint_interval=15", "train.eval_interval=15",
    "schedule.warmup_iters=5", "evaluation.img_scale=[80,64]", "evaluation.max_images=4",
    "evaluation.num_overlays=2",
]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train and evaluate SegNeXt-T on built-in synthetic scenes (about 5 minutes on 2 CPU cores)",
        description="Generate a small synthetic street-scene dataset (8 classes), train SegNeXt-T on it from "
                    "scratch, evaluate it and write a report: WORK_DIR/results.json (aAcc, mIoU, per-class IoU), "
                    "WORK_DIR/report.png and report.html (why it stopped, curves, per-class IoU, confusion matrix, "
                    "predictions next to the ground truth with an error map), "
                    "WORK_DIR/log.jsonl and WORK_DIR/final_model (a model folder with its test settings: "
                    "`segnext predict --checkpoint WORK_DIR/final_model IMAGES` segments as the run evaluated). "
                    "Nothing is downloaded.",
        **with_examples("segnext demo", "segnext demo --work-dir /tmp/demo --iters 200"))
    parser.add_argument("--work-dir", default="segnext-demo", help="output directory (default ./segnext-demo)")
    parser.add_argument("--iters", type=positive_int, help="training iterations (default 500)")
    parser.add_argument("--quick", action="store_true", help="a reduced run of a few seconds (for tests)")
    add_training_progress(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..data.scenes import make_scene_dataset
    from ..runtime import StopRequests
    from ..train import load_config, train

    start = time.perf_counter()
    work_dir = Path(args.work_dir)
    data_dir = work_dir / "data"
    if args.quick:
        make_scene_dataset(data_dir, num_train=16, num_val=8, size=(64, 80), seed=0)
    else:
        make_scene_dataset(data_dir, num_train=160, num_val=40, size=(128, 160), seed=0)
    overrides = [f"data.root={data_dir}"] + (QUICK_OVERRIDES if args.quick else [])
    if args.iters is not None:
        overrides.append(f"train.max_iters={args.iters}")
    config = load_config(DEMO_CONFIG, overrides)
    print(f"segnext demo: synthetic scenes in {data_dir} ({time.perf_counter() - start:.0f} s)")
    with StopRequests() as stop:
        result = train(config, work_dir, resume=True, progress=training_progress_bar(args), should_stop=stop.requested)
    if result.results is None:  # stopped by a signal; a checkpoint was saved
        return result.exit_code
    metrics = result.results
    print(f"\nsegnext demo done in {time.perf_counter() - start:.0f} s: val mIoU {metrics['mIoU']:.1f} "
          f"(always predicting the most frequent class would give {metrics['majority_class_mIoU']:.1f}), "
          f"aAcc {metrics['aAcc']:.1f}.")
    print(f"  metrics   {work_dir / 'results.json'}")
    for report in (work_dir / "report.png", work_dir / "report.html"):
        if report.is_file():
            print(f"  report    {report}")
    print(f"  model     {work_dir / 'final_model'}  (segnext predict --checkpoint {work_dir / 'final_model'} IMAGES)")
    print(f"  log       {work_dir / 'log.jsonl'}")
    return 0
