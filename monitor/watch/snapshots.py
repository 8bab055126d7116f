"""What a watcher publishes: an immutable snapshot per run, and the events that lead from one to the next.

:class:`Publisher` appends a step's events under the same lock that installs the new :class:`RunSnapshot`, so
readers never see a half-updated run. :func:`new_rows` decides which rows are new epochs.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.runs.layout import RunLocation
from monitor.runs.merge import Curves
from monitor.runs.reader import RunReader, curves_frame
from monitor.runs.resume import FileSignature
from monitor.runs.status import RunAssessment, RunStatus, StatusInputs, assess
from monitor.runs.summary import RunSummary, iso_seconds
from monitor.stops import STOPPED, JobEvidence, with_stop_cause
from monitor.watch.events import EventLog, iso_time
from monitor.watch.fs import ObserverChoice

if TYPE_CHECKING:
    import pandas as pd

    from monitor.analyze import VerdictRow

__all__ = ["Liveness", "Publisher", "RunSnapshot", "TrackedRun", "WatchSnapshot", "changed", "new_rows"]

log = logging.getLogger("nnwatch.watch")

_LOSS_TOLERANCE = 2e-4  # logs print 4 decimals; checkpoints hold full precision of the same epoch
_VOLATILE = ("last_update", "eta_s", "eta")  # clock-driven: not a reason for a run_updated event

#: What the caller knows about training processes: a set of run ids with a live job, or a function
#: ``run_id -> True (alive) / False (known dead) / None (unknown)``, or a :class:`JobEvidence` (its ``alive``,
#: plus the job's output and end state for the stop cause). Evaluated on every status tick: keep it cheap.
Liveness = Callable[[str], "bool | JobEvidence | None"] | Collection[str]


@dataclass(frozen=True)
class RunSnapshot:
    """One run as published at ``version``; never changes (``curves`` arrays are read-only).

    A run taken from the run index unchanged has no curves in memory: ``loader`` reads them when a page asks
    (through a bounded cache), and ``stored_verdict`` is the index's verdict (for the run status it names)."""

    run_id: str
    location: RunLocation
    summary: RunSummary
    loaded: Curves | None
    version: int
    loader: Callable[[], Curves] | None = None
    stored_verdict: VerdictRow | None = None

    @property
    def curves(self) -> Curves:
        if self.loaded is not None:
            return self.loaded
        assert self.loader is not None, "a snapshot has its curves or a way to load them"
        return self.loader()

    @property
    def status(self) -> RunStatus:
        return self.summary.status

    def frame(self) -> pd.DataFrame:
        """The per-epoch DataFrame (same schema as :meth:`RunReader.frame`)."""
        return curves_frame(self.curves)


@dataclass(frozen=True)
class WatchSnapshot:
    """Every run at one version: consistent with ``changes_since(version)``."""

    version: int
    runs: Mapping[str, RunSnapshot]
    observer: ObserverChoice


@dataclass
class TrackedRun:
    """Worker-private state of one run."""

    reader: RunReader | None  # None: taken from the run index unchanged, resumed from it when its files change
    snapshot: RunSnapshot
    inputs: StatusInputs  # cached per reader version; the clock only swaps ``now``/``alive``
    assessment: RunAssessment
    seen_version: int
    polled: bool  # reached through a symlink from outside the tree: no file events, refreshed on a timer
    retry_delay: float = 0.0
    signature: FileSignature | None = None  # the files as they were before the reader's last refresh


