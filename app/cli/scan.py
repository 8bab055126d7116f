"""``nnwatch scan`` (one row per run) and ``nnwatch curves`` (one run's per-epoch curves)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.cli.common import (
    EXIT_OK,
    UsageError,
    clean_for_json,
    json_default,
    print_json,
    records,
    require_run_dir,
)
from app.cli.index import StderrProgress, require_roots
from app.served import root_labels
from monitor.numbers import csv_text

__all__ = ["add_parsers", "format_table"]


# -- table text ---------------------------------------------------------------------------------
_TABLE_COLUMNS = (
    ("root", "root"), ("run_id", "run"), ("status", "status"), ("epochs_completed", "epochs"), ("planned_epochs", "of"),
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




def _scan_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Through the run index when one exists (unchanged runs are not read again), else straight from the files;
    the rows are the same either way. With several roots each row starts with its ``root``, as one run id can be
    in two of them."""
    roots = require_roots(args.root, args.roots)
    from monitor.index import default_index_path

    index = None
    if args.use_index and default_index_path().exists():
        from monitor.index import RunIndex

        index = RunIndex(warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        for root in roots:
            if index is not None:
                from monitor.index import indexed_scan_rows

                what = "reading runs" + (f" under {root}" if len(roots) > 1 else "")
                more, found = indexed_scan_rows([root], index, workers=args.workers, verdicts=args.verdicts,
                                                progress=StderrProgress(what))
            else:
                from monitor.run_table import scan_rows

                more, found = scan_rows(root, workers=args.workers, verdicts=args.verdicts)
            rows += [{"root": str(root), **row} for row in more] if len(roots) > 1 else more
            problems += found
    finally:
        if index is not None:
            index.close()
    return rows, problems


# -- commands -----------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    rows, problems = _scan_rows(args)
    if args.format == "csv":
        from monitor.run_table import rows_frame

        table = rows_frame(rows, problems, args.verdicts)
        if rows and "root" in rows[0]:
            table.insert(0, "root", [row["root"] for row in rows])
        for column in ("class_names", "problems"):
            table[column] = table[column].map(lambda v: "; ".join(map(str, v)) if isinstance(v, list) else v)
        sys.stdout.write(csv_text(table))
        return EXIT_OK
    if args.format == "json":
        print_json(rows)
    else:
        roots = require_roots(args.root, args.roots)
        labels = dict(zip(map(str, roots), root_labels(roots)))  # a short name per root, as the dashboard's
        shown = [{**row, "root": labels[row["root"]]} if "root" in row else row for row in rows]
        print(format_table(shown) if rows else "no runs under " + ", ".join(map(str, roots)))
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_curves(args: argparse.Namespace) -> int:
    from monitor import load_run

    reader = load_run(require_run_dir(args.run_dir))
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
        text = csv_text(frame)
    if args.output and args.output != "-":
        Path(args.output).write_text(text + ("\n" if not text.endswith("\n") else ""))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    for problem in reader.problems():
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK




def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scan = sub.add_parser("scan", help="one row per run under a results root")
    scan.add_argument("root", nargs="?", help="results root (default: $nnUNet_results)")
    scan.add_argument("--root", dest="roots", action="append", metavar="ROOT",
                      help="another results root (repeatable: old v1 results on another disk)")
    scan.add_argument("--no-index", dest="use_index", action="store_false",
                      help="read every run from its files even where the run index has it")
    scan.add_argument("--format", choices=("table", "json", "csv"), default="table",
                      help="a text table for reading (default), or JSON / CSV for scripts")
    scan.add_argument("--workers", type=int, default=None, help="parallel parser processes (default: CPUs)")
    scan.add_argument("--no-verdicts", dest="verdicts", action="store_false",
                      help="skip the analyzer's verdict column (faster on huge trees)")
    scan.set_defaults(handler=cmd_scan)

    curves = sub.add_parser("curves", help="the per-epoch curves of one run")
    curves.add_argument("run_dir", help="a fold folder, e.g. .../Dataset004_X/nnUNetTrainer__nnUNetPlans__2d/fold_0")
    curves.add_argument("--format", choices=("csv", "json", "parquet"), default="csv",
                        help="CSV (default), JSON records, or Parquet (binary: give -o FILE or redirect stdout)")
    curves.add_argument("-o", "--output", help="write to this file instead of stdout")
    curves.set_defaults(handler=cmd_curves)
