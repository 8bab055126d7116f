"""``nnwatch train-fold``, ``nnwatch validate`` and ``nnwatch find-best``: nnU-Net's next steps as tracked jobs.

The same registry, backends, pre-flight checks and exit codes as ``nnwatch extend`` (0 success, 1 a
failed check or job, 2 bad usage). ``--dry-run`` prints the exact command and every check and changes
nothing; ``find-best --show`` prints the result nnU-Net wrote. :mod:`trainer` is imported by the commands.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from app.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_job_options, print_checks, print_json, report_job

if TYPE_CHECKING:
    from monitor.validation import BestConfiguration
    from trainer import SlurmOptions, StepPlan

__all__ = ["add_parsers", "print_best"]


def _slurm(args: argparse.Namespace) -> SlurmOptions:
    from trainer import SlurmOptions

    return SlurmOptions.from_cli(args.slurm_partition, args.slurm_time, args.slurm_gres, args.slurm_account,
                                 args.slurm_extra)


def _print_plan(plan: StepPlan) -> None:
    print(f"job:         {plan.kind.value} — {plan.description}")
    print(f"writes into: {plan.target}")
    print(f"backend:     {plan.backend} ({plan.device})")
    print("env:         " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items())))
    print(f"command:     {shlex.join(plan.argv) if plan.argv else '-'}")
    print_checks(plan.checks)


def _run(args: argparse.Namespace, plan: StepPlan) -> int:
    """Print the plan (``--dry-run``) or submit it; the job (or the plan) as JSON with ``--json``."""
    from trainer import JobRegistry, PreflightError, current_user, submit_step

    if args.dry_run:
        if args.json:
            print_json(plan.to_dict())
        else:
            _print_plan(plan)
            print("dry run: nothing was changed")
        return EXIT_OK if plan.ok else EXIT_FAILED
    try:
        job = submit_step(plan, registry=JobRegistry(args.jobs_db), requested_by=current_user())
    except PreflightError as exc:
        print(f"nnwatch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return report_job(job, as_json=args.json)


def cmd_train_fold(args: argparse.Namespace) -> int:
    """Train a fold the configuration folder is missing, with its trainer and plans and ``--npz``."""
    from trainer import plan_train_fold

    try:
        plan = plan_train_fold(args.config_dir, args.fold, backend=args.backend, device=args.device, gpu=args.gpu,
                               slurm=_slurm(args))
    except ValueError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, plan)


def cmd_validate(args: argparse.Namespace) -> int:
    """Re-run a finished fold's validation with ``--npz`` (``--val-best``: with checkpoint_best.pth)."""
    from trainer import plan_validate

    try:
        plan = plan_validate(args.run_dir, val_best=args.val_best, backend=args.backend, device=args.device,
                             gpu=args.gpu, slurm=_slurm(args))
    except ValueError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, plan)


def print_best(best: BestConfiguration) -> None:
    """The find_best_configuration result as text (what the dashboard's panel shows)."""
    kind = "ensemble" if best.is_ensemble else "model"
    print(f"best {kind}: {best.best_identifier} (folds {', '.join(best.folds)})")
    after = "-" if best.dice_after_postprocessing is None else f"{best.dice_after_postprocessing:.4f}"
    print(f"cross-validation Dice: {best.dice_before_postprocessing:.4f} before, {after} after postprocessing")
    for name, dice in sorted(best.all_results.items(), key=lambda item: -item[1]):
        print(f"  {dice:.4f}  {name}")
    print(f"postprocessing: {best.postprocessing_file}")
    for command in best.commands:
        print(f"  {command}")


def cmd_find_best(args: argparse.Namespace) -> int:
    """Run (or with ``--show`` read) nnUNetv2_find_best_configuration for one dataset's results folder."""
    from monitor.validation import BestConfigurationError, read_best_configuration
    from trainer import plan_find_best

    if args.show:
        try:
            best = read_best_configuration(args.dataset_dir)
        except BestConfigurationError as exc:
            print(f"nnwatch: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if best is None:
            print(f"nnwatch: no find_best_configuration result in {args.dataset_dir} yet", file=sys.stderr)
            return EXIT_FAILED
        if args.json:
            print_json(best.to_dict())
        else:
            print_best(best)
        return EXIT_OK
    if not args.configurations or not args.trainers:
        print("nnwatch: error: find-best needs -c CONFIGURATION... and -tr TRAINER... (or --show)", file=sys.stderr)
        return EXIT_USAGE
    try:
        plan = plan_find_best(args.dataset_dir, configurations=args.configurations, trainers=args.trainers,
                              plans=args.plans, folds=args.folds, disable_ensembling=args.disable_ensembling,
                              backend=args.backend, slurm=_slurm(args))
    except ValueError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, plan)


def _common(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    add_job_options(parser, device=device)
    parser.add_argument("--dry-run", action="store_true", help="print the exact command and every check; "
                        "change nothing")
    parser.add_argument("--json", action="store_true", help="print the plan (with --dry-run) or the job as JSON")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``train-fold``, ``validate`` and ``find-best``."""
    train = subparsers.add_parser("train-fold", help="train a missing fold of a configuration (with --npz)")
    train.add_argument("config_dir", help="the configuration folder <Dataset>/<Trainer>__<Plans>__<configuration>")
    train.add_argument("--fold", required=True, help="the fold to train (0-4, or as splits_final.json defines)")
    _common(train)
    train.set_defaults(handler=cmd_train_fold)

    validate = subparsers.add_parser("validate", help="re-run a finished fold's validation with --npz")
    validate.add_argument("run_dir", help="the run's fold folder")
    validate.add_argument("--val-best", action="store_true",
                          help="validate with checkpoint_best.pth (only on runs with checkpoint_final.pth)")
    _common(validate)
    validate.set_defaults(handler=cmd_validate)

    best = subparsers.add_parser("find-best", help="run nnUNetv2_find_best_configuration, or --show its result")
    best.add_argument("dataset_dir", help="the dataset's results folder <nnUNet_results>/<Dataset>")
    best.add_argument("-c", "--configurations", nargs="+", default=None, metavar="CONFIGURATION",
                      help="configurations to compare (default: every one with trained folds)")
    best.add_argument("-tr", "--trainers", nargs="+", default=None, metavar="TRAINER",
                      help="trainers to compare (default: every one with trained folds)")
    best.add_argument("-p", "--plans", nargs="+", default=["nnUNetPlans"], metavar="PLANS",
                      help="plans identifiers (default: nnUNetPlans)")
    best.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"], metavar="FOLD",
                      help="folds that must be trained and validated with --npz (default: 0 1 2 3 4)")
    best.add_argument("--disable-ensembling", action="store_true",
                      help="compare single configurations only, no ensembles (nnU-Net's --disable_ensembling)")
    best.add_argument("--show", action="store_true", help="print the result nnU-Net wrote; start nothing")
    _common(best, device=False)
    best.set_defaults(handler=cmd_find_best)
