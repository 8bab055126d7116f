"""Every ``nnwatch`` subcommand's ``--help``: each option and argument explained in a sentence, printed as the
user should read it (``95%``, never argparse's escaped ``95%%``)."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from app.cli.main import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_option_has_a_sentence_of_help(name: str) -> None:
    parser = _subparsers()[name]
    missing = [action.dest for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and (not action.help or len(action.help.split()) < 3)
               and action.help != argparse.SUPPRESS]
    assert not missing, f"nnwatch {name}: options without a sentence of help: {missing}"


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_help_prints_plain_percent_signs(name: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        build_parser().parse_args([name, "--help"])
    assert exited.value.code == 0
    text = out.getvalue()
    assert f"usage: nnwatch {name}" in text
    assert "%%" not in text and "%(" not in text


def test_analyze_help_names_the_95_percent_interval() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", "--help"])
    assert "95%" in out.getvalue().replace("\n", " ")
