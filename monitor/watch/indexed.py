"""The watcher's side of the run index: runs taken from it unread, readers resumed from it, changes saved to it.

A run whose files have the signature the index stored is published from its stored summary, with no reader and
no curves in memory; its curves are loaded when a page asks, through a bounded cache. When its files change,
its reader is resumed from the stored state and reads only what was appended. Changed runs are saved in
batches; a saved run that is no longer running gives its reader and curves back (memory stays bounded by the
running runs and the cache).

A first start (the index lacks many of the runs found) reads those runs in worker processes straight into the
index, then publishes every run from it as a restart does: the server never holds every run's reader and curves
at once, and every core reads. A run a worker could not read is left to the watcher's own read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.index import IndexRecord, RunIndex, read_and_record
from monitor.runs.layout import RunLocation, parse_run_path
from monitor.runs.merge import Curves
from monitor.runs.reader import CHECKPOINT_SETTLE_S, RunReader
from monitor.runs.resume import FileSignature, files_signature
from monitor.runs.status import RunStatus
from monitor.workers import chunked, collector_paused, map_chunks, parallel_method, worker_count

if TYPE_CHECKING:
    from monitor.analyze import VerdictRow
    from monitor.watch.snapshots import Publisher, TrackedRun

__all__ = ["CURVE_CACHE_RUNS", "IndexedRuns", "VerdictSource"]

log = logging.getLogger("nnwatch.watch")

#: Curves of this many runs stay in memory after a page asked for them.
CURVE_CACHE_RUNS = 64
_SAVE_EVERY_S = 5.0
#: The server process is multi-threaded: its workers never fork from it (see :mod:`monitor.workers`).
_START_METHOD = "forkserver"

#: ``(run_id, snapshot version) -> its verdict`` when the caller has judged that version, else None.
VerdictSource = Callable[[str, int], "VerdictRow | None"]


class IndexedRuns:
    """Worker-private glue between a :class:`monitor.watch.ResultsWatcher` and a :class:`RunIndex`."""

    def __init__(self, index: RunIndex, cache_runs: int = CURVE_CACHE_RUNS) -> None:
        self.index = index
        self.verdicts: VerdictSource | None = None
        self._cache: OrderedDict[str, tuple[FileSignature, Curves]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_runs = cache_runs
        self._dirty: set[str] = set()
        self._last_save = time.monotonic()
        self.on_preloaded: Callable[[int], object] | None = None  # see :meth:`preload`
        self.paused = False  # the caller's first read goes on: saving waits (it would only slow that read down)

    # -- starting --------------------------------------------------------------------------------------
    def preload(self, root: Path, runs: dict[str, TrackedRun], publisher: Publisher) -> int:
        """Publish every run of ``root`` as the index last stored it (one query, no file read), so a restart shows
        them at once; the caller then checks each against its files (a cheap signature comparison) and reads
        what changed. Calls :attr:`on_preloaded` with the number published."""
        with collector_paused():
            for stored in self.index.stored_runs(root).last_known():
                location = parse_run_path(root / stored.run_id, stored.run_id)
                if location is not None and stored.run_id not in runs:
                    runs[stored.run_id] = publisher.add_stored(location, stored.summary, stored.inputs,
                                                               self.loader(location, stored.signature),
                                                               stored.verdict, False, stored.signature)
        if self.on_preloaded is not None:
            self.on_preloaded(len(runs))
        return len(runs)

    def fill(self, root: Path, found: list[RunLocation], runs: dict[str, TrackedRun], publisher: Publisher,
             progress: Callable[[int, int], object], workers: int | None = None) -> int:
        """Where the index lacks many of the runs ``found`` (a first start): read those in worker processes into
        the index (``progress(done, total)`` as they come back), then publish every stored run unread, as
        :meth:`preload` does on a restart. Returns how many of ``found`` are accounted for (0: nothing done, the
        caller reads every run itself); a run a worker could not read, or left unread when a worker died, is not
        in the index and is the caller's to read."""
        missing = [location for location in found if location.run_id not in runs]
        n_workers = worker_count(workers)
        method = parallel_method(len(missing), n_workers, _START_METHOD)
        if method is None:
            return 0
        done = len(found) - len(missing)
        chunks = chunked(missing, n_workers)
        try:
            for position, records in map_chunks(read_for_index, chunks, workers=n_workers, start_method=method):
                self.index.save(records)
                done += len(chunks[position])
                progress(done, len(found))
        except Exception:  # a worker died: what it left unread is read the ordinary way
            log.exception("reading runs in worker processes failed; reading the rest in this one")
        self.preload(root, runs, publisher)
        return done

    def publish_stored(self, location: RunLocation, signature: FileSignature, publisher: Publisher,
                       polled: bool) -> TrackedRun | None:
        """Publish the run from the index, unread, if its files still have the stored signature."""
        stored = self.index.lookup(location, signature)
        if stored is None:
            return None
        return publisher.add_stored(location, stored.summary, stored.inputs, self.loader(location, signature),
                                    stored.verdict, polled, signature)

    def reader(self, location: RunLocation) -> RunReader:
        """A reader resumed from the stored state (reads only what changed), else a new one."""
        state = self.index.load_state(location)
        if state is not None:
            return RunReader.resume(location, state, checkpoint_settle_s=CHECKPOINT_SETTLE_S)
        return RunReader(location, checkpoint_settle_s=CHECKPOINT_SETTLE_S)

    def loader(self, location: RunLocation, signature: FileSignature) -> Callable[[], Curves]:
        """Loads the run's curves as stored for ``signature`` (from the cache when a page asked recently)."""
        def load() -> Curves:
            with self._cache_lock:
                hit = self._cache.get(location.run_id)
                if hit is not None and hit[0] == signature:
                    self._cache.move_to_end(location.run_id)
                    return hit[1]
            state = self.index.load_state(location)
            reader = RunReader.resume(location, state) if state is not None else RunReader(location)
            if state is None:  # the index lost it meanwhile (deleted, rebuilt): read the files
                reader.refresh()
            curves = reader.curves()
            from monitor.watch.snapshots import freeze_curves

            freeze_curves(curves)
            with self._cache_lock:
                self._cache[location.run_id] = (signature, curves)
                while len(self._cache) > self._cache_runs:
                    self._cache.popitem(last=False)
            return curves
        return load

    # -- following --------------------------------------------------------------------------------------
    def changed(self, run_id: str) -> None:
        self._dirty.add(run_id)

    def forget_run(self, run_id: str) -> None:
        self._dirty.discard(run_id)
        with self._cache_lock:
            self._cache.pop(run_id, None)

    def save_due(self) -> bool:
        return bool(self._dirty) and not self.paused and time.monotonic() - self._last_save >= _SAVE_EVERY_S

    def save(self, runs: dict[str, TrackedRun], publisher: Publisher) -> int:
        """Store every changed run; settled ones (not running) then give back their reader and curves."""
        self._last_save = time.monotonic()
        if self.verdicts is not None and not any(
                run_id in runs and self.verdicts(run_id, runs[run_id].snapshot.version) is not None
                for run_id in self._dirty):
            return 0  # nothing judged yet (a first start): save later, not while the caller judges every run
        dirty, self._dirty = self._dirty, set()
        records = []
        saved = []
        for run_id in sorted(dirty):
            run = runs.get(run_id)
            if run is None or run.reader is None or run.signature is None or run.reader.retry_pending:
                continue
            try:
                _, record, _ = read_and_record(run.reader.location, run.signature, None, verdicts=False,
                                               reader=run.reader)
            except Exception:
                log.exception("%s: cannot encode for the run index", run_id)
                continue
            verdict = self.verdicts(run_id, run.snapshot.version) if self.verdicts is not None else None
            if verdict is not None:
                record = replace(record, verdict=verdict)
            elif self.verdicts is not None:
                self._dirty.add(run_id)  # not judged yet: saved again with its verdict next time
            records.append(record)
            saved.append((run, verdict))
        if records and self.index.save(records) == len(records):
            for run, verdict in saved:
                settled = run.assessment.status not in (RunStatus.RUNNING, RunStatus.STALLED)
                if settled and run.signature and (verdict is not None or self.verdicts is None):
                    publisher.unload(run, self.loader(run.snapshot.location, run.signature), verdict)
        return len(records)

    def started(self, root: Path, run_ids: list[str]) -> None:
        """The first read is over: runs no longer under ``root`` leave the index, and the next save waits a full
        period (the caller judges the runs meanwhile)."""
        self.index.forget(root, run_ids)
        self._last_save = time.monotonic()


def read_for_index(locations: list[RunLocation]) -> list[IndexRecord]:
    """In a worker process: each run read as the watcher reads it, summarized, judged and encoded for the index.
    A run that cannot be read cleanly now (an OS error, a checkpoint still being written, anything unexpected)
    is left out."""
    records = []
    for location in locations:
        try:
            signature = files_signature(location)  # before the read, as the watcher takes it
            reader = RunReader(location, checkpoint_settle_s=CHECKPOINT_SETTLE_S)
            reader.refresh()
            if reader.retry_pending:
                continue
            _, record, _ = read_and_record(location, signature, None, verdicts=True, reader=reader)
        except Exception:
            continue
        records.append(record)
    return records
