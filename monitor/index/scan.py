"""The run table through the index: unchanged runs come from it without parsing, changed ones are read from
their saved offsets (in worker processes, :mod:`monitor.workers`), and what was read is saved back.

The rows are the ones :func:`monitor.run_table.scan_rows` gives for the same files; only the time they take
differs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from monitor.index.codec import encode_inputs, encode_state, encode_summary
from monitor.index.store import IndexRecord, RunIndex, StoredRuns
from monitor.run_table import ResultsRootError, ScannedRun
from monitor.runs import FileSignature, ReaderState, RunLocation, RunReader, discover_runs, files_signature
from monitor.runs.reader import CHECKPOINT_SETTLE_S
from monitor.runs.status import assess
from monitor.stops import STOPPED, with_stop_cause
from monitor.workers import chunked, map_chunks, parallel_method, worker_count

__all__ = ["Progress", "indexed_scan_rows", "read_and_record"]

#: ``progress(done, total)``: runs ready so far out of every run found.
Progress = Callable[[int, int], object]


@dataclass(frozen=True)
class _Job:
    location: RunLocation
    signature: FileSignature
    state: ReaderState | None


def read_and_record(location: RunLocation, signature: FileSignature, state: ReaderState | None, *,
                    verdicts: bool, reader: RunReader | None = None) -> tuple[ScannedRun, IndexRecord, RunReader]:
    """Read a run (from ``state`` on where given), summarize it, judge it, and encode its index row; a run is read
    as the dashboard reads it (a checkpoint still being written keeps its previous state)."""
    if reader is None:
        reader = (RunReader.resume(location, state, checkpoint_settle_s=CHECKPOINT_SETTLE_S) if state is not None
                  else RunReader(location, checkpoint_settle_s=CHECKPOINT_SETTLE_S))
        reader.refresh()
    inputs = reader.status_inputs()
    summary = with_stop_cause(reader.summary(assessment=assess(inputs)), location, reader.curves())
    verdict = None
    if verdicts:
        from monitor.analyze import analyze_run, verdict_row

        verdict = verdict_row(analyze_run(reader, status=summary.status), summary.status.value)
    root = os.path.abspath(location.path)[: -len(location.run_id)].rstrip(os.sep) or os.sep
    state_text, arrays = encode_state(reader.state())
    record = IndexRecord(root, location.run_id, signature, encode_summary(summary), encode_inputs(inputs),
                         verdict, state_text, arrays)
    return ScannedRun(summary, verdict), record, reader


def _read_chunk(jobs: Sequence[_Job], verdicts: bool) -> list[tuple[ScannedRun, IndexRecord | None]]:
    """Each run read and its index row; no row where the read was not clean (a flaky mount, a checkpoint being
    written), so the index keeps what it last read well and the next start reads the run again."""
    out: list[tuple[ScannedRun, IndexRecord | None]] = []
    for job in jobs:
        try:
            run, record, reader = read_and_record(job.location, job.signature, job.state, verdicts=verdicts)
        except FileNotFoundError:
            continue  # deleted while we scanned
        out.append((run, None if reader.retry_pending else record))
    return out


def indexed_scan_rows(roots: Sequence[str | os.PathLike[str]], index: RunIndex, *, workers: int | None = None,
                      verdicts: bool = False, progress: Progress | None = None, start_method: str = "fork"
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """The run table of every root as plain rows sorted by root then ``run_id`` (as ``scan_rows``), and the
    problems found while walking; the index is brought up to date on the way. ``start_method``: as for
    :func:`monitor.run_table.summarize_runs`."""
    problems: list[str] = []
    locations: list[tuple[RunLocation, StoredRuns]] = []
    for root in roots:
        root_path = Path(root)
        if not root_path.is_dir():
            raise ResultsRootError(f"results root not found or not a folder: {root}")
        found = discover_runs(root_path, problems)
        index.forget(root_path, (location.run_id for location in found))
        stored_rows = index.stored_runs(root_path)
        locations.extend((location, stored_rows) for location in found)
    total = len(locations)
    done: dict[int, ScannedRun] = {}
    jobs: list[tuple[int, _Job]] = []
    now = time.time()
    for position, (location, stored_rows) in enumerate(locations):
        try:
            signature = files_signature(location)
        except FileNotFoundError:
            continue
        stored = stored_rows.lookup(location.run_id, signature)
        if stored is not None:
            summary = stored.summary.assessed(assess(replace(stored.inputs, now=now)))
            if summary.status in STOPPED and summary.stop_cause is None:
                # stopped since it was stored (by the clock alone): why is read from its files and curves
                jobs.append((position, _Job(location, signature, index.load_state(location))))
                continue
            if summary.status not in STOPPED:
                summary = with_stop_cause(summary, location)  # no cause for a run that did not stop
            if not verdicts:
                done[position] = ScannedRun(summary)
                continue
            if stored.verdict is not None and stored.verdict.status == summary.status.value:
                done[position] = ScannedRun(summary, stored.verdict)
                continue
        jobs.append((position, _Job(location, signature, index.load_state(location))))
    if progress is not None:
        progress(len(done), total)
    n_workers = worker_count(workers)
    method = parallel_method(len(jobs), n_workers, start_method)
    chunks = chunked(jobs, n_workers if method is not None else 1)
    results = map_chunks(_read_chunk, [[job for _, job in chunk] for chunk in chunks], workers=n_workers,
                         start_method=method, args=(verdicts,))
    for position_of_chunk, result in results:
        by_id = {run.summary.run_id: (run, record) for run, record in result}
        for position, job in chunks[position_of_chunk]:
            if job.location.run_id in by_id:
                done[position] = by_id[job.location.run_id][0]
        index.save(record for _, record in by_id.values() if record is not None)
        if progress is not None:
            progress(len(done), total)
    return [done[position].row() for position in sorted(done)], problems
