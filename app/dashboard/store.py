"""The dashboard's view of one results root: monitor's live watcher plus the analyzer's verdicts.

One :class:`RunStore` per root is shared by every session (``st.cache_resource``). It wraps
:class:`monitor.watch.watcher.ResultsWatcher`, which follows the tree with inotify (or polling on network file
systems) in its own thread and publishes immutable per-run snapshots; pages read those snapshots and
never wait for disk I/O. What the watcher does not know is the verdict: the store computes it with
:func:`monitor.analyze.verdict.analyze_curves` (as ``nnwatch scan`` does) and caches it per run snapshot version,
so a new epoch re-analyses that run only.

``version`` is the watcher's event version: it moves whenever any run changes, so ``st.cache_data`` can
key derived frames on it.

With a run index (:mod:`monitor.index`), a restart takes unchanged runs from it: their summaries and verdicts at
once, their curves only when a page draws them. Every stored run is shown at once, as last stored, while the
watcher checks each against its files and publishes what changed. ``background=True`` reads the runs in a
thread and reports ``progress`` meanwhile, so a page can show how far a cold start is.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.analyze import Analysis, VerdictRow, analyze_curves, verdict_row
from monitor.index import RunIndex
from monitor.runs.status import RunStatus
from monitor.runs.summary import RunSummary
from monitor.watch.watcher import Liveness, ResultsWatcher, RunSnapshot

if TYPE_CHECKING:
    import pandas as pd

    from monitor import RunLocation
    from monitor.runs import Curves

__all__ = ["RunStatus", "RunStore", "RunSummary", "StoreError"]


#: After a restart, how long checking the runs against their files waits for the first page to be drawn.
_FIRST_PAGE_WAIT_S = 10.0


class StoreError(RuntimeError):
    """The results root cannot be watched at all (gone, not a folder, no permission)."""


def _analyse(snapshot: RunSnapshot) -> Analysis:
    """The analyzer on a snapshot's curves, with the watcher's status, exactly as ``nnwatch scan`` runs it."""
    return analyze_curves(snapshot.curves, planned_epochs=snapshot.summary.planned_epochs,
                          status=snapshot.status, frame=snapshot.frame, device=snapshot.summary.device)


class RunStore:
    """All runs under one root, live; every public method is safe to call from any session's thread."""

    def __init__(self, root: str | os.PathLike[str], *, poll_s: float | None = None,
                 liveness: Liveness | None = None, index: RunIndex | None = None,
                 background: bool = False) -> None:
        """``liveness``: the job registry's answer per run (a dead job marks its run crashed at once);
        ``index``: the run index to start from; ``background``: read in a thread (see :attr:`ready`)."""
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise StoreError(f"results root not found or not a folder: {root}")
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        self._analyses: dict[str, tuple[int, Analysis]] = {}
        self._table: pd.DataFrame | None = None
        self._table_version = -1
        self._index = index
        self._progress = (0, 0)
        self._ready = threading.Event()
        self.error: StoreError | None = None
        self.cold_load_s: float | None = None
        try:
            self._watcher = ResultsWatcher(self.root, poll=poll_s, liveness=liveness, index=index,
                                           progress=self._on_progress)
        except OSError as exc:
            raise StoreError(f"cannot watch {self.root}: {exc}") from exc
        self._checked = threading.Event()
        self._drawn = threading.Event()  # a page has been drawn from the preloaded runs (see _preloaded)
        self._background = background
        if self._watcher.indexed is not None:
            self._watcher.indexed.verdicts = self._verdict_of
            self._watcher.indexed.on_preloaded = self._preloaded
            self._watcher.indexed.paused = True  # until the first table is built (see _load)
        if background:
            threading.Thread(target=self._load, name="nnwatch-store-load", daemon=True).start()
        else:
            self._load()
            if self.error is not None:
                raise self.error

    def _load(self) -> None:
        try:
            self._watcher.start()
            with self._lock:
                self._table_version = -1  # the preloaded table may hold verdicts judged at another status
            self._checked.set()
            self.table()  # the first verdicts, so the first visitor does not pay for them
        except OSError as exc:
            self.error = StoreError(f"cannot watch {self.root}: {exc}")
        finally:
            self._ready_now()
            self._checked.set()
            if self._watcher.indexed is not None:
                self._watcher.indexed.paused = False

    def _preloaded(self, runs: int) -> None:
        """The index's runs are published (before they are checked against their files): a restart can show
        them now; a start without any reads every run first."""
        if runs:
            self.table()
            self._ready_now()
            if self._background:  # the check below would slow the first page down: it waits for it a moment
                self._drawn.wait(_FIRST_PAGE_WAIT_S)

    def page_drawn(self) -> None:
        """A page has been drawn (the first visitor's): checking the runs against their files may begin."""
        self._drawn.set()

    def _ready_now(self) -> None:
        if not self._ready.is_set():
            self.cold_load_s = time.perf_counter() - self._started
            self._ready.set()

    def _on_progress(self, done: int, total: int) -> None:
        self._progress = (done, total)

    @property
    def ready(self) -> bool:
        """Every run can be shown: read once, or taken from the index (see :attr:`checked`)."""
        return self._ready.is_set()

    @property
    def table_key(self) -> tuple[int, bool]:
        """What the table depends on, for caches of frames derived from it: the version, and whether the runs are
        checked (the table is judged again then, at the same version)."""
        return self.version, self.checked

    @property
    def checked(self) -> bool:
        """Every run has been read or checked against its files (a restart is :attr:`ready` before that: it shows
        the runs as the index stored them meanwhile, and changes arrive as the check finds them)."""
        return self._checked.is_set()

    @property
    def progress(self) -> tuple[int, int]:
        """(runs read or checked, runs found) while the first read goes on."""
        return self._progress

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        """Stop the watcher's threads (``st.cache_resource`` calls this when it drops the store)."""
        self._watcher.stop()
        if self._index is not None:
            self._index.close()

    # -- versions ------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._watcher.version

    @property
    def problems(self) -> list[str]:
        """Folders that could not be read and observer fallbacks, in the watcher's words."""
        return list(self._watcher.notes)

    def poll(self, *, force: bool = False) -> int:
        """The current version; ``force`` asks the watcher to re-read every run now (a refresh button)."""
        if force:
            self._watcher.refresh()
        return self._watcher.version

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until the version moves past ``version`` or ``timeout`` passes; return the version."""
        return self._watcher.changes_since(version, timeout=timeout).version

    # -- reading -------------------------------------------------------------------------------------
    def analysis(self, run_id: str) -> Analysis | None:
        """The analyzer's full answer for one run, recomputed only when its snapshot changed."""
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else self._analysis_of(snapshot)

    def _analysis_of(self, snapshot: RunSnapshot) -> Analysis:
        with self._lock:
            cached = self._analyses.get(snapshot.run_id)
        if cached is not None and cached[0] == snapshot.version:
            return cached[1]
        result = _analyse(snapshot)
        with self._lock:
            self._analyses[snapshot.run_id] = (snapshot.version, result)
        return result

    def _verdict_of(self, run_id: str, version: int) -> VerdictRow | None:
        """The verdict of a run version already judged (saved with the run in the index)."""
        snapshot = self._watcher.run(run_id)
        with self._lock:
            cached = self._analyses.get(run_id)
        if cached is not None and cached[0] == version and snapshot is not None:
            return verdict_row(cached[1], snapshot.status.value)
        return None

    def _row(self, snapshot: RunSnapshot) -> dict[str, Any]:
        row = snapshot.summary.row()
        stored = snapshot.stored_verdict
        with self._lock:
            cached = self._analyses.get(snapshot.run_id)
        # From the index, no curves loaded; while the stored runs are not yet checked, even a verdict judged at
        # another status (a run that stopped meanwhile): it is judged again once the check is over.
        if (cached is None or cached[0] != snapshot.version) and stored is not None \
                and (stored.status == snapshot.status.value or not self._checked.is_set()):
            row.update(stored.columns())
            return row
        row.update(verdict_row(self._analysis_of(snapshot), snapshot.status.value).columns())
        return row

    def run_ids(self) -> list[str]:
        return sorted(self._watcher.snapshot().runs)

    @property
    def roots(self) -> list[Path]:
        """Every results root served (one here)."""
        return [self.root]

    def root_of(self, run_id: str) -> Path:
        """The results root a run lives under: this store's (several roots: see ``app.dashboard.roots_store``)."""
        return self.root

    def label_of(self, run_id: str) -> str:
        """The label of the results root a run lives under, as the ``root`` column gives it: "" with one root."""
        return ""

    def table(self) -> pd.DataFrame:
        """One row per run: the watcher's summary columns (status, eta_s, …) plus verdict and verdict_reason."""
        import pandas as pd

        snapshot = self._watcher.snapshot()
        with self._lock:
            if self._table is not None and self._table_version == snapshot.version:
                return self._table
        rows = [self._row(snapshot.runs[run_id]) for run_id in sorted(snapshot.runs)]
        table = pd.DataFrame(rows)
        with self._lock:
            self._table, self._table_version = table, snapshot.version
            for gone in set(self._analyses) - set(snapshot.runs):
                del self._analyses[gone]
        return table

    def summary(self, run_id: str) -> RunSummary | None:
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else snapshot.summary

    def run_version(self, run_id: str) -> int | None:
        """The version of one run's snapshot (moves only when that run changes): a cache key for what a page
        derives from one run; None for an unknown run."""
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else snapshot.version

    def location(self, run_id: str) -> RunLocation | None:
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else snapshot.location

    def curves(self, run_id: str) -> Curves | None:
        """The run's merged per-epoch arrays as published (read-only)."""
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else snapshot.curves

    def frame(self, run_id: str) -> pd.DataFrame | None:
        """The run's per-epoch frame (a fresh DataFrame); None for an unknown run."""
        snapshot = self._watcher.run(run_id)
        return None if snapshot is None else snapshot.frame()

    def problems_of(self, run_id: str) -> list[str]:
        snapshot = self._watcher.run(run_id)
        return [] if snapshot is None else list(snapshot.summary.problems)
