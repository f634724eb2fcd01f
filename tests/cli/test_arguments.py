"""Numeric options are checked when the command line is read, before any work, by argparse; shared
options mean the same in every command."""

from __future__ import annotations

import argparse
import sys

import pytest

from segnext.cli.arguments import (
    add_test_settings,
    add_training_progress,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_float,
    positive_int,
    training_progress_bar,
    unit_fraction,
)
from segnext.cli.arguments import test_settings as settings_from_flags  # a test_ name pytest would collect
from segnext.cli.main import main


@pytest.mark.parametrize("parse,text,expected", [
    (positive_int, "3", 3), (non_negative_int, "0", 0), (positive_float, "0.25", 0.25),
    (non_negative_float, "0", 0.0), (unit_fraction, "1", 1.0), (port_number, "8080", 8080),
])
def test_accepted_values_come_back_parsed(parse, text, expected):
    assert parse(text) == expected and type(parse(text)) is type(expected)


@pytest.mark.parametrize("parse,text,requirement", [
    (positive_int, "0", "a whole number of at least 1"), (positive_int, "1.5", "a whole number of at least 1"),
    (non_negative_int, "-1", "a whole number of at least 0"), (positive_float, "0", "a number above 0"),
    (positive_float, "nan", "a number above 0"), (positive_float, "inf", "a number above 0"),
    (non_negative_float, "-0.5", "a number of at least 0"), (unit_fraction, "1.5", "a number from 0 to 1"),
    (port_number, "65536", "a port number from 1 to 65535"), (positive_int, "four", "a whole number of at least 1"),
])
def test_refused_values_say_what_is_wanted(parse, text, requirement):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^must be {requirement}, got '{text}'$"):
        parse(text)


@pytest.mark.parametrize("argv,message", [
    (["predict", "-c", "m", "x.jpg", "--alpha", "2"], "argument --alpha: must be a number from 0 to 1, got '2'"),
    (["predict", "-c", "m", "x.jpg", "--scales", "1", "-1"], "argument --scales: must be a number above 0, got '-1'"),
    (["predict", "-c", "m", "x.jpg", "--img-scale", "0", "0"], "argument --img-scale: must be a whole number of at "
                                                               "least 1, got '0'"),
    (["predict", "-c", "m", "x.jpg", "--batch-size", "0"], "argument --batch-size: must be a whole number of at "
                                                           "least 1, got '0'"),
    (["predict", "-c", "m", "x.jpg", "--workers", "-1"], "argument --workers: must be a whole number of at least 0"),
    (["predict", "-c", "m", "x.jpg", "--threads", "0"], "argument --threads: must be a whole number of at least 1"),
    (["benchmark", "--shape", "0", "512"], "argument --shape: must be a whole number of at least 1, got '0'"),
    (["benchmark", "--warmup", "-1"], "argument --warmup: must be a whole number of at least 0, got '-1'"),
    (["serve", "-c", "m", "--port", "70000"], "argument --port: must be a port number from 1 to 65535"),
    (["serve", "-c", "m", "--cache-mb", "-1"], "argument --cache-mb: must be a number of at least 0"),
    (["export", "-c", "m", "--opset", "0"], "argument --opset: must be a whole number of at least 1"),
    (["flops", "--num-classes", "0"], "argument --num-classes: must be a whole number of at least 1"),
    (["flops", "--option", "attention_gating"], "argument --option: must be KEY=VALUE (e.g. attention_gating=false)"),
    (["flops", "--option", "num_classes=3"], "argument --option: num_classes is not an option here"),
    (["demo", "--iters", "0"], "argument --iters: must be a whole number of at least 1, got '0'"),
    (["eval", "c.yaml", "-c", "m", "--max-images", "0"], "argument --max-images: must be a whole number of at least 1"),
    (["data", "check", "camvid", "root", "--workers", "-1"], "argument --workers: must be a whole number of at least"),
])
def test_a_bad_number_stops_the_command_as_it_is_read(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("terminal, no_progress, bar",
                         [(True, False, True), (True, True, False), (False, False, False)])
def test_training_draws_the_bar_on_a_terminal_only(monkeypatch, terminal, no_progress, bar):
    """Redrawn into a log file, the bar is one endless line: there, the train records are printed as lines."""
    parser = argparse.ArgumentParser()
    add_training_progress(parser)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert training_progress_bar(parser.parse_args(["--no-progress"] if no_progress else [])) is bar


@pytest.mark.parametrize("argv, meant", [
    (["eval", "camvid/segnext_t_camvid_cpu_60min", "-c", "camvid", "--mod", "slide"], "--model-settings or --mode"),
    (["predict", "-c", "camvid", "--overlya", "a.jpg"], "--overlay"),
    (["data", "split", "folder", "root", "--hold-out-frac", "0.2"], "--hold-out-fraction"),
])
def test_an_unknown_option_is_refused_with_the_options_meant(capsys, argv, meant):
    """No abbreviations: `--mod` is not taken for --model-settings (which quietly dropped the slide
    inference asked for); argparse's error names the options that were probably meant."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert f"(did you mean {meant}?)" in capsys.readouterr().err


def test_test_time_flags_replace_the_saved_settings_and_only_those_given():
    """--flip and --no-flip turn the saved flip on and off (a model saved with flip, as CamVid's, can
    then be run at one view); --scales and --keep-size replace theirs; what is not given stays."""
    from segnext.inference import TestConfig

    parser = argparse.ArgumentParser()
    add_test_settings(parser)
    saved = TestConfig(img_scale=(480, 360), scales=(1.5,), flip=True)
    assert settings_from_flags(parser.parse_args([]), saved) == saved
    one_view = settings_from_flags(parser.parse_args(["--no-flip", "--scales", "1", "--keep-size"]), saved)
    assert (one_view.flip, one_view.scales, one_view.img_scale) == (False, (1.0,), None)
    assert settings_from_flags(parser.parse_args(["--flip"]), TestConfig()).flip is True
