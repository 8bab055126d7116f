"""One shared, thread-safe view of a results root for every dashboard session (held by ``st.cache_resource``).

Stop-gap until ``monitor/watch.py`` lands: it is built only from monitor's public calls. The cold start
uses :func:`monitor.summarize_runs` (parallel, with verdicts) for the run table; after that a poll,
throttled to one per ``min_interval_s`` however many sessions ask, compares each fold folder's file
listing and log sizes with the last poll and re-reads only runs that changed, through a
:class:`~monitor.RunReader` that consumes just the appended bytes. Runs that are running keep a reader
(their status decays to crashed with time, even without new bytes); others get one when they change or
are opened. Summary rows and analyses are recomputed only when a reader's version moves.

``version`` increases whenever the table changes, so ``st.cache_data`` can key derived frames on it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import RunLocation, RunReader, discover_runs, summarize_runs
from monitor.analyze import Analysis, analyze

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunStore", "StoreError"]

_LIVE_STATUSES = ("running", "stalled", "unknown")
Signature = tuple[Any, ...]


class StoreError(RuntimeError):
    """The results root cannot be read at all (gone, not a folder, no permission)."""


def _signature(folder: Path) -> Signature | None:
    """What changes when nnU-Net writes: the file names, and size and mtime of the logs. None: gone."""
    try:
        with os.scandir(folder) as entries:
            items = []
            for entry in entries:
                if entry.name.startswith("training_log"):
                    info = entry.stat()
                    items.append((entry.name, info.st_size, info.st_mtime_ns))
                else:
                    items.append((entry.name,))
    except FileNotFoundError:
        return None
    except OSError:
        return ("unreadable",)
    items.sort()
    return tuple(items)


@dataclass
class _Entry:
    location: RunLocation
    row: dict[str, Any]
    signature: Signature | None
    reader: RunReader | None = None
    row_version: int = -1  # reader.version the row was computed from
    analysis: Analysis | None = None
    analysis_key: tuple[int, str] | None = None


def _with_eta(row: dict[str, Any]) -> dict[str, Any]:
    """Seconds left for a running run: remaining epochs × median epoch time (None when unknown)."""
    eta = None
    if row.get("status") == "running":
        planned, done, per_epoch = row.get("planned_epochs"), row.get("epochs_completed"), row.get(
            "median_epoch_time_s")
        if planned and done is not None and per_epoch and math.isfinite(per_epoch):
            eta = max(0.0, (int(planned) - int(done)) * float(per_epoch))
    row["eta_s"] = eta
    return row


def _verdict_row(reader: RunReader) -> dict[str, Any]:
    row = reader.summary()
    result = analyze(reader.frame(), planned_epochs=row["planned_epochs"], finished=row["status"] == "finished",
                     running=row["status"] == "running")
    row["verdict"] = result.verdict.value
    row["verdict_reason"] = result.reason
    return _with_eta(row)


class RunStore:
    """All runs under one root, refreshed incrementally; every public method is safe across sessions."""

    def __init__(self, root: str | os.PathLike[str], *, min_interval_s: float = 2.0,
                 rediscover_s: float = 30.0, workers: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        self.min_interval_s = min_interval_s
        self.rediscover_s = rediscover_s
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self.problems: list[str] = []
        self.version = 0
        self._last_poll = -math.inf
        self._last_discover = -math.inf
        self._table: pd.DataFrame | None = None
        self._table_version = -1
        self.cold_load_s = 0.0
        started = time.perf_counter()
        self._discover(workers=workers)
        self._last_poll = self._clock()  # the cold load counts as a poll
        self.cold_load_s = time.perf_counter() - started

    # -- discovery and polling ---------------------------------------------------------------------
    def _discover(self, workers: int | None = None) -> bool:
        if not self.root.is_dir():
            raise StoreError(f"results root not found or not a folder: {self.root}")
        problems: list[str] = []
        locations = discover_runs(self.root, problems)
        self.problems = problems
        self._last_discover = self._clock()
        known = {loc.run_id: loc for loc in locations}
        changed = False
        for gone in set(self._entries) - set(known):
            del self._entries[gone]
            changed = True
        new = [loc for loc in locations if loc.run_id not in self._entries]
        if new:
            signatures = {loc.run_id: _signature(loc.path) for loc in new}
            rows = summarize_runs(new, workers=workers, verdicts=True)
            for row in rows:
                location = known[row["run_id"]]
                entry = _Entry(location, _with_eta(row), signatures[row["run_id"]])
                self._entries[row["run_id"]] = entry
                if row["status"] in _LIVE_STATUSES:
                    self._ensure_reader(entry)
            changed = True
        return changed

    def _ensure_reader(self, entry: _Entry) -> RunReader:
        if entry.reader is None:
            entry.reader = RunReader(entry.location, checkpoints="when_needed")
            entry.reader.refresh()
            entry.row_version = entry.reader.version
        return entry.reader

    def poll(self, *, force: bool = False) -> int:
        """Pick up what changed on disk (at most once per ``min_interval_s``); return the new version."""
        with self._lock:
            now = self._clock()
            if not force and now - self._last_poll < self.min_interval_s:
                return self.version
            self._last_poll = now
            changed = False
            if now - self._last_discover >= self.rediscover_s or force:
                changed |= self._discover()
            for run_id, entry in list(self._entries.items()):
                try:
                    changed |= self._poll_entry(entry)
                except FileNotFoundError:
                    del self._entries[run_id]
                    changed = True
            if changed:
                self.version += 1
            return self.version

    def _poll_entry(self, entry: _Entry) -> bool:
        signature = _signature(entry.location.path)
        if signature is None:
            raise FileNotFoundError(entry.location.path)
        live = entry.row.get("status") in _LIVE_STATUSES
        if signature == entry.signature and not live:
            return False
        entry.signature = signature
        reader = self._ensure_reader(entry)
        old_version, old_status = entry.row_version, entry.row.get("status")
        reader.refresh()
        if reader.version == old_version and reader.status() == old_status:
            return False  # a live run with no new epoch (yet): nothing to recompute
        entry.row = _verdict_row(reader)
        entry.row_version = reader.version
        return True

    # -- reading -----------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def table(self) -> pd.DataFrame:
        """The run table (monitor's summary columns + verdict, verdict_reason, eta_s), sorted by run id."""
        import pandas as pd

        with self._lock:
            if self._table is None or self._table_version != self.version:
                rows = [self._entries[key].row for key in sorted(self._entries)]
                self._table = pd.DataFrame(rows)
                self._table_version = self.version
            return self._table

    def summary(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(run_id)
            return None if entry is None else dict(entry.row)

    def location(self, run_id: str) -> RunLocation | None:
        with self._lock:
            entry = self._entries.get(run_id)
            return None if entry is None else entry.location

    def frame(self, run_id: str) -> pd.DataFrame | None:
        """The run's per-epoch frame (a copy); None for an unknown run."""
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                return None
            return self._ensure_reader(entry).frame()

    def reader_version(self, run_id: str) -> int:
        """Bumped whenever the run's curves change: the cache key for frames and charts."""
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                return -1
            return self._ensure_reader(entry).version

    def problems_of(self, run_id: str) -> list[str]:
        with self._lock:
            entry = self._entries.get(run_id)
            return [] if entry is None else list(self._ensure_reader(entry).problems())

    def analysis(self, run_id: str) -> Analysis | None:
        """The analyzer's full answer for one run, recomputed only when its curves changed."""
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                return None
            reader = self._ensure_reader(entry)
            key = (reader.version, str(entry.row.get("status")))
            if entry.analysis is None or entry.analysis_key != key:
                row = entry.row
                entry.analysis = analyze(reader.frame(), planned_epochs=row.get("planned_epochs"),
                                         finished=row.get("status") == "finished",
                                         running=row.get("status") == "running")
                entry.analysis_key = key
            return entry.analysis
