"""The ``nnwatch`` command line: the same monitor/ and trainer/ calls the dashboard makes, as text or JSON.

One module per command; each adds its parser and imports its heavy modules (pandas, torch, streamlit) inside
the command, so ``nnwatch scan`` starts fast. Exit codes: 0 success, 1 a run-level failure the user must look
at, 2 bad usage or a missing root/run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import analyze, compare, index, jobs, notify, report, scan, serve, steps, watch, worker
from app.cli.common import EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["build_parser", "main"]

_COMMANDS = (scan, analyze, compare, watch, jobs, steps, report, serve, worker, notify, index)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnwatch",
        description="Watch nnU-Net training runs, judge whether Dice is still improving, extend them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or EXIT_OK)
    except (UsageError, FileNotFoundError) as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