class Publisher:
    """The published runs and their event log; written by the worker thread only, read under ``state``."""

    def __init__(self, clock: Callable[[], float], liveness: Liveness | None) -> None:
        self.state = threading.Condition()
        self.log = EventLog()
        self.runs: dict[str, RunSnapshot] = {}
        self.liveness = liveness
        self._clock = clock
        self.status_due = -math.inf  # no run's status changes by the clock alone before this (lowered on each change)

    def alive(self, run_id: str) -> bool | None:
        answer = self.job(run_id)
        return answer.alive if isinstance(answer, JobEvidence) else answer

    def job(self, run_id: str) -> bool | JobEvidence | None:
        """The liveness answer for one run, as given (a callback that fails counts as unknown)."""
        liveness = self.liveness
        if liveness is None:
            return None
        if callable(liveness):
            try:
                answer = liveness(run_id)
            except Exception:
                log.exception("liveness callback failed for %s", run_id)
                return None
            return answer if answer is None or isinstance(answer, JobEvidence) else bool(answer)
        return True if run_id in liveness else None

    def _with_stop_cause(self, summary: RunSummary, location: RunLocation,
                         curves: Callable[[], Curves]) -> RunSummary:
        """The summary with why it stopped (curves are asked for only when it did: a stored run loads them)."""
        if summary.status not in STOPPED:
            return with_stop_cause(summary, location)
        answer = self.job(location.run_id)
        return with_stop_cause(summary, location, curves(), job=answer if isinstance(answer, JobEvidence) else None)

    def add(self, reader: RunReader, polled: bool, moved_from: str | None = None) -> TrackedRun:
        """Publish a run read for the first time (a ``run_added`` event)."""
        location = reader.location
        now, inputs, assessment, summary = self._assess(reader)
        data = summary.row()
        if moved_from is not None:
            data["moved_from"] = moved_from
        with self.state:
            self.log.append("run_added", location.run_id, data, now)
            snapshot = self._publish(location, summary, freeze_curves(reader.curves()))
        self._due(assessment)
        return TrackedRun(reader, snapshot, inputs, assessment, reader.version, polled)

    def add_stored(self, location: RunLocation, summary: RunSummary, inputs: StatusInputs,
                   loader: Callable[[], Curves], verdict: VerdictRow | None, polled: bool,
                   signature: FileSignature) -> TrackedRun:
        """Publish a run from the run index, unread (a ``run_added`` event, as :meth:`add`)."""
        now = self._clock()
        inputs = replace(inputs, now=now)
        job = self.job(location.run_id)
        alive = job.alive if isinstance(job, JobEvidence) else job
        assessment = assess(inputs if alive == inputs.alive else replace(inputs, alive=alive))
        assessed = summary.assessed(assessment)
        if assessed.status in STOPPED and assessed.status == summary.status and summary.stop_cause is not None \
                and not isinstance(job, JobEvidence):
            summary = assessed  # stopped when stored, same files, no job to ask: the stored cause holds
        else:
            summary = self._with_stop_cause(assessed, location, loader)
        with self.state:
            self.log.append("run_added", location.run_id, summary.row(), now)
            snapshot = RunSnapshot(location.run_id, location, summary, None, self.log.version, loader, verdict)
            self.runs[location.run_id] = snapshot
            self.state.notify_all()
        self._due(assessment)
        return TrackedRun(None, snapshot, inputs, assessment, -1, polled, signature=signature)

    def unload(self, run: TrackedRun, loader: Callable[[], Curves], verdict: VerdictRow | None) -> None:
        """Drop a settled run's reader and curves (saved in the index); pages load them again on demand."""
        with self.state:
            old = run.snapshot
            run.snapshot = replace(old, loaded=None, loader=loader, stored_verdict=verdict)
            if self.runs.get(old.run_id) is old:
                self.runs[old.run_id] = run.snapshot
        run.reader = None
        run.seen_version = -1

    def remove(self, run_id: str, data: Mapping[str, Any]) -> None:
        with self.state:
            self.runs.pop(run_id, None)
            self.log.append("run_removed", run_id, data, self._clock())
            self.state.notify_all()

    def update(self, run: TrackedRun) -> None:
        """Publish what a refresh changed: new epochs, a new status, or else a changed summary."""
        reader = run.reader
        assert reader is not None, "update() follows a refresh of the run's reader"
        run_id = reader.location.run_id
        now, inputs, assessment, summary = self._assess(reader)
        curves = freeze_curves(reader.curves())
        fresh = new_rows(run.snapshot.curves, curves)
        previous = run.assessment.status
        with self.state:
            if fresh:
                ema = curves.ema_fg_dice
                for index in fresh:
                    self.log.append("epoch", run_id, epoch_row(curves, ema, index), now)
            if assessment.status != previous:
                self.log.append("status", run_id, status_data(assessment, previous, summary), now)
            elif not fresh and changed(run.snapshot.summary, summary):
                self.log.append("run_updated", run_id, summary.row(), now)
            run.snapshot = self._publish(reader.location, summary, curves)
        run.inputs, run.assessment, run.seen_version = inputs, assessment, reader.version
        self._due(assessment)

    def tick(self, runs: Iterable[TrackedRun], now: float) -> None:
        """Reassess every unfinished run whose status the clock may have changed (all of them, given liveness)."""
        check_all = self.liveness is not None
        if not check_all and now < self.status_due:
            return
        self.status_due = math.inf  # lowered again by every reassessment below and every later change
        for run in list(runs):
            assessment = run.assessment
            if assessment.status == RunStatus.FINISHED:
                continue
            if check_all or (assessment.next_change_at is not None and assessment.next_change_at <= now):
                self.reassess(run, now)
            else:
                self._due(assessment)

    def reassess(self, run: TrackedRun, now: float) -> None:
        """Status by the clock alone (running, stalled, crashed) from the cached inputs; published on a change."""
        assessment = assess(replace(run.inputs, now=now, alive=self.alive(run.snapshot.run_id)))
        previous = run.assessment
        run.assessment = assessment
        self._due(assessment)
        if assessment.status == previous.status:
            return
        snapshot = run.snapshot
        summary = self._with_stop_cause(snapshot.summary.assessed(assessment), snapshot.location,
                                        lambda: snapshot.curves)
        with self.state:
            self.log.append("status", snapshot.run_id, status_data(assessment, previous.status, summary), now)
            run.snapshot = self._publish(snapshot.location, summary, snapshot.curves)

    def _due(self, assessment: RunAssessment) -> None:
        if assessment.next_change_at is not None and assessment.next_change_at < self.status_due:
            self.status_due = assessment.next_change_at

    def _assess(self, reader: RunReader) -> tuple[float, StatusInputs, RunAssessment, RunSummary]:
        """The clock, the status inputs (cached by the caller), their assessment, and the summary they give."""
        now = self._clock()
        inputs = reader.status_inputs(now)
        assessment = assess(replace(inputs, alive=self.alive(reader.location.run_id)))
        summary = self._with_stop_cause(reader.summary(assessment=assessment), reader.location, reader.curves)
        return now, inputs, assessment, summary

    def _publish(self, location: RunLocation, summary: RunSummary, curves: Curves) -> RunSnapshot:
        """Install a new snapshot; the caller holds ``state`` and has appended its events."""
        snapshot = RunSnapshot(location.run_id, location, summary, curves, self.log.version)
        self.runs[location.run_id] = snapshot
        self.state.notify_all()
        return snapshot


