"""nnwatch's monitor: read nnU-Net results trees (v2 and v1) into pandas, incrementally.

Layers, one module each: ``layout`` (where runs are), ``logparse`` (one log file), ``checkpoint`` (curves
inside a checkpoint, read safely), ``metadata`` (side JSON files), ``merge`` (sessions and checkpoints
into one series), ``run`` (one run, incrementally), ``scan`` (many runs), ``status`` (running, stalled,
crashed, finished), ``watch`` (a live results root), ``analyze``/``verdict`` (is Dice still improving?),
``report*`` (PNG reports).
"""

from typing import Any

from monitor.layout import RunLocation, discover_runs, locate_run
from monitor.run import CURVE_COLUMNS, SUMMARY_COLUMNS, RunReader, load_run
from monitor.scan import ResultsRootError, scan, summarize_runs

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

_LAZY = {"ResultsWatcher": "monitor.watch", "analyze_run": "monitor.verdict"}


def __getattr__(name: str) -> Any:
    """Import the watcher (watchdog) and the analyzer only when asked: ``nnwatch scan`` starts faster."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
