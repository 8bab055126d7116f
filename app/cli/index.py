"""``nnwatch index``: the persistent run index in the state folder: what it holds, and rebuilding it.

``nnwatch scan`` and the dashboard use the index by themselves once it exists; ``--rebuild`` reads every run
of the given roots again (after a change nnwatch cannot see, or to build it before the first dashboard start).
The index is a cache: deleting its file loses only time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from app.cli.common import EXIT_OK, UsageError, print_json, require_root

__all__ = ["StderrProgress", "add_parsers", "require_roots"]


class StderrProgress:
    """``reading runs: 120/750`` on stderr while runs are read: redrawn in place on a terminal, else a line at
    most every few seconds; silent when everything came from the index or was read within ``after_s``."""

    def __init__(self, what: str = "reading runs", stream: TextIO | None = None, every_s: float = 2.0,
                 after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._every_s = 0.2 if self._tty else every_s
        self._clock = clock
        self._last = float("-inf")
        self._started = clock()
        self._after_s = after_s
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        final = done >= total
        if not self._shown and (final or now - self._started < self._after_s):
            return
        if not final and now - self._last < self._every_s:
            return
        self._last, self._shown = now, True
        text = f"{self._what}: {done}/{total} ({now - self._started:.0f} s)"
        if self._tty:
            self._stream.write("\r" + text + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


def require_roots(positional: str | None, extra: Sequence[str] | None) -> list[Path]:
    """Every results root asked for (a positional one and each ``--root``), else ``$nnUNet_results``."""
    named = ([positional] if positional else []) + list(extra or [])
    roots = [require_root(root) for root in named] if named else [require_root(None)]
    unique = list(dict.fromkeys(root.absolute() for root in roots))
    return unique


def _age(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    seconds = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def cmd_index(args: argparse.Namespace) -> int:
    from monitor.index import RunIndex, default_index_path, indexed_scan_rows

    check_no_root(args)
    path = default_index_path()
    if args.rebuild:
        roots = require_roots(args.root, args.roots)
        index = RunIndex(path, warn=lambda message: print(f"warning: {message}", file=sys.stderr))
        index.clear()
        started = time.monotonic()
        rows, problems = indexed_scan_rows(roots, index, workers=args.workers, verdicts=True,
                                           progress=StderrProgress())
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
        print(f"indexed {len(rows)} runs of {', '.join(map(str, roots))} in {time.monotonic() - started:.1f} s "
              f"into {path}")
        index.close()
        return EXIT_OK
    if not path.exists():
        if args.json:
            print_json({"path": str(path), "exists": False, "runs": 0})
            return EXIT_OK
        print(f"no run index yet at {path} (nnwatch scan, nnwatch serve or nnwatch index --rebuild make one)")
        return EXIT_OK
    info = RunIndex(path).info()
    if args.json:
        print_json({"path": str(info.path), "exists": True, "size_bytes": info.size_bytes, "runs": info.runs,
                    "roots": list(info.roots), "created": info.created, "updated": info.updated,
                    "age_s": None if info.created is None else time.time() - info.created,
                    "version": info.version, "current": info.current})
        return EXIT_OK
    print(f"index:    {info.path}")
    print(f"size:     {info.size_bytes / 2**20:.1f} MiB")
    print(f"runs:     {info.runs}" + (f" under {', '.join(info.roots)}" if info.roots else ""))
    print(f"created:  {_age(info.created)}")
    print(f"updated:  {_age(info.updated)}")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    index = sub.add_parser("index", help="the persistent run index: --info (size, runs, age) or --rebuild")
    what = index.add_mutually_exclusive_group(required=True)
    what.add_argument("--info", action="store_true", help="where the index is, its size, runs and age")
    what.add_argument("--rebuild", action="store_true", help="read every run of the roots again into the index")
    index.add_argument("root", nargs="?", help="results root to rebuild (default: $nnUNet_results)")
    index.add_argument("--root", dest="roots", action="append", metavar="ROOT",
                       help="another results root (repeatable)")
    index.add_argument("--workers", type=int, default=None, help="parallel parser processes (default: CPUs)")
    index.add_argument("--json", action="store_true", help="--info as JSON")
    index.set_defaults(handler=cmd_index)


def check_no_root(args: argparse.Namespace) -> None:
    if args.info and (args.root or args.roots):
        raise UsageError("--info takes no root")
