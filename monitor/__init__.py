"""nnwatch's monitor: read nnU-Net results trees (v2 and v1) into pandas, incrementally.

Layers, one module each: ``layout`` (where runs are), ``logparse`` (one log file), ``checkpoint`` (curves
inside a checkpoint, read safely), ``metadata`` (side JSON files), ``merge`` (sessions and checkpoints
into one series), ``run`` (one run, incrementally), ``scan`` (many runs).
"""

from monitor.layout import RunLocation, discover_runs, locate_run
from monitor.run import CURVE_COLUMNS, SUMMARY_COLUMNS, RunReader, load_run
from monitor.scan import ResultsRootError, scan, summarize_runs

__all__ = [
    "CURVE_COLUMNS",
    "SUMMARY_COLUMNS",
    "ResultsRootError",
    "RunLocation",
    "RunReader",
    "discover_runs",
    "load_run",
    "locate_run",
    "scan",
    "summarize_runs",
]
