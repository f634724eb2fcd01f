"""Argument types shared by several commands."""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from typing import Callable, Union


class CommandParser(argparse.ArgumentParser):
    """argparse's parser without abbreviated options (its commands' parsers too): an unknown option
    such as `--mode` must be refused, not taken for the one it begins (`--model-settings`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands = None  # its sub-commands' action, if it has any

    def add_subparsers(self, **kwargs):
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def parser_of(self, args: argparse.Namespace) -> CommandParser:
        """The parser of the (sub-)command `args` chose (`segnext data split`'s), which knows its options."""
        parser = self
        while parser.commands is not None and getattr(args, parser.commands.dest, None) in parser.commands.choices:
            parser = parser.commands.choices[getattr(args, parser.commands.dest)]
        return parser

    def error(self, message: str):
        """argparse's error, with the options meant by unknown ones (`--mod`: --mode, --model-settings)."""
        if message.startswith("unrecognized arguments: "):
            known = [option for action in self._actions for option in action.option_strings if option.startswith("--")]
            meant = []
            for word in message[len("unrecognized arguments: "):].split():
                if word.startswith("--"):
                    given = word.split("=", 1)[0]
                    meant += [o for o in known if o.startswith(given)] or difflib.get_close_matches(given, known, n=1)
            if meant:
                message += f" (did you mean {' or '.join(dict.fromkeys(meant))}?)"
        super().error(message)


def with_examples(*lines: str) -> dict:
    """add_parser() keywords that end a command's --help with examples, kept as written."""
    return dict(epilog="examples:\n" + "\n".join(f"  {line}" for line in lines),
                formatter_class=argparse.RawDescriptionHelpFormatter)


def add_training_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a line of loss, speed and time left every train.log_interval "
                             "iterations instead (also when stderr is not a terminal: a log file, a batch job)")


def training_progress_bar(args) -> bool:
    """Whether a training command draws the bar: on a terminal only, as a bar redrawn into a log file
    is one endless line there, and the lines of log records read better."""
    return not args.no_progress and sys.stderr.isatty()


def add_nmf_seed(parser: argparse.ArgumentParser, what: str) -> None:
    """--nmf-seed SEED (default: the seed the model was saved with, else the library's fixed seed;
    'none' for the official random bases)."""
    from ..constants import DEFAULT_NMF_SEED, SAVED_NMF_SEED

    parser.add_argument("--nmf-seed", type=nmf_seed, default=SAVED_NMF_SEED, metavar="SEED",
                        help=f"seed of the fixed NMF bases {what} (default: the one the model was saved with, else "
                             f"{DEFAULT_NMF_SEED}); 'none' draws them at random at every forward, as the official code")


