"""The commands and code in README.md, docs/*.md and every command's --help examples still match the
package: each command line parses, each shipped config it names loads with its overrides, each
dataset and variant it names exists, and each Python block compiles and calls only what segnext has,
with keywords its functions take. Nothing is run: a renamed option or key fails here, not in a
user's terminal."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import re
import shlex
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

import segnext
from segnext.cli.main import build_parser, parse_arguments
from segnext.data import DATASETS
from segnext.train import list_configs, load_config

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]


def code_blocks(text: str) -> Iterator[Tuple[str, List[str]]]:
    """(language, lines) of each fenced block."""
    language, lines = None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is not None:
                yield language, lines
                language, lines = None, []
            else:
                language = line[3:].strip()
        elif language is not None:
            lines.append(line)


def shell_commands(lines: List[str]) -> Iterator[str]:
    """The `segnext ...` and `torchrun ... -m segnext.cli.main ...` lines, continuations joined, comments cut."""
    pending = ""
    for line in lines:
        text = line.strip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending = (pending + text).split(" #")[0].strip(), ""
        if re.match(r"segnext [a-z]+( |$)", text) or (text.startswith("torchrun ") and "segnext.cli.main" in text):
            yield text


def is_placeholder(command: str) -> bool:
    """A synopsis such as `segnext train CONFIG [key=value ...]`, not a command to type."""
    return re.search(r" \[", command) is not None


def documented_commands() -> List[Tuple[str, str]]:
    found = []
    for name in DOCUMENTS:
        for language, lines in code_blocks((ROOT / name).read_text(encoding="utf-8")):
            if language in ("", "bash", "sh"):
                found += [(name, command) for command in shell_commands(lines) if not is_placeholder(command)]
    for command, parser in build_parser().commands.choices.items():
        examples = (parser.epilog or "").splitlines()[1:]
        found += [(f"segnext {command} --help", command_line)
                  for command_line in shell_commands(examples) if not is_placeholder(command_line)]
    return found


def python_blocks() -> List[Tuple[str, str]]:
    return [(name, "\n".join(lines)) for name in DOCUMENTS
            for language, lines in code_blocks((ROOT / name).read_text(encoding="utf-8")) if language == "python"]


COMMANDS = documented_commands()
PYTHON_BLOCKS = python_blocks()


def test_the_documents_hold_commands_and_code():
    # The extraction itself can fail (a changed fence style would make every test below vacuous).
    assert len(COMMANDS) > 60 and len(PYTHON_BLOCKS) > 10
    assert {source for source, _ in COMMANDS} >= {"README.md", "docs/training.md", "segnext train --help"}


def parse(command: str) -> argparse.Namespace:
    argv = shlex.split(command)
    argv = argv[argv.index("segnext.cli.main") + 1:] if argv[0] == "torchrun" else argv[1:]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parse_arguments(build_parser(), argv)
    except SystemExit:
        pytest.fail(f"does not parse: {errors.getvalue().strip()}")


@pytest.mark.parametrize("source, command", COMMANDS, ids=[f"{s}: {c[:60]}" for s, c in COMMANDS])
def test_documented_command_matches_the_cli(source, command):
    args = parse(command)
    assert getattr(args, "func", None) is not None, f"{command!r} names no command"
    if args.command in ("train", "eval") and args.config in list_configs():
        # Placeholders ('data.root=...') stand for a user's value; every real key must exist.
        overrides = [o for o in args.overrides if not o.endswith("=...")]
        load_config(args.config, overrides)
    if args.command == "data" and getattr(args, "name", None):
        assert args.name in DATASETS, f"{args.name!r} is not a dataset segnext reads"
    for variant in getattr(args, "names", None) or [getattr(args, "name", None)]:
        if args.command in ("flops", "benchmark") and variant:
            assert variant in segnext.list_models()


def segnext_calls(tree: ast.AST) -> Iterator[Tuple[str, object, List[str]]]:
    """(name, object, keywords) of each `segnext.NAME(...)` and `from segnext... import NAME` call."""
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segnext":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "segnext":
            assert hasattr(segnext, node.attr), f"segnext has no {node.attr}"
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) \
                and function.value.id == "segnext":
            name, target = f"segnext.{function.attr}", getattr(segnext, function.attr)
        elif isinstance(function, ast.Name) and function.id in imported:
            name, target = function.id, imported[function.id]
        else:
            continue
        yield name, target, [keyword.arg for keyword in node.keywords if keyword.arg]


@pytest.mark.parametrize("source, code", PYTHON_BLOCKS, ids=[f"{s}#{i}" for i, (s, _) in enumerate(PYTHON_BLOCKS)])
def test_documented_python_matches_the_api(source, code):
    for name, target, keywords in segnext_calls(ast.parse(code)):
        if not callable(target):
            continue
        parameters = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue
        unknown = [keyword for keyword in keywords if keyword not in parameters]
        assert not unknown, f"{name}() takes no keyword {unknown} (it takes {list(parameters)})"


def test_a_renamed_option_would_be_caught():
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --no-such-option"):
        parse("segnext predict --checkpoint camvid photo.jpg --no-such-option")
    with pytest.raises(Exception, match="no_such_key"):
        load_config("camvid/segnext_t_camvid_cpu_60min", ["train.no_such_key=1"])
    tree = ast.parse("import segnext\nsegnext.create_model('segnext_t', no_such_keyword=1)")
    [(_, target, keywords)] = list(segnext_calls(tree))
    assert "no_such_keyword" in keywords and "no_such_keyword" not in inspect.signature(target).parameters


def nested_keys(mapping: dict, prefix: str = "") -> set:
    """Dotted keys of a config dict; free-form mappings (custom_keys, options, ...) count as one key."""
    keys = set()
    for key, value in mapping.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and key not in ("custom_keys", "logger_options", "options"):
            keys |= nested_keys(value, f"{prefix}{key}.")
    return keys


def test_the_documented_config_shows_every_key():
    from segnext.train.config import config_from_dict

    [listing] = [lines for language, lines in code_blocks((ROOT / "docs/training.md").read_text(encoding="utf-8"))
                 if language == "yaml" and lines[0].startswith("description:")]
    documented = nested_keys(yaml.safe_load("\n".join(listing)))
    # evaluation.mean/std are data.mean/std (the listing says so below it)
    actual = nested_keys(config_from_dict({}).to_dict()) - {"evaluation.mean", "evaluation.std"}
    assert documented == actual, f"missing from docs/training.md: {sorted(actual - documented)}; " \
                                 f"not config keys: {sorted(documented - actual)}"
