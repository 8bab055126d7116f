"""``nnwatch compare RUN_A RUN_B``: was the second run worth it? Real validation Dice compared case by case.

    nnwatch compare PARENT_RUN_DIR EXTENDED_RUN_DIR [--json]
    nnwatch compare --folds FIRST_MODEL_DIR SECOND_MODEL_DIR [--json]

The mean difference (second minus first) of the per-case foreground Dice on the validation cases both runs scored,
with a paired bootstrap 95 % interval, the cases better and worse, the same per class, and a verdict
(:mod:`monitor.validation.compare`). ``--folds`` takes two configuration folders and pools every fold they share.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, UsageError, positive_int, print_json

__all__ = ["add_parsers", "cmd_compare"]


def _fmt(value: float) -> str:
    from monitor.analyze import signed

    return "-" if value is None or not math.isfinite(value) else signed(value, 4)


def _line(name: str, result: Any) -> str:
    ci = result.ci95
    interval = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci is not None else "[-, -]"
    return (f"  {name:<18} {_fmt(result.mean_difference):>8}  {interval:<20} better {result.better:>3}  "
            f"worse {result.worse:>3}  {result.cases:>4} cases  {result.verdict.value}")


def _text(comparison: Any) -> str:
    lines = [f"first:   {comparison.first} ({comparison.first_label})",
             f"second:  {comparison.second} ({comparison.second_label})", "", comparison.reason, ""]
    if comparison.result.cases:
        lines.append(f"  {'':<18} {'second-first':>8}  {'95 % CI':<20}")
        lines.append(_line("foreground mean", comparison.result))
        lines += [_line(c.name, c.result) for c in comparison.per_class]
        if len(comparison.per_fold) > 1:
            lines.append("")
            lines += [_line(f"fold {f.fold}", f.result) for f in comparison.per_fold]
        lines.append("")
        lines.append(f"paired bootstrap: {comparison.result.resamples} resamples of the cases, seed "
                     f"{comparison.result.seed}")
    return "\n".join(lines)


def _is_fold(path: Path) -> bool:
    from monitor.runs.layout import FOLD_DIR_RE

    return FOLD_DIR_RE.match(path.absolute().name) is not None


def cmd_compare(args: argparse.Namespace) -> int:
    from monitor.validation import compare_model_folders, compare_runs

    first, second = Path(args.first), Path(args.second)
    for path in (first, second):
        if not path.is_dir():
            raise UsageError(f"folder not found: {path}")
    folds = [_is_fold(first), _is_fold(second)]
    if args.folds and any(folds):
        raise UsageError("--folds compares two configuration folders (<Trainer>__<Plans>__<configuration>), "
                         "not fold_N folders")
    if not args.folds and not all(folds):
        raise UsageError("give two fold_N run folders, or two configuration folders with --folds")
    compare = compare_model_folders if args.folds else compare_runs
    try:
        comparison = compare(first, second, resamples=args.resamples, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json(comparison.to_dict())
    else:
        print(_text(comparison))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``nnwatch compare``."""
    from monitor.validation import DEFAULT_RESAMPLES, DEFAULT_SEED

    parser = sub.add_parser(
        "compare", help="two runs' real validation Dice compared case by case (paired bootstrap)",
        description="Compare the real validation (nnU-Net's validation/summary.json) of two runs of one dataset "
                    "case by case: second minus first, with a paired bootstrap 95% interval and a verdict.")
    parser.add_argument("first", help="the first run folder (e.g. the parent), or a configuration folder with --folds")
    parser.add_argument("second", help="the second run folder (e.g. the extended run)")
    parser.add_argument("--folds", action="store_true",
                        help="FIRST and SECOND are configuration folders: compare over every fold both contain")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"bootstrap seed (default {DEFAULT_SEED})")
    parser.set_defaults(handler=cmd_compare)