def add_parallel_options(parser: argparse.ArgumentParser) -> None:
    """--workers N and --no-progress, for commands that work over many files."""
    parser.add_argument("--workers", type=non_negative_int, default=None,
                        help="processes (default: all cores; 0 or 1: in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def nmf_seed(text: str) -> Union[int, None, str]:
    """--nmf-seed: an integer, "none" for the official random bases at every forward, or "saved"."""
    if text.strip().lower() in ("none", "random"):
        return None
    if text.strip().lower() == "saved":
        return "saved"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def add_backend(parser) -> None:
    """--backend and its old spelling --no-optimize (= eager)."""
    from ..devices import INFERENCE_BACKENDS

    parser.add_argument("--backend", choices=("auto",) + INFERENCE_BACKENDS, default="auto",
                        help="how the model runs: auto (default: the device's fastest, measured: optimized on the "
                             "CPU, eager on a GPU), eager (the plain model), optimized (folded, oneDNN-fused on the "
                             "CPU), cuda_graph (the folded model replayed from CUDA graphs)")
    parser.add_argument("--no-optimize", action="store_true", help="the same as --backend eager")


def backend_setting(args) -> str:
    return "eager" if args.no_optimize else args.backend


def add_amp(parser, what: str) -> None:
    """--amp and --amp-dtype {bf16,fp16}: mixed precision on a GPU (see segnext.inference.precision).
    A flag, not an option with an optional value, so that `--amp photo.jpg` cannot take the file."""
    parser.add_argument("--amp", action="store_true",
                        help=f"{what} in mixed precision on a GPU: bfloat16 where supported, else float16; the NMF "
                             f"stays float32; no effect on the CPU")
    parser.add_argument("--amp-dtype", choices=("bf16", "fp16"), help="the precision of --amp (implies --amp)")


def amp_setting(args):
    """The `amp` argument of segnext.inference from --amp / --amp-dtype: False, True, "bf16" or "fp16"."""
    return args.amp_dtype or args.amp


def add_test_settings(parser, default: str = "the checkpoint's") -> None:
    """The test-time settings that replace a model's saved ones (`test_settings` applies them)."""
    settings = parser.add_argument_group(f"test-time settings (default: {default})")
    settings.add_argument("--mode", choices=("whole", "slide"), help="whole-image or sliding-window inference")
    settings.add_argument("--img-scale", type=positive_int, nargs=2, metavar=("LONG", "SHORT"),
                          help="keep-ratio resize bound, e.g. 2048 512")
    settings.add_argument("--keep-size", action="store_true", help="no resize: run at the image's own size")
    settings.add_argument("--size-divisor", type=positive_int, help="round the resized size up to a multiple of this")
    settings.add_argument("--crop-size", type=positive_int, nargs=2, metavar=("H", "W"), help="slide window size")
    settings.add_argument("--stride", type=positive_int, nargs=2, metavar=("H", "W"), help="slide window stride")
    settings.add_argument("--ms", action="store_true", help="multi-scale (0.5-1.75) + flip test, as the paper")
    settings.add_argument("--scales", type=positive_float, nargs="+", help="scale ratios, e.g. 0.75 1.0 1.25")
    settings.add_argument("--flip", action=argparse.BooleanOptionalAction,
                          help="average with the horizontally flipped image (--no-flip: not, where the saved "
                               "settings do)")


def test_settings(args, base):
    """`base` (a TestConfig) with the settings `add_test_settings` read replaced."""
    from ..inference import override_test_config

    img_scale = None if args.keep_size else (tuple(args.img_scale) if args.img_scale else Ellipsis)
    return override_test_config(
        base, mode=args.mode, img_scale=img_scale,
        size_divisor=args.size_divisor if args.size_divisor is not None else Ellipsis,
        crop_size=args.crop_size, stride=args.stride, scales=args.scales, flip=args.flip,
        multi_scale=args.ms)


def _checked(kind: type, accepts: Callable[[float], bool], requirement: str) -> Callable[[str], Union[int, float]]:
    """An argparse type: `kind` (int or float) parsed from the text, refused unless `accepts` it;
    argparse reports the refusal as `argument --name: must be <requirement>, got <text>`."""
    def parse(text: str) -> Union[int, float]:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value
    return parse


def yaml_value(text: str):
    """An argparse type: the value YAML reads in `text` (as config overrides are read)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not a YAML value ({str(error).splitlines()[0]}): {text!r}") from None


positive_int = _checked(int, lambda value: value >= 1, "a whole number of at least 1")
non_negative_int = _checked(int, lambda value: value >= 0, "a whole number of at least 0")
positive_float = _checked(float, lambda value: value > 0, "a number above 0")
non_negative_float = _checked(float, lambda value: value >= 0, "a number of at least 0")
unit_fraction = _checked(float, lambda value: 0 <= value <= 1, "a number from 0 to 1")
probability_between = _checked(float, lambda value: 0 < value < 1, "a probability between 0 and 1 (not 0 or 1)")
port_number = _checked(int, lambda value: 1 <= value <= 65535, "a port number from 1 to 65535")


def add_reading(parser) -> None:
    """--batch-size and --workers: how `segnext predict` and `segnext eval` feed the model."""
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="N",
                        help="images per forward pass (default 1); images are grouped by their size after the "
                             "test resize, never padded, and each gets its single-image result")
    parser.add_argument("--workers", type=non_negative_int, metavar="N",
                        help="processes that read and resize images while the model runs; 0 reads in the main "
                             "process (default: 0 on the CPU, where the model takes nearly all the time; 2 on a "
                             "GPU, at most the CPU cores less one)")


def check_test_channels(model, test_config, source) -> int:
    """The input channels of `model`, after a ValueError where `test_config` (a TestConfig) normalises
    another number (a model of other channels than RGB tested with RGB settings, or the reverse)."""
    from ..inference.segmenter import input_channels

    channels = input_channels(model)
    if test_config.channels != channels:
        raise ValueError(f"{source} takes {channels} input channels (in_channels), and the test settings' mean and std "
                         f"normalise {test_config.channels}: give the config it was trained with (its data.mean and "
                         f"data.std hold one value per channel)")
    return channels

