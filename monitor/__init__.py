"""nnwatch's monitor: read nnU-Net results trees (v2 and v1) into pandas, incrementally.

Sub-packages, from the bottom up: ``logs`` (one log file), ``checkpoints`` (curves inside a checkpoint, read
safely), ``runs`` (where runs are, their metadata, one merged series and summary per run), ``analyze`` (is Dice still
improving?), ``workers`` (many runs read in worker processes), ``run_table`` (every run of a tree with its
verdict, in parallel), ``index`` (the persistent run index that lets restarts and scans skip unchanged runs),
``watch`` (a live results root), ``validation`` (real validation Dice, cross-validation tables, runs compared case
by case), ``stops`` (why a run stopped), ``report`` (PNG reports), and ``synth`` (synthetic nnU-Net runs for the
demo, the tests and the benchmarks).
"""

from typing import Any

from monitor.run_table import ResultsRootError, scan, summarize_runs
from monitor.runs import (
    CURVE_COLUMNS,
    SUMMARY_COLUMNS,
    RunLocation,
    RunReader,
    discover_runs,
    load_run,
    locate_run,
)

__all__ = [
    "CURVE_COLUMNS",
    "SUMMARY_COLUMNS",
    "ResultsRootError",
    "ResultsWatcher",
    "RunLocation",
    "RunReader",
    "analyze_run",
    "discover_runs",
    "load_run",
    "locate_run",
    "scan",
    "summarize_runs",
]

_LAZY = {"ResultsWatcher": "monitor.watch", "analyze_run": "monitor.analyze"}


def __getattr__(name: str) -> Any:
    """Import the watcher (watchdog) and the analyzer only when asked: ``nnwatch scan`` starts faster."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
