"""Live watcher over one results root: every new epoch, run, finished and dead run, as it happens.

watchdog's inotify thread (or, polling, :mod:`monitor.watch.poller`) only records which run or folder changed;
one worker thread owns every run's reader, applies folder changes, refreshes the runs that are due and runs the
status timer, and publishes immutable snapshots and events (:mod:`monitor.watch.snapshots`), so a UI thread never
waits for disk I/O. With a run index (:mod:`monitor.watch.indexed`) a start takes unchanged runs from it.
Failures: a folder that is gone drops its run (polling: once a listing above it tells a rename from a deletion);
any other ``OSError`` (a flaky mount) keeps the last state and retries with backoff; an unexpected exception is
logged and the worker goes on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent

from monitor.runs.layout import FOLD_DIR_RE, RunLocation, discover_runs, parse_run_path
from monitor.runs.reader import CHECKPOINT_SETTLE_S, RunReader
from monitor.runs.resume import FileSignature, files_signature
from monitor.watch.events import Changes
from monitor.watch.fs import EventForwarder, ObserverChoice, choose_observer, is_checkpoint_name, start_observer
from monitor.watch.poller import TreePoller
from monitor.watch.snapshots import Liveness, Publisher, RunSnapshot, TrackedRun, WatchSnapshot

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from monitor.index import RunIndex
    from monitor.watch.indexed import IndexedRuns

__all__ = ["Liveness", "ResultsWatcher", "RunSnapshot", "WatchSnapshot"]

log = logging.getLogger("nnwatch.watch")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
# A checkpoint being rewritten (nnU-Net saves in place) is read this long after its last event, not at once.
_CHECKPOINT_DELAY_S = 0.5
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write", "attrib"})


class ResultsWatcher:
    """Watch one results root; use as a context manager or call :meth:`start` / :meth:`stop`.

    ``poll``: polling interval in seconds (None: inotify unless the root is on a network file system).
    ``tick_s``: how often time-based status is re-evaluated. ``reconcile_s``: how often every run is
    refreshed and the tree walked again, the safety net for events that never come (inotify overflow, the
    watch limit). ``clock``: wall-clock time, compared with file mtimes; tests pass a fake one. ``index``: a
    run index to start from and save to. ``progress(done, total)``: called while :meth:`start` reads the runs.
    """

    def __init__(self, root: str | os.PathLike[str], *, poll: float | None = None,
                 liveness: Liveness | None = None, tick_s: float = 1.0, reconcile_s: float = 60.0,
                 mountinfo: str | None = None, clock: Callable[[], float] = time.time,
                 index: RunIndex | None = None, progress: Callable[[int, int], object] | None = None) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise FileNotFoundError(f"results root not found or not a folder: {root}")
        self._prefix = os.fspath(self.root).rstrip(os.sep) + os.sep
        self._real_prefix = os.path.realpath(self.root).rstrip(os.sep) + os.sep
        self._choice = choose_observer(self.root, poll, mountinfo=mountinfo)
        self._clock, self._tick_s, self._reconcile_s = clock, tick_s, reconcile_s
        self.notes: list[str] = []  # discovery problems and the observer fallback, for the UI
        # observer thread -> worker
        self._work = threading.Condition()
        self._due: dict[str, float] = {}  # run id -> monotonic time its refresh is due
        self._ops: list[tuple[str, str, str]] = []  # (op, path, dest) folder changes, in order
        self._stopping = False
        # worker-private
        self._runs: dict[str, TrackedRun] = {}
        self._not_runs: set[str] = set()  # fold-like folders whose parents follow no layout (names never change)
        self._published = Publisher(clock, liveness)
        self._state = self._published.state  # what readers of the watcher wait on
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._progress = progress or (lambda done, total: None)
        self._poller = TreePoller(self.root, self._choice.interval_s) if self._choice.kind == "polling" else None
        self.indexed: IndexedRuns | None = None  # the run index's side (its ``verdicts`` are the caller's)
        if index is not None:
            from monitor.watch.indexed import IndexedRuns

            self.indexed = IndexedRuns(index)
            self.notes.extend(index.notes)

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> ResultsWatcher:
        """Publish the runs the index stored (at once), start the observer (so nothing written meanwhile is missed),
        read every run once or check a stored one against its files (``run_added`` events), then follow changes."""
        if self._thread is not None:
            raise RuntimeError("watcher already started")
        if self.indexed is not None:  # every run as last stored, at once; checked against its files below
            self.indexed.preload(self.root, self._runs, self._published)
        if self._poller is None:
            self._observer, self._choice = start_observer(EventForwarder(self._on_fs_event), self.root, self._choice)
            if "falling back" in self._choice.reason:
                self.notes.append(self._choice.reason)
                log.warning("%s", self._choice.reason)
                self._observer.stop()  # the tree poller below does that job without listing every folder
                self._observer = None
                self._poller = TreePoller(self.root, self._choice.interval_s)
        if self._poller is not None:
            self._poller.track_tree(self.root)  # before the walk: what changes during it is seen by a poll
        found = self._discover(os.fspath(self.root))
        filled = self.indexed.fill(self.root, found, self._runs, self._published, self._progress) if self.indexed else 0
        for done, location in enumerate(found, 1):
            self._guard(self._add, location)
            self._progress(max(done, filled), len(found))
        for run_id in set(self._runs) - {location.run_id for location in found}:  # stored, gone since
            self._remove(run_id, {"reason": "deleted"})
        if self.indexed is not None:
            self.indexed.started(self.root, [location.run_id for location in found])
        self._thread = threading.Thread(target=self._loop, name="nnwatch-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and the observer (idempotent)."""
        with self._work:
            self._stopping = True
            self._work.notify_all()
        with self._state:
            self._state.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.indexed is not None:
            self._guard(self.indexed.save, self._runs, self._published)
        if self._observer is not None:
            with contextlib.suppress(RuntimeError):
                self._observer.stop()
                self._observer.join(timeout)

    def __enter__(self) -> ResultsWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def observer(self) -> ObserverChoice:
        """What is watching (``kind`` "inotify" or "polling", ``interval_s``, ``reason``)."""
        return self._choice

    # -- what readers see ------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        with self._state:
            return self._published.log.version

    def snapshot(self) -> WatchSnapshot:
        """Every run at the current version (a shallow copy: O(runs) pointers, no run data copied)."""
        published = self._published
        with self._state:
            return WatchSnapshot(published.log.version, MappingProxyType(dict(published.runs)), self._choice)

    def run(self, run_id: str) -> RunSnapshot | None:
        with self._state:
            return self._published.runs.get(run_id)

    def changes_since(self, version: int, timeout: float | None = None) -> Changes:
        """``(new_version, events)`` after ``version`` (None: too old, take a :meth:`snapshot`); with
        ``timeout``, wait up to that long for something to happen (long polling)."""
        with self._state:
            if timeout is not None and self._published.log.version == version:
                self._state.wait_for(lambda: self._published.log.version != version or self._stopping, timeout)
            return self._published.log.since(version)

    def refresh(self, run_id: str | None = None) -> None:
        """Ask for a refresh now (one run, or all): for a UI's refresh button or a caller that knows better."""
        with self._state:
            targets = [run_id] if run_id is not None else list(self._published.runs)
        for target in targets:
            self._schedule(target, 0.0)

    # -- observer thread -------------------------------------------------------------------------------
    def _on_fs_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in _IGNORED_EVENTS:
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        if event.is_directory:
            if kind == "modified":
                return  # a file event inside says what changed
            op = {"created": "discover", "deleted": "remove", "moved": "move"}.get(kind)
            if op is not None:
                with self._work:
                    self._ops.append((op, src, dest))
                    self._work.notify()
            return
        self._file_event(src, kind)
        if kind == "moved":
            self._file_event(dest, kind)

    def _file_event(self, path: str, kind: str) -> None:
        run_id, inside = self._run_id_of(path)
        if run_id is None:
            return
        name = path.rpartition(os.sep)[2]
        if inside and name != "summary.json":
            return  # validation outputs: only their summary.json matters
        self._schedule(run_id, _CHECKPOINT_DELAY_S if kind == "modified" and is_checkpoint_name(name) else 0.0)

    def _run_id_of(self, path: str) -> tuple[str | None, bool]:
        """The run id of a file path (its first ``fold_*`` folder) and whether it lies deeper inside the run."""
        if not path.startswith(self._prefix):
            return None, False
        parts = path[len(self._prefix):].split(os.sep)
        for i in range(len(parts) - 1):
            if parts[i].startswith("fold_") and FOLD_DIR_RE.match(parts[i]):
                return "/".join(parts[:i + 1]), i < len(parts) - 2
        return None, False

    def _rel(self, path: str) -> str | None:
        """Path relative to the root ("" for the root itself), None outside it."""
        if path.rstrip(os.sep) == self._prefix.rstrip(os.sep):
            return ""
        return path[len(self._prefix):].rstrip(os.sep).replace(os.sep, "/") if path.startswith(self._prefix) else None

    # -- worker ----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_tick = time.monotonic() + self._tick_s
        next_reconcile = time.monotonic() + self._reconcile_s
        next_poll = time.monotonic() + self._choice.interval_s
        while True:
            with self._work:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    earliest = min(self._due.values(), default=math.inf)
                    if self._ops or earliest <= now or now >= next_tick:
                        break
                    self._work.wait(min(earliest, next_tick) - now)
                ops, self._ops = self._ops, []
                ready = [run_id for run_id, due in self._due.items() if due <= now]
                for run_id in ready:
                    del self._due[run_id]
            for op in ops:
                self._guard(self._apply, *op)
            for run_id in ready:
                self._guard(self._refresh, run_id)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                self._guard(self._tick)
                if self._poller is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self._choice.interval_s
                    self._guard(self._poll)
                if self.indexed is not None and self.indexed.save_due():
                    self._guard(self.indexed.save, self._runs, self._published)
                if time.monotonic() >= next_reconcile and self._poller is None:  # a poll covers it
                    next_reconcile = time.monotonic() + self._reconcile_s
                    self._guard(self._reconcile)

    def _guard(self, function: Callable[..., object], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            log.exception("watcher: %s%r failed; state kept", getattr(function, "__name__", function), args)

    def _schedule(self, run_id: str, delay: float) -> None:
        """Refresh a run after ``delay`` seconds (or sooner if it is already due sooner); wakes the worker."""
        due = time.monotonic() + delay
        with self._work:
            current = self._due.get(run_id)
            if current is None or due < current:
                self._due[run_id] = due
                if delay <= 0:
                    self._work.notify()

    # folder changes
    def _apply(self, op: str, path: str, dest: str) -> None:
        """A folder was created, deleted or renamed; inside a known run that is only a change to the run."""
        inside = [self._inside_run(p) if p else None for p in (path, dest)]
        for run_id in dict.fromkeys(r for r in inside if r is not None):
            self._refresh(run_id)
        src_rel = self._rel(path) if inside[0] is None else None
        dest_rel = self._rel(dest) if dest and inside[1] is None else None
        if op == "discover" and src_rel is not None:
            for location in self._discover(path):
                self._add(location)
        elif op == "remove" and src_rel is not None:
            for run_id in self._ids_under(src_rel):
                self._remove(run_id, {"reason": "deleted"})
        elif op == "move":
            self._move(src_rel, dest_rel, dest)

    def _inside_run(self, path: str) -> str | None:
        """The known run a folder lies inside (deeper than its fold folder), if any."""
        run_id, _ = self._run_id_of(path.rstrip(os.sep) + os.sep + "x")
        return run_id if run_id is not None and run_id in self._runs and self._rel(path) != run_id else None

    def _discover(self, path: str) -> list[RunLocation]:
        problems: list[str] = []
        try:
            found = discover_runs(path, problems)
        except OSError as exc:
            problems.append(f"{path}: cannot walk ({exc})")
            found = []
        for problem in problems:
            if problem not in self.notes:
                self.notes.append(problem)
        located = []
        for location in found:
            rel = self._rel(os.fspath(location.path))  # discovery named runs after ``path``: rename after the root
            parsed = location if rel == location.run_id else parse_run_path(location.path, rel) if rel else None
            if parsed is not None:
                located.append(parsed)
        return located

    def _ids_under(self, rel: str) -> list[str]:
        return [run_id for run_id in self._runs if not rel or run_id == rel or run_id.startswith(rel + "/")]

    def _move(self, src_rel: str | None, dest_rel: str | None, dest: str) -> None:
        """A renamed folder: its runs disappear under the old ids and reappear under the new ones."""
        old_ids = self._ids_under(src_rel) if src_rel is not None else []
        found = self._discover(dest) if dest_rel is not None else []
        found_ids = {location.run_id for location in found}
        renamed: dict[str, str] = {}
        if src_rel is not None and dest_rel is not None:
            new_ids = {old: dest_rel + old[len(src_rel):] for old in old_ids}
            renamed = {old: new for old, new in new_ids.items() if new in found_ids}
        for run_id in old_ids:
            data = {"reason": "moved", "moved_to": renamed[run_id]} if run_id in renamed else {"reason": "moved away"}
            self._remove(run_id, data)
        moved_from = {new: old for old, new in renamed.items()}
        for location in found:
            self._add(location, moved_from.get(location.run_id))

    # runs
    def _add(self, location: RunLocation, moved_from: str | None = None) -> None:
        """Read a run found on disk and publish it; a run already known is refreshed instead."""
        real = os.path.realpath(location.path)
        polled = not (real + os.sep).startswith(self._real_prefix)
        if location.run_id in self._runs:  # known, or preloaded from the index: a refresh checks its files
            self._runs[location.run_id].polled = polled
            self._refresh(location.run_id)
            return
        try:
            signature = self._note(location)
        except FileNotFoundError:
            return
        if self.indexed is not None and signature is not None:
            stored = self.indexed.publish_stored(location, signature, self._published, polled)
            if stored is not None:
                self._runs[location.run_id] = stored
                if polled:
                    self._schedule(location.run_id, self._choice.interval_s)
                return
        reader = (self.indexed.reader(location) if self.indexed is not None
                  else RunReader(location, checkpoint_settle_s=CHECKPOINT_SETTLE_S))
        try:
            reader.refresh()
        except FileNotFoundError:
            return  # gone again before we could read it
        except OSError as exc:
            log.warning("%s: %s; will retry", location.run_id, exc)
            reader.retry_pending = True
        run = self._runs[location.run_id] = self._published.add(reader, polled, moved_from)
        run.signature = signature
        if self.indexed is not None:
            self.indexed.changed(location.run_id)
        if reader.retry_pending:
            self._retry(location.run_id, run)
        if polled:
            self._schedule(location.run_id, self._choice.interval_s)

    def _note(self, location: RunLocation) -> FileSignature | None:
        """Before a read: the files' signature (for the index and the poller) and the fold folder's mtime."""
        if self._poller is not None:
            self._poller.note_run(location.run_id, location.path)
        return files_signature(location) if self.indexed is not None or self._poller is not None else None

    def _remove(self, run_id: str, data: Mapping[str, Any]) -> None:
        if self._runs.pop(run_id, None) is not None:
            self._published.remove(run_id, data)
            for tracker in (self.indexed, self._poller):
                if tracker is not None:
                    tracker.forget_run(run_id)

    def _retry(self, run_id: str, run: TrackedRun) -> None:
        run.retry_delay = min(max(run.retry_delay * 2, RETRY_MIN_S), RETRY_MAX_S)
        self._schedule(run_id, run.retry_delay)

    def _refresh(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is None:
            self._discover_unknown(run_id)
            return
        location = run.snapshot.location
        if self.indexed is not None or self._poller is not None:
            try:
                signature = self._note(location)
            except FileNotFoundError:
                signature = None
            if run.reader is None:
                if signature is not None and signature == run.signature:
                    if run.polled:  # unchanged: stays unread
                        self._schedule(run_id, self._choice.interval_s)
                    return
                assert self.indexed is not None, "only runs from the index have no reader"
                run.reader = self.indexed.reader(location)
            run.signature = signature
        reader = run.reader
        assert reader is not None
        try:
            reader.refresh()
        except FileNotFoundError:
            if os.path.isdir(reader.location.path):
                self._retry(run_id, run)
            elif self._poller is None or not self._poller.relist_above(reader.location.path):
                self._remove(run_id, {"reason": "deleted"})
            return
        except OSError as exc:
            log.info("%s: %s; keeping last state, will retry", run_id, exc)
            self._retry(run_id, run)
            return
        if reader.retry_pending:
            self._retry(run_id, run)
        else:
            run.retry_delay = 0.0
        if run.polled:
            self._schedule(run_id, self._choice.interval_s)
        if reader.version != run.seen_version:
            self._published.update(run)
            if self.indexed is not None:
                self.indexed.changed(run_id)
        else:
            last_update = reader.last_update()
            if last_update != run.inputs.last_update:  # the log advanced without a new epoch: alive
                run.inputs = replace(run.inputs, last_update=last_update)
                self._published.reassess(run, self._clock())

    def _discover_unknown(self, run_id: str) -> None:
        """A file event in a fold folder we do not know (its ``created`` event was missed or came first)."""
        path = self.root / run_id
        if run_id in self._not_runs or not path.is_dir():
            return
        location = parse_run_path(path, run_id)
        if location is None:
            self._not_runs.add(run_id)
            return
        self._add(location)

    def _reconcile(self) -> None:
        """Walk the tree for runs no event announced, drop runs whose folder is gone, refresh the rest soon."""
        found = {location.run_id: location for location in self._discover(os.fspath(self.root))}
        for run_id, location in found.items():
            if run_id not in self._runs:  # the others are refreshed below, with the rest
                self._add(location)
        for run_id in list(self._runs):
            if run_id not in found and not os.path.isdir(self._runs[run_id].snapshot.location.path):
                self._remove(run_id, {"reason": "deleted"})
            else:
                self._schedule(run_id, 0.0)

    def _poll(self) -> None:
        """Polling (:mod:`monitor.watch.poller`): list only folders whose mtime moved, refresh changed runs."""
        assert self._poller is not None
        for path in self._poller.changed_dirs():
            self._poller.track_tree(path)
            listed = self._discover(path) if os.path.isdir(path) else []
            under = self._ids_under(self._rel(path) or "")
            if under and not os.path.isdir(path) and self._poller.relist_above(path):
                continue  # gone or renamed (perhaps during this poll): listing a folder above tells which
            seen = {location.run_id for location in listed}  # one that vanished since is left to the next poll
            gone = [r for r in under if r not in seen and not os.path.isdir(self._runs[r].snapshot.location.path)]
            found = [location for location in listed if location.run_id not in self._runs]
            moves = self._poller.moves(gone, found)  # a renamed folder keeps its inode
            for run_id in gone:
                self._remove(run_id, {"reason": "moved", "moved_to": moves[run_id]} if run_id in moves
                             else {"reason": "deleted"})
            moved_from = {new: old for old, new in moves.items()}
            for location in found:
                self._add(location, moved_from.get(location.run_id))
        for run_id, run in list(self._runs.items()):
            if self._poller.run_changed(run_id, run.snapshot.location.path, run.signature):
                self._schedule(run_id, 0.0)

    def _tick(self) -> None:
        """Time-based status (running → stalled → crashed) without file events; cheap when nothing is due."""
        self._published.tick(self._runs.values(), self._clock())
