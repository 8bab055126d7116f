"""The run table of a results tree: every fold folder found, summarized, and given the analyzer's verdict.

It sits above ``runs`` and ``analyze`` and joins them. Parsing is CPU-bound, so large trees are split across forked
workers (:mod:`monitor.workers`) that return only summaries.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.runs.layout import RunLocation, discover_runs
from monitor.runs.reader import CHECKPOINT_SETTLE_S, RunReader
from monitor.runs.summary import SUMMARY_COLUMNS, RunSummary
from monitor.stops import with_stop_cause
from monitor.workers import chunked, map_chunks, parallel_method, worker_count

if TYPE_CHECKING:
    import pandas as pd

    from monitor.analyze import VerdictRow

__all__ = ["ResultsRootError", "ScannedRun", "rows_frame", "scan", "scan_columns", "scan_rows", "summarize_runs"]

class ResultsRootError(FileNotFoundError):
    """The results root does not exist or is not a folder."""


@dataclass(frozen=True)
class ScannedRun:
    """One run of a scan: its summary and, when asked for, the analyzer's verdict and reason."""

    summary: RunSummary
    verdict: VerdictRow | None = None

    def row(self) -> dict[str, Any]:
        """The run table's row: the summary's columns, then the verdict's where the run was judged."""
        row = self.summary.row()
        if self.verdict is not None:
            row.update(self.verdict.columns())
        return row


def _summarize_chunk(locations: Sequence[RunLocation], verdicts: bool = False) -> list[ScannedRun]:
    if verdicts:
        from monitor.analyze import analyze_run, verdict_row
    runs = []
    for location in locations:
        reader = RunReader(location, checkpoint_settle_s=CHECKPOINT_SETTLE_S)  # as the dashboard reads it
        try:
            reader.refresh()
        except FileNotFoundError:
            continue  # deleted while we scanned
        summary = with_stop_cause(reader.summary(), location, reader.curves())
        if verdicts:  # computed here, where the curves already are
            result = analyze_run(reader, status=summary.status)
            runs.append(ScannedRun(summary, verdict_row(result, summary.status.value)))
        else:
            runs.append(ScannedRun(summary))
    return runs


def summarize_runs(locations: Sequence[RunLocation], *, workers: int | None = None, verdicts: bool = False,
                   while_waiting: Callable[[], object] | None = None, start_method: str = "fork") -> list[ScannedRun]:
    """The given runs summarized, in order, in worker processes where it pays; ``while_waiting`` runs meanwhile.
    Forked workers suit a single-threaded command line; a multi-threaded caller passes ``forkserver``."""
    n_workers = worker_count(workers)
    method = parallel_method(len(locations), n_workers, start_method)
    chunks = chunked(locations, n_workers if method is not None else 1)
    results = map_chunks(_summarize_chunk, chunks, workers=n_workers, start_method=method, args=(verdicts,))
    if while_waiting is not None:
        while_waiting()
    by_id = {run.summary.run_id: run for _, runs in results for run in runs}
    return [by_id[loc.run_id] for loc in locations if loc.run_id in by_id]


def scan_rows(root: str | os.PathLike[str], *, workers: int | None = None, verdicts: bool = False,
              while_waiting: Callable[[], object] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The run table as plain rows sorted by ``run_id``, and the problems found while walking; no pandas,
    whose import would dominate the CLI's scan of a small tree."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise ResultsRootError(f"results root not found or not a folder: {root}")
    problems: list[str] = []
    locations = discover_runs(root_path, problems)
    runs = summarize_runs(locations, workers=workers, verdicts=verdicts, while_waiting=while_waiting)
    return [run.row() for run in runs], problems


def scan_columns(verdicts: bool) -> list[str]:
    """Columns of the run table, in order."""
    return list(SUMMARY_COLUMNS) + (["verdict", "verdict_reason", "verdict_label", "verdict_final"] if verdicts else [])


def scan(root: str | os.PathLike[str], *, workers: int | None = None, verdicts: bool = False) -> pd.DataFrame:
    """The run table as a DataFrame, one row per run sorted by ``run_id``; counts are nullable ``Int64``.

    A missing root raises :class:`ResultsRootError`. ``verdicts`` adds the analyzer's ``verdict`` and
    ``verdict_reason``; problems found while walking are in ``frame.attrs["problems"]``.
    """
    # pandas is slow to import: do it while the parser processes work (they never need it).
    rows, problems = scan_rows(root, workers=workers, verdicts=verdicts,
                               while_waiting=lambda: importlib.import_module("pandas"))
    return rows_frame(rows, problems, verdicts)


def rows_frame(rows: list[dict[str, Any]], problems: list[str], verdicts: bool) -> pd.DataFrame:
    """The run table's rows as :func:`scan` returns them (nullable ``Int64`` counts, problems in ``attrs``)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=scan_columns(verdicts))
    for column in ("epochs_completed", "last_epoch", "planned_epochs", "best_ema_epoch", "n_classes", "log_files"):
        frame[column] = frame[column].astype("Int64")
    frame.attrs["problems"] = problems
    return frame
