"""The command line: every flag of every job says what it does (and --help shows its default);
library errors name a key that becomes the flag the user typed."""

import argparse
import importlib

import pytest

from jobs._cli import message
from mnist_core.errors import ConfigError

JOBS = ["jobs.train", "jobs.sweep", "jobs.score", "jobs.score_demo", "jobs.make_images",
        "jobs.report", "jobs.submit", "jobs.export"]


def _parser(module_name: str) -> argparse.ArgumentParser:
    return importlib.import_module(module_name).build_parser()


@pytest.mark.parametrize("module_name", JOBS)
def test_every_flag_has_help_and_its_default_is_shown(module_name):
    parser = _parser(module_name)
    assert isinstance(parser.formatter_class, type)
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, f"{module_name} {action.option_strings or action.dest} has no help"
    defaults = [action for action in parser._actions if action.option_strings
                and action.default not in (None, False, argparse.SUPPRESS)
                and "(default" not in action.help]  # one that says its own default
    for action in defaults:
        shown = (",".join(map(str, action.default)) if isinstance(action.default, tuple)
                 else action.default)
        assert f"(default: {shown})" in " ".join(text.split()), action.dest
    assert "(default: None)" not in text and "(default: (" not in text
    assert " ".join(parser.description.split()).endswith((".", ")")), parser.description


def test_a_keyed_error_is_spelled_as_the_flag():
    error = ConfigError("must be > 0, got -1", key="learning_rate")
    assert str(error) == "learning_rate must be > 0, got -1"
    assert message(error) == "--learning-rate must be > 0, got -1"
    assert message(ConfigError("[grid] epochs must be a positive integer")) == (
        "[grid] epochs must be a positive integer")
