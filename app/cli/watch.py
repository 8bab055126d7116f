"""``nnwatch watch``: stream what changes under a results root, one line per event, until Ctrl-C.

Built on :class:`monitor.watch.watcher.ResultsWatcher`. On start every run found is reported once (``run_added`` with
its summary row), not its past epochs; then only what is new. ``--jsonl`` prints one JSON object per line
and flushes each, so ``nnwatch watch --jsonl | jq`` or a supervising program sees an epoch as soon as the
watcher does. SIGINT and SIGTERM end it cleanly (exit 0, observer stopped): it is meant to run under
systemd, tmux or a notebook's subprocess as well as in a terminal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.numbers import moment

if TYPE_CHECKING:
    from monitor.index import RunIndex

__all__ = ["add_parsers", "cmd_watch", "format_event"]

#: Kinds the CLI prints (the watcher also has ``run_updated`` for table refreshes, which is noise here).
CLI_EVENTS = frozenset({"run_added", "epoch", "status", "run_removed"})


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    watch = subparsers.add_parser("watch", help="stream new epochs, runs and status changes under a results root")
    watch.add_argument("root", nargs="?", help="results root (default: $nnUNet_results)")
    watch.add_argument("--root", dest="roots", action="append", metavar="ROOT",
                       help="another results root (repeatable); events then carry their root")
    watch.add_argument("--no-index", dest="use_index", action="store_false",
                       help="read every run from its files at start even where the run index has it")
    watch.add_argument("--jsonl", action="store_true", help="one JSON object per event on stdout")
    watch.add_argument("--poll", type=_seconds, metavar="SECONDS", default=None,
                       help="poll every SECONDS instead of using inotify (network file systems are detected and "
                            "polled every 2 s without this)")
    watch.set_defaults(handler=cmd_watch)


def _seconds(text: str) -> float:
    """argparse type for ``--poll``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_event(event: dict[str, Any]) -> str:
    """The human one-line form of an event dict (``WatchEvent.to_dict()`` shape)."""
    kind, run_id, stamp = event["event"], event["run_id"], moment(event.get("time"))
    if kind == "run_added":
        planned = event.get("planned_epochs")
        detail = (f"{event.get('status')}  {event.get('epochs_completed', 0)}/{planned if planned else '?'} epochs"
                  f"  ema {_number(event.get('last_ema_fg_dice'))}")
        if event.get("moved_from"):
            detail += f"  (renamed from {event['moved_from']})"
    elif kind == "epoch":
        detail = (f"epoch {event.get('epoch')}  dice {_number(event.get('mean_fg_dice'))}  "
                  f"ema {_number(event.get('ema_fg_dice'))}  lr {_number(event.get('lr'), 5)}  "
                  f"loss {_number(event.get('train_loss'))}/{_number(event.get('val_loss'))}  "
                  f"{_number(event.get('epoch_time_s'), 1)} s")
    elif kind == "status":
        detail = f"{event.get('previous')} -> {event.get('status')}  ({event.get('reason')})"
        if event.get("eta"):
            detail += f"  eta {moment(event['eta'])}"
    else:
        detail = str(event.get("reason") or "")
        if event.get("moved_to"):
            detail += f" to {event['moved_to']}"
    return f"{stamp}  {kind:<11} {run_id}  {detail}"


def _emit(event: dict[str, Any], jsonl: bool) -> None:
    from app.cli.common import clean_for_json, json_default

    if jsonl:
        line = json.dumps(clean_for_json(event), default=json_default, separators=(",", ":"))
    else:
        line = format_event(event)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cmd_watch(args: argparse.Namespace) -> int:
    from app.cli.common import EXIT_OK
    from app.cli.index import StderrProgress, require_roots
    from monitor.watch.events import iso_time
    from monitor.watch.watcher import ResultsWatcher

    roots = require_roots(args.root, args.roots)
    index = _open_index() if args.use_index else None
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    watchers = [ResultsWatcher(root, poll=args.poll, index=index, progress=StderrProgress()) for root in roots]
    tagged = len(roots) > 1  # several roots: say which one each event is from

    def emit(event: dict[str, Any], root: Path) -> None:
        _emit({**event, "root": str(root)} if tagged else event, args.jsonl)

    try:
        versions = []
        for root, watcher in zip(roots, watchers):
            watcher.start()
            print(f"nnwatch: watching {root} ({watcher.observer.reason}); Ctrl-C to stop", file=sys.stderr)
            for note in watcher.notes:
                print(f"warning: {note}", file=sys.stderr)
            snapshot = watcher.snapshot()
            now = iso_time(time.time())
            for run_id in sorted(snapshot.runs):
                emit({"event": "run_added", "run_id": run_id, "time": now, **snapshot.runs[run_id].summary.row()}, root)
            versions.append(snapshot.version)
        while not stop.is_set():
            for i, (root, watcher) in enumerate(zip(roots, watchers)):
                changes = watcher.changes_since(versions[i], timeout=0.25 / len(watchers))
                versions[i] = changes.version
                if changes.events is None:  # fell behind the event buffer: carry on from now
                    print("warning: events were dropped (output too slow); continuing", file=sys.stderr)
                    continue
                for event in changes.events:
                    if event.kind in CLI_EVENTS:
                        emit(event.to_dict(), root)
    except BrokenPipeError:  # `nnwatch watch | head`: the reader left; that is a normal end
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        for watcher in watchers:
            watcher.stop()
        if index is not None:
            index.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _open_index() -> RunIndex | None:
    """The run index when one exists (``nnwatch watch`` then starts from it and keeps it up to date)."""
    from monitor.index import RunIndex, default_index_path

    if not default_index_path().exists():
        return None
    return RunIndex(warn=lambda message: print(f"warning: {message}", file=sys.stderr))
