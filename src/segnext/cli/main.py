"""Entry point of the `segnext` command.

Each subcommand lives in its own module of this package exposing
`register(subparsers)` (adds its parser and sets `func`) and is listed in COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from ..utils import DiskFullError
from .arguments import CommandParser

# Module names under segnext.cli, in the order `segnext --help` lists them.
COMMANDS = [
    "models",
    "info",
    "convert",
    "push",
    "data",
    "train",
    "eval",
    "calibrate",
    "compare",
    "pool",
    "report",
    "demo",
    "predict",
    "serve",
    "export",
    "flops",
    "benchmark",
]


def build_parser() -> CommandParser:
    from .. import __version__

    parser = CommandParser(prog="segnext", description="SegNeXt semantic segmentation.")
    parser.add_argument("--version", action="version", version=f"segnext {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def parse_arguments(parser: CommandParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """The command line, with a command's positional arguments allowed after its options too:
    `segnext train CONFIG --work-dir W key=value`. Plain argparse takes a command's positionals in one
    run and rejects those that follow an option; such a line is parsed again, intermixed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extras = parser.parse_known_args(argv)
    command = getattr(args, "command", None)
    if extras and command in argv:
        try:
            return parser.commands.choices[command].parse_intermixed_args(argv[argv.index(command) + 1:],
                                                                         namespace=argparse.Namespace(command=command))
        except TypeError:  # a command with sub-commands of its own (`segnext data`): no intermixing there
            pass
    if extras:  # reported by the command's own parser, which can say which of its options was meant
        parser.parser_of(args).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..runtime import configure_process

    configure_process()  # this process runs segnext's work: the process-wide settings of segnext.runtime
    from ..compat import numpy_problem

    problem = numpy_problem()  # else every command would fail later with PyTorch's bare "Numpy is not available"
    if problem:
        print(f"segnext {args.command}: error: {problem}", file=sys.stderr)
        return 1
    try:
        with warnings.catch_warnings():  # the library's warnings, said as the command's own
            warnings.showwarning = _command_warning(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, DiskFullError) as error:
        # Library errors are written for people: print them without a traceback.
        print(f"segnext {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as error:
        # A path given on the command line (an output folder, a work dir) that the file system refuses.
        print(f"segnext {args.command}: error: {path_error(error)}", file=sys.stderr)
        return 1


def _command_warning(command: str, show_other):
    """`warnings.showwarning` for a command: a warning of segnext's own code (written for people, as
    its errors are) as one line, "segnext COMMAND: warning: ..."; any other as Python shows it."""
    package = Path(__file__).resolve().parents[1]

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(package):
            print(f"segnext {command}: warning: {message}", file=sys.stderr if file is None else file)
        else:
            show_other(message, category, filename, lineno, file, line)

    return show


def path_error(error: OSError) -> str:
    """What is wrong with the path of a file-system error, and what to do, in one line."""
    if not error.filename:
        return str(error)
    what = {FileExistsError: "a file has this name where a folder is needed",
            NotADirectoryError: "a part of this path is a file, not a folder",
            IsADirectoryError: "this is a folder where a file is needed",
            PermissionError: "permission denied"}.get(type(error), error.strerror)
    return f"{error.filename}: {what}; choose another path (or check its permissions)"


if __name__ == "__main__":
    sys.exit(main())
