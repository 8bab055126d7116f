"""``nnwatch analyze RUN_DIR|ROOT``: the verdict on whether validation Dice is still improving.

Every threshold of :class:`monitor.analyze.analyzer.AnalyzerOptions` is a command-line option with the same
default, generated from the dataclass so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, UsageError, print_json, require_root

__all__ = ["add_parsers"]


def _option_fields() -> list[dataclasses.Field[Any]]:
    from monitor.analyze import AnalyzerOptions

    return [f for f in dataclasses.fields(AnalyzerOptions) if f.name != "correct_autocorrelation"]


def _options(args: argparse.Namespace) -> Any:
    from monitor.analyze import AnalyzerOptions

    values: dict[str, Any] = {}
    for field in _option_fields():
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = tuple(value) if isinstance(field.default, tuple) else value
    return AnalyzerOptions(**values)


def _is_run_dir(path: Path) -> bool:
    from monitor.runs.layout import FOLD_DIR_RE

    return FOLD_DIR_RE.match(path.name) is not None


def _line(run_id: str, result: dict[str, Any]) -> str:
    slope = result["slope_per_100_epochs"]
    shown = "-" if slope is None else f"{slope:+.4f}/100ep"
    text = f"{result['verdict']:<17} {shown:>15}  {run_id}\n    {result['reason']}"
    if result.get("stop_cause"):
        from monitor.stops import StopCause

        text += "\n    " + StopCause(result["stop_cause"]).stopped(result.get("stop_evidence") or "")
    return text


def _result(reader: Any, options: Any) -> dict[str, Any]:
    """The analyzer's answer plus, for a run that stopped early, why (``stop_cause``, ``stop_evidence``)."""
    from monitor.analyze import analyze_run
    from monitor.stops import with_stop_cause

    summary = with_stop_cause(reader.summary(), reader.location, reader.curves())
    return {**analyze_run(reader, options, status=summary.status).to_dict(), "stop_cause": summary.stop_cause,
            "stop_evidence": summary.stop_evidence}


def cmd_analyze(args: argparse.Namespace) -> int:
    from monitor import discover_runs, load_run

    options = _options(args)
    target = Path(args.path) if args.path else require_root(None)
    if not target.is_dir():
        raise UsageError(f"not a run folder or results root: {target}")
    if args.parent and not (_is_run_dir(target) and Path(args.parent).is_dir()):
        raise UsageError(f"--parent needs two fold folders: {target} and {args.parent}")
    if _is_run_dir(target):
        reader = load_run(target)
        result = _result(reader, options)
        if args.parent:
            from monitor.analyze import compare_runs

            comparison = compare_runs(Path(args.parent), reader)
            result["comparison_with_parent"] = comparison.to_dict()
        if args.json:
            print_json(result)
        else:
            print(_line(reader.location.run_id, result))
            if args.parent:
                print(f"    vs parent: {comparison.question} {comparison.statement}")
        return EXIT_OK
    results = []
    for location in discover_runs(target):
        try:
            reader = load_run(location.path, target)
        except FileNotFoundError:
            continue
        results.append({"run_id": location.run_id, **_result(reader, options)})
    if args.json:
        print_json(results)
    elif not results:
        print(f"no runs under {target}", file=sys.stderr)
    else:
        print("\n".join(_line(r["run_id"], r) for r in results))
    return EXIT_OK


_HELP = {
    "series": "per-epoch column the trend is measured on",
    "window_epochs": "how many final epochs the slope is measured over",
    "min_epochs": "fewer completed epochs than this give no verdict",
    "min_points": "fewer logged epochs in the window than this give no verdict",
    "max_missing_fraction": "a window with a larger share of missing epochs gives no verdict",
    "min_practical_gain": "the smallest slope (Dice per 100 epochs) worth calling improving or declining",
    "confidence": "two-sided confidence level of the slope's interval",
    "anneal_lr_fraction": "learning rate, as a fraction of the initial one, below which annealing begins",
    "poly_exponent": "exponent of nnU-Net's poly learning-rate schedule, to infer a missing schedule length",
    "schedule_options": "from-scratch schedule lengths to project and cost",
    "min_rerun_gain": "projected Dice gain a longer re-run must promise to be worth it",
    "max_extrapolation_ratio": "how far beyond the measured stretch a projection may reach",
}


def _help(name: str, default: object) -> str:
    """A sentence per threshold, with its default; ``%`` escaped for argparse."""
    text = _HELP.get(name, f"the analyzer's {name.replace('_', ' ')} (docs/analyzer.md)")
    return f"{text} (default: {default})".replace("%", "%%")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "analyze", help="is validation Dice still improving, flat or falling at the end of the schedule?",
        description="Verdict per run: improving / plateau / declining / insufficient_data, with the slope, its "
                    "95% interval, the projected gain and GPU-hours of a from-scratch 2000-epoch run.")
    parser.add_argument("path", nargs="?", help="a fold folder, or a results root (default: $nnUNet_results)")
    parser.add_argument("--json", action="store_true", help="one JSON object (a list for a root)")
    parser.add_argument("--parent", metavar="PARENT_RUN_DIR",
                        help="treat RUN_DIR as an extended run of this parent and state how it stands against it by "
                             "the one comparison rule (end-of-schedule EMA pseudo Dice); adds comparison_with_parent "
                             "to the JSON")
    thresholds = parser.add_argument_group("thresholds (defaults in docs/analyzer.md)")
    for field in _option_fields():
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            thresholds.add_argument(flag, type=int, nargs="+", default=None,
                                    help=_help(field.name, " ".join(map(str, field.default))))
        elif isinstance(field.default, bool):
            continue
        else:
            thresholds.add_argument(flag, type=type(field.default), default=None, help=_help(field.name, field.default))
    parser.set_defaults(handler=cmd_analyze)
