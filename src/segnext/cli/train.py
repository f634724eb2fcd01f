"""`segnext train CONFIG [key=value ...]`: train with a YAML config (see docs/training.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from .arguments import add_training_progress, training_progress_bar, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a YAML config",
        description="Train SegNeXt as CONFIG says (a YAML file or the name of a shipped config). Any config key "
                    "can be overridden as key=value, e.g. `segnext train segnext_t_ade20k_512x512_160k "
                    "data.root=data/ade/ADEChallengeData2016 train.max_iters=2000`. Resumes automatically from "
                    "the newest checkpoint in the work dir. For several processes/GPUs start it with torchrun "
                    "(docs/training.md).",
        **with_examples("segnext train --list-configs",
                        "segnext train segnext_t_ade20k_512x512_160k data.root=data/ade/ADEChallengeData2016",
                        "segnext train camvid/segnext_t_camvid_cpu_60min data.root=data/camvid "
                        "train.max_time_minutes=30",
                        "torchrun --nproc_per_node 8 -m segnext.cli.main train segnext_b_ade20k_512x512_160k "
                        "data.root=...",
                        "segnext train my_config.yaml --print-config"))
    parser.add_argument("config", nargs="?", help="YAML config file or shipped config name")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides (values are YAML)")
    parser.add_argument("--work-dir", help="where checkpoints, logs and the report go (default work_dirs/CONFIG_NAME)")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="resume from this training checkpoint")
    parser.add_argument("--no-resume", action="store_true",
                        help="start from scratch even if the work dir holds checkpoints")
    add_training_progress(parser)
    parser.add_argument("--list-configs", action="store_true", help="list the shipped configs and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def default_work_dir(config_arg: str) -> Path:
    name = Path(config_arg).name
    return Path("work_dirs") / (name[:-5] if name.endswith(".yaml") else name)


def run(args) -> int:
    import torch

    from ..runtime import StopRequests, use_device
    from ..train import TrainingDiverged, list_configs, load_config, train
    from ..train.distributed import PeerFailed

    if args.list_configs:
        print("\n".join(list_configs()))
        return 0
    if not args.config:
        raise ValueError("give a CONFIG (a YAML file or a shipped config name; see --list-configs)")
    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if args.resume and args.no_resume:
        raise ValueError("--resume and --no-resume contradict each other; give one")
    resume = args.resume if args.resume else not args.no_resume
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(args.config)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    use_device(config.train.device)
    try:
        with StopRequests() as stop:
            result = train(config, work_dir, resume=resume, progress=training_progress_bar(args),
                           should_stop=stop.requested)
    except (TrainingDiverged, PeerFailed) as error:
        print(f"segnext train: error: {error}", file=sys.stderr)
        return 1
    return result.exit_code
