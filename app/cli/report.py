"""``nnwatch report``: PNG reports of a run, a dataset's folds, a parent/extended pair, or a whole tree.

A thin layer over :mod:`monitor.report.render` (the same renderer the dashboard's Download PNG buttons call):
it checks which form was asked for, maps a :class:`~monitor.report.render.ReportError` to exit code 2 and
prints a plain-text progress bar on stderr for ``--all``.

    nnwatch report RUN_DIR -o out.png
    nnwatch report ROOT --dataset Dataset004_Hippocampus --configuration 3d_fullres [--trainer T] -o out.png
    nnwatch report RUN_DIR --compare RUN_DIR2 [--x both|epochs|fraction] -o out.png
    nnwatch report ROOT --all -o DIR/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from app.cli.common import EXIT_FAILED, EXIT_OK, UsageError, positive_int, require_root

__all__ = ["ProgressBar", "add_parsers", "cmd_report"]


class ProgressBar:
    """``[#####.....]  37/120  name`` redrawn in place on a terminal; on a pipe, a line every 10 %."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = int(self.width * done / max(total, 1))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done:>{len(str(total))}}/{total}"
        if self.tty:
            tail = label[-50:]
            self.stream.write(f"\r{line}  {tail:<50}")
            if done == total:
                self.stream.write(f"\r{line}  done in {time.monotonic() - self.started:.1f} s{' ' * 40}\n")
        else:
            decile = 10 * done // max(total, 1)
            if decile != self._last_decile or done == total:
                self._last_decile = decile
                self.stream.write(f"{line}  {label}\n")
        self.stream.flush()


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"width": args.width, "height": args.height, "scale": args.scale, "dpi": args.dpi,
            "smooth": args.smooth, "theme": args.theme}


def _check_form(args: argparse.Namespace) -> str:
    """Which of the four forms was asked for; a UsageError for mixed or incomplete ones."""
    if args.all and (args.dataset or args.compare):
        raise UsageError("--all writes every report; it cannot be combined with --dataset or --compare")
    if args.dataset and args.compare:
        raise UsageError("--dataset and --compare are different reports; ask for one")
    if bool(args.dataset) != bool(args.configuration):
        raise UsageError("a dataset report needs both --dataset and --configuration")
    if args.trainer and not args.dataset:
        raise UsageError("--trainer selects the folds of a dataset report; use it with --dataset")
    if args.x != "both" and not args.compare:
        raise UsageError("--x applies to --compare reports only")
    if args.all:
        return "all"
    if args.dataset:
        return "dataset"
    if not args.target:
        raise UsageError("give a run folder (or a results root with --dataset/--all)")
    return "compare" if args.compare else "run"


def _write_png(png: bytes, output: str | None, default_name: str) -> None:
    if output == "-":
        if sys.stdout.isatty():
            raise UsageError("a PNG is binary: give -o FILE or redirect stdout")
        sys.stdout.buffer.write(png)
        return
    target = Path(output or default_name)
    if target.is_dir():
        target = target / default_name
    if not target.parent.is_dir():
        raise UsageError(f"output folder not found: {target.parent}")
    target.write_bytes(png)
    print(target)


def cmd_report(args: argparse.Namespace) -> int:
    from monitor import locate_run
    from monitor.report.batch import run_file_name, safe_name
    from monitor.report.render import (
        ReportError,
        render_compare_report,
        render_dataset_report,
        render_run_report,
        write_all_reports,
    )

    form = _check_form(args)
    options = _options(args)
    try:
        if form == "all":
            root = require_root(args.target)
            result = write_all_reports(root, args.output or "nnwatch-reports", progress=ProgressBar(sys.stderr),
                                       workers=args.workers, **options)
            for label, why in result.skipped:
                print(f"nnwatch: skipped {label}: {why}", file=sys.stderr)
            for label, why in result.failed:
                print(f"nnwatch: failed {label}: {why}", file=sys.stderr)
            print(f"{len(result.written)} report(s) written to {args.output or 'nnwatch-reports'}"
                  + (f", {len(result.skipped)} skipped" if result.skipped else "")
                  + (f", {len(result.failed)} failed" if result.failed else ""))
            return EXIT_FAILED if result.failed else EXIT_OK
        if form == "dataset":
            root = require_root(args.target)
            png = render_dataset_report(root, args.dataset, args.configuration, args.trainer, **options)
            parts = ["dataset", args.dataset, args.configuration, *([args.trainer] if args.trainer else [])]
            default = safe_name(parts) + ".png"
        elif form == "compare":
            png = render_compare_report(args.target, args.compare, x=args.x, **options)
            default = "compare--" + run_file_name(locate_run(args.target))
        else:
            png = render_run_report(args.target, **options)
            default = run_file_name(locate_run(args.target))
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # an impossible option (size, scale, theme)
        raise UsageError(str(exc)) from None
    _write_png(png, args.output, default)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``nnwatch report``."""
    report = sub.add_parser(
        "report", help="PNG report of a run, a dataset's folds, a parent/extended pair, or every run",
        description="Render PNG reports for slides and papers (matplotlib; the dashboard's Download PNG "
                    "uses the same renderer).")
    report.add_argument("target", nargs="?",
                        help="a run folder; with --dataset or --all a results root (default: $nnUNet_results)")
    report.add_argument("-o", "--output", help="PNG file (or '-' for stdout); with --all a folder "
                                               "(default: nnwatch-reports)")
    form = report.add_argument_group("what to report")
    form.add_argument("--dataset", help="all folds of this dataset (needs --configuration)")
    form.add_argument("--configuration", help="the configuration of --dataset to draw, e.g. 3d_fullres")
    form.add_argument("--trainer", help="trainer (or Trainer__Plans) when a dataset has several")
    form.add_argument("--compare", metavar="RUN_DIR2", help="a second run (e.g. the extended run) to overlay")
    form.add_argument("--x", choices=("both", "epochs", "fraction"), default="both",
                      help="compare by epoch, by fraction of each schedule, or both side by side (default)")
    form.add_argument("--all", action="store_true", help="one PNG per run and per dataset/configuration")
    form.add_argument("--workers", type=positive_int, default=None,
                      help="--all: parallel processes (default: CPUs)")
    look = report.add_argument_group("size and look")
    look.add_argument("--width", type=positive_int, default=1600, help="pixels (default 1600)")
    look.add_argument("--height", type=positive_int, default=1000, help="pixels (default 1000)")
    res = look.add_mutually_exclusive_group()
    res.add_argument("--scale", type=float, default=None,
                     help="resolution multiplier, same layout (2 → 3200×2000 for the default size)")
    res.add_argument("--dpi", type=float, default=None, help="resolution as print dpi (100 = scale 1, 300 = scale 3)")
    look.add_argument("--smooth", type=int, default=None,
                      help="smoothing window in epochs for raw curves, raw kept faint "
                           "(default: ~2%% of the run; 0: off)")
    look.add_argument("--theme", choices=("light", "dark"), default="light", help="light (default) projects best")
    report.set_defaults(handler=cmd_report)
