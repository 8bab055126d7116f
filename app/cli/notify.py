"""``nnwatch notify``: the notifier without a dashboard (a systemd service, a compose service), its test message,
and the history of what it sent."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from app.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_json, require_root
from monitor.numbers import moment

if TYPE_CHECKING:
    from app.notify import Notifier, NotifyConfig

__all__ = ["add_parsers", "start_background_notifier"]


def _load(path: str | None) -> NotifyConfig | None:
    from app.notify import ConfigError, default_config_path, load_config

    try:
        return load_config(path or default_config_path())
    except ConfigError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return None


def _time(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds")


def cmd_notify(args: argparse.Namespace) -> int:
    from app.notify import Outbox, redact_url, send_test

    if args.history:
        rows = Outbox().history(args.history)
        if args.json:
            print_json([{"created_at": _time(r.created_at), "sent_at": _time(r.sent_at), "event": r.event,
                         "run_id": r.run_id, "url": redact_url(r.url), "rule": r.rule, "state": r.state,
                         "attempts": r.attempts, "last_error": r.last_error} for r in rows])
        else:
            for r in rows:
                print(f"{moment(r.sent_at or r.created_at)}  {r.state:7}  {r.event:18}  {r.run_id}  {redact_url(r.url)}"
                      + (f"  ({r.last_error})" if r.state != "sent" and r.last_error else ""))
        return EXIT_OK
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    if args.check:
        print(f"nnwatch: {config.path}: {len(config.rules)} rule(s), {len(config.urls())} URL(s)", file=sys.stderr)
        return EXIT_OK
    if args.test:
        results = send_test(config)
        for result in results:
            note = f"  ({result.error})" if result.error else ""
            print(f"{'sent  ' if result.ok else 'FAILED'} {result.url}{note}")
        return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED
    root = require_root(args.root)
    from app.notify import Notifier
    from trainer import JobRegistry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    notifier = Notifier(root, config, registry=JobRegistry(args.jobs_db), poll=args.poll)
    stopped = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, stop)
    notifier.start()
    print(f"nnwatch: notifying about runs under {root} per {config.path} ({len(config.rules)} rule(s), "
          f"{notifier.watcher.observer.kind}); state in {notifier.outbox.path}", file=sys.stderr)
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        notifier.stop()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def start_background_notifier(roots: Sequence[str], config_path: str | None, jobs_db: str | None,
                              dashboard_url: str) -> list[Notifier]:
    """For ``nnwatch serve``: one notifier per results root in this process's background, or none (with the reason
    on stderr) when there is no config or no root, or ``NNWATCH_NOTIFY=off`` leaves it to ``nnwatch notify``.
    Links point to the dashboard at ``dashboard_url`` unless the rules say otherwise."""
    from app.notify import default_config_path

    if os.environ.get("NNWATCH_NOTIFY", "").lower() in ("0", "off", "no", "false"):
        return []  # another process (a `nnwatch notify` service) sends them
    path = config_path or default_config_path()
    if config_path is None and not Path(path).is_file():
        return []
    if not roots:
        print("nnwatch: notifications are off for demo runs (no results root)", file=sys.stderr)
        return []
    config = _load(str(path))
    if config is None:
        print("nnwatch: notifications are off until the config is fixed", file=sys.stderr)
        return []
    from app.notify import Notifier
    from app.served import root_labels
    from trainer import JobRegistry

    labels = root_labels([Path(root) for root in roots]) if len(roots) > 1 else [""]
    notifiers = []
    for root, label in zip(roots, labels):
        try:
            notifiers.append(Notifier(root, config, registry=JobRegistry(jobs_db), dashboard_url=dashboard_url,
                                      root_label=label).start())
        except Exception as exc:  # the dashboard (and the other roots) are still worth serving
            print(f"nnwatch: warning: notifications about {root} are off: {exc}", file=sys.stderr)
    if notifiers:
        print(f"nnwatch: notifications per {config.path}", file=sys.stderr)
    return notifiers


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``notify`` (called by app/cli/main.py)."""
    parser = sub.add_parser(
        "notify", help="send notifications about runs and jobs (headless; `serve` does it too)",
        description="Watch a results root and the job registry and send notifications through apprise per the "
        "rules in a TOML file (see README). Each event is sent once per run, even across restarts; state is kept "
        "in notifications.sqlite3 in nnwatch's state folder ($NNWATCH_STATE).")
    parser.add_argument("root", nargs="?", help="results tree to watch (default: $nnUNet_results)")
    parser.add_argument("--config", help="rules file (default: $NNWATCH_NOTIFY_CONFIG or "
                        "~/.config/nnwatch/notify.toml); must not be readable by other users")
    parser.add_argument("--test", action="store_true", help="send one test message to each configured URL and exit")
    parser.add_argument("--check", action="store_true", help="only check the config file")
    parser.add_argument("--history", type=int, nargs="?", const=100, default=None, metavar="N",
                        help="print the last N notifications (default 100) and exit")
    parser.add_argument("--json", action="store_true", help="with --history: JSON output")
    parser.add_argument("--poll", type=float, default=None, help="poll every SECONDS instead of inotify")
    parser.add_argument("--jobs-db", help="job registry file (default: $NNWATCH_JOBS_DB or the state folder)")
    parser.set_defaults(handler=cmd_notify)
