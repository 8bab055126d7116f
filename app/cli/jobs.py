"""``nnwatch extend``, ``nnwatch jobs`` and ``nnwatch cancel``: thin argparse over :mod:`trainer`.

Exit codes follow app/cli/main.py: 0 success, 1 a failed pre-flight check or job, 2 bad usage/unknown job.
:mod:`trainer` is imported by the commands, not here: every ``nnwatch`` start builds this parser.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import add_job_options, print_checks, print_json, report_job
from monitor.numbers import moment

if TYPE_CHECKING:
    from trainer import JobRegistry

__all__ = ["add_parsers"]


def _registry(args: argparse.Namespace) -> JobRegistry:
    from trainer import JobRegistry

    return JobRegistry(args.jobs_db)


def cmd_extend(args: argparse.Namespace) -> int:
    """Plan (and unless ``--dry-run``, submit) a longer retraining of one run."""
    from trainer import PreflightError, SlurmOptions, current_user, default_db_path, plan_extend, submit

    db = Path(args.jobs_db).expanduser() if args.jobs_db else default_db_path()
    registry = _registry(args) if not args.dry_run or db.exists() else None  # a dry run creates nothing
    jobs = []
    if registry is not None:
        try:
            jobs = registry.refresh()
        except Exception:  # a backend that cannot be asked (no squeue here): the recorded states still count
            jobs = registry.list_jobs()
    try:
        slurm = SlurmOptions.from_cli(args.slurm_partition, args.slurm_time, args.slurm_gres, args.slurm_account,
                                      args.slurm_extra)
        plan = plan_extend(args.run_dir, epochs=args.epochs, backend=args.backend, device=args.device,
                           gpu=args.gpu, slurm=slurm, jobs=jobs, start_over=args.start_over)
    except ValueError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return 2
    if plan.can_start_over and not plan.start_over and not args.json:
        print(f"nnwatch: {plan.new_run_dir} holds an earlier attempt that stopped; add --start-over to move it "
              f"aside to {plan.aside} (nothing is deleted)", file=sys.stderr)
    if args.dry_run:
        if args.json:
            print_json(plan.to_dict())
        else:
            print(f"parent:      {plan.parent.run_id}" + (f" ({plan.parent_epochs} epochs)" if plan.parent_epochs
                                                          else ""))
            print(f"trainer:     {plan.new_trainer or '-'} ({plan.epochs} epochs, from scratch)")
            print(f"new run:     {plan.new_run_dir}")
            print(f"backend:     {plan.backend} ({plan.device})")
            print("env:         " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items())))
            print(f"command:     {shlex.join(plan.argv)}")
            if plan.start_over and plan.aside is not None:
                print(f"start over:  the earlier attempt moves to {plan.aside}")
            print_checks(plan.checks)
            print("dry run: nothing was changed")
        return 0 if plan.ok else 1
    try:
        job = submit(plan, registry=registry or _registry(args), requested_by=current_user())
    except PreflightError as exc:
        print(f"nnwatch: {exc}", file=sys.stderr)
        return 1
    return report_job(job, as_json=args.json,
                      notes=[f"earlier attempt moved to: {plan.aside}"] if plan.start_over else [])


def cmd_jobs(args: argparse.Namespace) -> int:
    """Reconcile the registry with the backends, then list jobs."""
    jobs = _registry(args).refresh()
    if args.json:
        print_json([job.to_dict() for job in jobs])
        return 0
    if not jobs:
        print("no jobs")
        return 0
    print(f"{'JOB':<13}{'STATE':<11}{'EPOCHS':>7}  {'BACKEND':<8}{'BY':<12}{'CREATED':<25}NEW RUN / REASON")
    for job in jobs:
        kind = "" if job.kind.value == "extend" else f"[{job.kind.value}] "
        detail = kind + job.new_run_id + (f"  ({job.reason})" if job.reason else "")
        print(f"{job.job_id:<13}{job.state.value:<11}{job.epochs:>7}  {job.backend:<8}{job.requested_by[:11]:<12}"
              f"{moment(job.created_at):<25}{detail}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Stop one job."""
    from trainer import BackendError, JobNotFoundError, current_user

    try:
        job = _registry(args).cancel(args.job_id, current_user(), grace_s=args.grace)
    except JobNotFoundError:
        print(f"nnwatch: error: no job {args.job_id!r}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"nnwatch: cannot cancel {args.job_id}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(job.to_dict())
    else:
        print(f"job {job.job_id}: {job.state.value}" + (f" ({job.reason})" if job.reason else ""))
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``extend``, ``jobs`` and ``cancel`` on nnwatch's subcommand parser."""
    db_help = "job registry file (default: $NNWATCH_JOBS_DB or the user data folder)"
    extend = subparsers.add_parser("extend", help="retrain a run from scratch with more epochs")
    extend.add_argument("run_dir", help="the parent run's fold folder")
    extend.add_argument("--epochs", type=int, default=2000, help="epochs of the new run (default: 2000)")
    add_job_options(extend)
    extend.add_argument("--start-over", action="store_true",
                        help="when an earlier attempt of this extension stopped (cancelled, failed, crashed), move "
                        "its folder aside to a named sibling and train again; nothing is deleted")
    extend.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
    extend.add_argument("--json", action="store_true", help="print the plan (with --dry-run) or the job as JSON")
    extend.set_defaults(handler=cmd_extend)

    jobs = subparsers.add_parser("jobs", help="list jobs of every kind (reconciled with their backends)")
    jobs.add_argument("--json", action="store_true", help="print the jobs as a JSON list")
    jobs.add_argument("--jobs-db", default=None, help=db_help)
    jobs.set_defaults(handler=cmd_jobs)

    cancel = subparsers.add_parser("cancel", help="stop a job (any kind)")
    cancel.add_argument("job_id", help="the job's id, as `nnwatch jobs` lists it")
    cancel.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (local)")
    cancel.add_argument("--json", action="store_true", help="print the cancelled job as JSON")
    cancel.add_argument("--jobs-db", default=None, help=db_help)
    cancel.set_defaults(handler=cmd_cancel)