def freeze_curves(curves: Curves) -> Curves:
    """Mark the arrays read-only: snapshots share them (the reader builds new arrays on each change)."""
    for name in curves.__dataclass_fields__:
        array = getattr(curves, name)
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return curves


def changed(old: RunSummary, new: RunSummary) -> bool:
    """Did anything but the clock-driven fields change?"""
    return replace(new, **{name: getattr(old, name) for name in _VOLATILE}) != old


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (np.abs(a - b) <= _LOSS_TOLERANCE) | (np.isnan(a) & np.isnan(b))


def _rows_differ(old: Curves, new: Curves, rows: slice) -> np.ndarray:
    """Per row: another epoch, other values, or another log session (a replay after a resume is new even with
    the same values). A checkpoint's full-precision copy of a logged epoch is the same row."""
    differs = old.epoch[rows] != new.epoch[rows]
    for column in ("train_loss", "val_loss", "mean_fg_dice"):
        differs |= ~_same(getattr(old, column)[rows], getattr(new, column)[rows])
    sessions = [a != b and str(a).startswith("log:") and str(b).startswith("log:")
                for a, b in zip(old.source[rows], new.source[rows])]
    return differs | np.asarray(sessions, dtype=bool).reshape(differs.shape)


def new_rows(old: Curves, new: Curves) -> range:
    """Rows of ``new`` that are new epochs: appended ones, or from the first row a resume or new log replaced."""
    n_old, n_new = len(old), len(new)
    if n_old == 0:
        return range(n_new)
    if n_new >= n_old and not _rows_differ(old, new, slice(n_old - 1, n_old)).any():
        return range(n_old, n_new)
    common = min(n_old, n_new)
    first = np.flatnonzero(_rows_differ(old, new, slice(0, common)))
    return range(int(first[0]) if first.size else common, n_new)


def epoch_row(curves: Curves, ema: np.ndarray, i: int) -> dict[str, Any]:
    """The ``epoch`` event's data: row ``i`` as plain Python values (NaN stays NaN; JSON writers map it to null)."""
    row: dict[str, Any] = {
        "epoch": int(curves.epoch[i]),
        "mean_fg_dice": float(curves.mean_fg_dice[i]),
        "ema_fg_dice": float(ema[i]),
        "lr": float(curves.lr[i]),
        "train_loss": float(curves.train_loss[i]),
        "val_loss": float(curves.val_loss[i]),
    }
    for k in range(curves.dice.shape[1]):
        row[f"dice_{k + 1}"] = float(curves.dice[i, k])
    row["epoch_time_s"] = float(curves.epoch_time_s[i])
    end = curves.epoch_end[i]
    row["epoch_end"] = None if np.isnat(end) else iso_time(end.astype("datetime64[us]").astype(np.int64) / 1e6)
    return row


def status_data(assessment: RunAssessment, previous: RunStatus, summary: RunSummary | None = None) -> dict[str, Any]:
    """The ``status`` event's data: the new status with its reason and ETA, the one it replaces, and why a
    stopped run stopped (``stop_cause``, ``stop_evidence``; None for the other statuses)."""
    return {"status": assessment.status.value, "previous": previous.value, "reason": assessment.reason,
            "eta_s": assessment.eta_s, "eta": iso_seconds(assessment.eta), "dead_dice": assessment.dead_dice,
            "stop_cause": None if summary is None else summary.stop_cause,
            "stop_evidence": None if summary is None else summary.stop_evidence}
