"""``nnwatch worker``: run the local jobs that a dashboard handed off (see :mod:`trainer.handoff`).

The trainer service of docker/compose.yaml runs this; ``--check`` is its health check. :mod:`trainer` is
imported by the command, not here: every ``nnwatch`` start builds this parser.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_parsers"]


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def cmd_worker(args: argparse.Namespace) -> int:
    """Loop (or one pass with ``--once``) over the registry; ``--check``: is this host's worker alive?"""
    from trainer import JobRegistry
    from trainer.handoff import Worker, check_heartbeat, run_worker

    registry = JobRegistry(args.jobs_db)
    worker = Worker(registry, grace_s=args.grace)
    if args.check:
        return check_heartbeat(registry, worker.host, max_age_s=max(30.0, 5 * args.interval))
    return run_worker(worker, interval_s=args.interval, once=args.once)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``worker`` on nnwatch's subcommand parser."""
    worker = subparsers.add_parser("worker", help="run local jobs handed off by a dashboard (a trainer service)")
    worker.add_argument("--jobs-db", default=None,
                        help="job registry file (default: $NNWATCH_JOBS_DB or the user data folder)")
    worker.add_argument("--interval", type=float, default=_float_env("NNWATCH_WORKER_INTERVAL_S", 2.0),
                        help="seconds between passes (default 2, $NNWATCH_WORKER_INTERVAL_S)")
    worker.add_argument("--grace", type=float, default=_float_env("NNWATCH_CANCEL_GRACE_S", 10.0),
                        help="seconds between SIGTERM and SIGKILL when stopping a job (default 10, "
                             "$NNWATCH_CANCEL_GRACE_S)")
    worker.add_argument("--once", action="store_true", help="one pass, then exit")
    worker.add_argument("--check", action="store_true",
                        help="exit 0 when this host's worker wrote its heartbeat recently (a health check)")
    worker.set_defaults(handler=cmd_worker)
