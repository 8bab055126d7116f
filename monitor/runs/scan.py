"""Many runs: discover every fold folder under a results root and build the run table.

A cold scan of a lab's tree (hundreds of 1000-epoch logs) is CPU-bound parsing, so runs are split
across worker processes; each worker returns only summary rows, never frames.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.runs.layout import RunLocation, discover_runs
from monitor.runs.reader import SUMMARY_COLUMNS, RunReader

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultsRootError", "scan", "scan_columns", "scan_rows", "summarize_runs"]

# Below this many runs the cost of starting workers (~50 ms) outweighs parallel parsing.
_PARALLEL_THRESHOLD = 24


class ResultsRootError(FileNotFoundError):
    """The results root does not exist or is not a folder."""


def with_verdict(row: dict[str, Any], reader: RunReader) -> dict[str, Any]:
    """Add the analyzer's verdict and reason to a summary row (computed where the curves already are)."""
    from monitor.analyze.verdict import analyze_run

    result = analyze_run(reader, status=row["status"])
    row["verdict"] = result.verdict.value
    row["verdict_reason"] = result.reason
    return row


def _summarize_chunk(locations: Sequence[RunLocation], verdicts: bool = False) -> list[dict[str, Any]]:
    rows = []
    for location in locations:
        reader = RunReader(location, checkpoints="when_needed")
        try:
            reader.refresh()
        except FileNotFoundError:
            continue  # deleted while we scanned
        row = reader.summary()
        rows.append(with_verdict(row, reader) if verdicts else row)
    return rows


def summarize_runs(locations: Sequence[RunLocation], *, workers: int | None = None, verdicts: bool = False,
                   while_waiting: Callable[[], object] | None = None) -> list[dict[str, Any]]:
    """Summary rows for the given runs, in the given order, parsed in parallel where it pays.

    ``while_waiting`` runs in this process while the workers parse (the CLI imports pandas there).
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(workers, 8)
    if workers <= 1 or len(locations) < _PARALLEL_THRESHOLD or not hasattr(os, "fork"):
        rows = _summarize_chunk(locations, verdicts)
        if while_waiting is not None:
            while_waiting()
        return rows
    # Interleaved chunks balance long and short logs; a few chunks per worker smooth stragglers.
    n_chunks = workers * 4
    chunks = [(list(locations[i::n_chunks]), verdicts) for i in range(n_chunks)]
    import multiprocessing

    # A Pool forks all its workers at construction, before any helper thread exists in this process.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending = pool.starmap_async(_summarize_chunk, chunks)
        if while_waiting is not None:
            while_waiting()
        by_id = {row["run_id"]: row for rows in pending.get() for row in rows}
    return [by_id[loc.run_id] for loc in locations if loc.run_id in by_id]


def scan_rows(root: str | os.PathLike[str], *, workers: int | None = None, verdicts: bool = False,
              while_waiting: Callable[[], object] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The run table as plain rows (every key of :func:`scan_columns`, sorted by ``run_id``), and the
    problems found while walking (unreadable folders).

    What the CLI prints; it needs no pandas, whose import alone costs a cold scan ~0.3 s of CPU.
    A missing root raises :class:`ResultsRootError`.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise ResultsRootError(f"results root not found or not a folder: {root}")
    problems: list[str] = []
    locations = discover_runs(root_path, problems)
    rows = summarize_runs(locations, workers=workers, verdicts=verdicts, while_waiting=while_waiting)
    columns = scan_columns(verdicts)
    return [{column: row.get(column) for column in columns} for row in rows], problems


def scan_columns(verdicts: bool) -> list[str]:
    """Columns of the run table, in order."""
    return list(SUMMARY_COLUMNS) + (["verdict", "verdict_reason"] if verdicts else [])


def scan(root: str | os.PathLike[str], *, workers: int | None = None, verdicts: bool = False) -> pd.DataFrame:
    """The run table of a results root as a DataFrame: one row per run, sorted by ``run_id`` (columns in
    the README; counts are nullable ``Int64``).

    An empty tree gives an empty table with the same columns; a missing root raises
    :class:`ResultsRootError`. ``verdicts`` adds the analyzer's ``verdict`` and ``verdict_reason``.
    Problems found while walking (unreadable folders) are in ``frame.attrs["problems"]``.
    """
    # pandas takes ~0.3 s to import: do it while the parser processes work (they never need it).
    rows, problems = scan_rows(root, workers=workers, verdicts=verdicts,
                               while_waiting=lambda: importlib.import_module("pandas"))
    import pandas as pd

    frame = pd.DataFrame(rows, columns=scan_columns(verdicts))
    for column in ("epochs_completed", "last_epoch", "planned_epochs", "best_ema_epoch", "n_classes", "log_files"):
        frame[column] = frame[column].astype("Int64")
    frame.attrs["problems"] = problems
    return frame
