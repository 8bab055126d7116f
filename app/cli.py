"""The ``nnwatch`` command line: the same monitor/ and trainer/ calls the dashboard makes, as text or JSON.

Each subcommand lives in a small function; heavy modules (pandas, torch, streamlit) are imported inside
the command that needs them so ``nnwatch scan`` starts fast. Exit codes: 0 success, 1 a run-level
failure the user must look at, 2 bad usage or a missing root/run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user asked for (missing root, unknown run): exit code 2."""


def _default_root() -> str | None:
    return os.environ.get("nnUNet_results") or None


def _require_root(root: str | None) -> Path:
    chosen = root or _default_root()
    if not chosen:
        raise UsageError("no results root given and $nnUNet_results is not set")
    path = Path(chosen)
    if not path.is_dir():
        raise UsageError(f"results root not found or not a folder: {chosen}")
    return path


def _require_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    return path


def json_default(value: Any) -> Any:
    """JSON for numpy/pandas scalars and timestamps; NaN becomes null (JSON has no NaN)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def clean_for_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_for_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return clean_for_json(value.item())
        except (ValueError, AttributeError):
            return value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(clean_for_json(value), default=json_default, indent=2))
    sys.stdout.write("\n")


def records(frame: Any) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts with None for missing values."""
    import pandas as pd

    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.isoformat()
            clean[key] = value
        out.append(clean)
    return out


# -- table text ---------------------------------------------------------------------------------
_TABLE_COLUMNS = (
    ("run_id", "run"), ("status", "status"), ("epochs_completed", "epochs"), ("planned_epochs", "of"),
    ("last_ema_fg_dice", "ema"), ("best_ema_fg_dice", "best"), ("final_validation_dice", "val dice"),
    ("verdict", "verdict"), ("problems", "problems"),
)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return str(len(value)) if value else ""
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = [(key, title) for key, title in _TABLE_COLUMNS if any(key in row for row in rows)] or list(
        _TABLE_COLUMNS[:1])
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max([len(title)] + [len(r[i]) for r in cells]) for i, (_, title) in enumerate(columns)]
    lines = ["  ".join(title.ljust(w) for (_, title), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


# -- commands -----------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    root = _require_root(args.root)
    if args.format == "csv":
        from monitor import scan

        table = scan(root, workers=args.workers, verdicts=args.verdicts)
        for column in ("class_names", "problems"):
            table[column] = table[column].map(lambda v: "; ".join(map(str, v)) if isinstance(v, list) else v)
        table.to_csv(sys.stdout, index=False)
        return EXIT_OK
    # JSON and the table need no DataFrame: printing the rows spares a cold scan the pandas import.
    from monitor.scan import scan_rows

    rows, problems = scan_rows(root, workers=args.workers, verdicts=args.verdicts)
    if args.format == "json":
        print_json(rows)
    else:
        print(format_table(rows) if rows else f"no runs under {root}")
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_curves(args: argparse.Namespace) -> int:
    from monitor import load_run

    reader = load_run(_require_run_dir(args.run_dir))
    frame = reader.frame()
    if args.format == "parquet":
        target = args.output or "-"
        if target == "-":
            if sys.stdout.isatty():
                raise UsageError("parquet is binary: give -o FILE or redirect stdout")
            frame.to_parquet(sys.stdout.buffer, index=False)
        else:
            frame.to_parquet(target, index=False)
        return EXIT_OK
    if args.format == "json":
        text = json.dumps(clean_for_json(records(frame)), default=json_default, indent=1)
    else:
        text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    if args.output and args.output != "-":
        Path(args.output).write_text(text + ("\n" if not text.endswith("\n") else ""))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    for problem in reader.problems():
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------------
CommandAdder = Callable[[argparse._SubParsersAction], None]  # type: ignore[type-arg]
_EXTENSIONS: list[str] = ["app.cli_analyze", "app.cli_watch", "app.cli_jobs", "app.cli_report", "app.cli_serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnwatch",
        description="Watch nnU-Net training runs, judge whether Dice is still improving, extend them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="one row per run under a results root")
    scan.add_argument("root", nargs="?", help="results root (default: $nnUNet_results)")
    scan.add_argument("--format", choices=("table", "json", "csv"), default="table")
    scan.add_argument("--workers", type=int, default=None, help="parallel parser processes (default: CPUs)")
    scan.add_argument("--no-verdicts", dest="verdicts", action="store_false",
                      help="skip the analyzer's verdict column (faster on huge trees)")
    scan.set_defaults(handler=cmd_scan)

    curves = sub.add_parser("curves", help="the per-epoch curves of one run")
    curves.add_argument("run_dir", help="a fold folder, e.g. .../Dataset004_X/nnUNetTrainer__nnUNetPlans__2d/fold_0")
    curves.add_argument("--format", choices=("csv", "json", "parquet"), default="csv")
    curves.add_argument("-o", "--output", help="write to this file instead of stdout")
    curves.set_defaults(handler=cmd_curves)

    import importlib

    for module_name in _EXTENSIONS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or EXIT_OK)
    except UsageError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    # Run through the importable module, not ``__main__``: subcommand modules import ``app.cli`` and must
    # see the same ``UsageError`` class that ``main`` catches.
    from app import cli as _cli

    raise SystemExit(_cli.main())
