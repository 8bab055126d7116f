"""Several results roots served as one: each root keeps its own :class:`RunStore` (index, watcher, background
load); :class:`RootsStore` shows them to the pages through the same interface.

Run ids are made unique across roots by a short label in front, the root's folder name (``old_disk/Dataset001_…``,
see :func:`app.served.root_labels` where two roots share a name); the label also fills the table's ``root`` column.
Locations stay as on disk (their ``run_id`` relative to their own root): :meth:`RootsStore.root_of` says which
root that is.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.dashboard.store import RunStore, StoreError
from app.dashboard.tables import ModelGroup
from app.served import root_labels
from trainer import Job

if TYPE_CHECKING:
    import pandas as pd

    from monitor import RunLocation
    from monitor.analyze import Analysis
    from monitor.runs import Curves
    from monitor.runs.summary import RunSummary

__all__ = ["RootsStore", "group_root", "job_labeller"]


def group_root(store: RunStore, group: ModelGroup) -> Path:
    """The results root that holds a model's group of folds (its ``root`` label; the one root where one is
    served), for reports and jobs."""
    if isinstance(store, RootsStore) and group.root in store.labels:
        return store.stores[store.labels.index(group.root)].root
    return store.root


def _labelled_id(path: str, run_id: str, roots: Sequence[Path], labels: Sequence[str]) -> str:
    """``run_id`` as the pages know it: labelled with the root that holds ``path`` (unchanged outside every root)."""
    for root, label in zip(roots, labels):
        try:
            return f"{label}/{Path(path).absolute().relative_to(root).as_posix()}"
        except ValueError:
            continue
    return run_id


def job_labeller(roots: Sequence[Path]) -> Callable[[Job], Job]:
    """Gives a job its run ids labelled like the runs of :class:`RootsStore` over ``roots`` (the registry keeps
    them relative to their own root), so that links and the overview's job column find its runs."""
    labels = root_labels(roots)

    def labelled(job: Job) -> Job:
        return dataclasses.replace(
            job, parent_run_id=_labelled_id(job.parent_path, job.parent_run_id, roots, labels),
            new_run_id=_labelled_id(job.new_run_path, job.new_run_id, roots, labels) if job.new_run_path
            else job.new_run_id)

    return labelled


class RootsStore(RunStore):
    """The runs of several roots, each under its label; every reading method delegates to the root's store.

    A subclass so that every page typed for a :class:`RunStore` takes it unchanged; it holds no watcher of its
    own (the stores it combines belong to the caller, who closes them).
    """

    def __init__(self, stores: Sequence[RunStore]) -> None:
        if not stores:
            raise StoreError("no results root to serve")
        self.stores = list(stores)
        self.labels = root_labels([store.root for store in self.stores])
        self._by_label = dict(zip(self.labels, self.stores))
        self.root = self.stores[0].root
        self.cold_load_s = None
        self._combined: pd.DataFrame | None = None
        self._combined_key: tuple[int, bool] | None = None

    @property
    def roots(self) -> list[Path]:
        return [store.root for store in self.stores]

    def _split(self, run_id: str) -> tuple[RunStore, str] | None:
        label, _, inner = run_id.partition("/")
        store = self._by_label.get(label)
        return None if store is None or not inner else (store, inner)

    def root_of(self, run_id: str) -> Path:
        found = self._split(run_id)
        return self.root if found is None else found[0].root

    def label_of(self, run_id: str) -> str:
        return run_id.partition("/")[0] if self._split(run_id) is not None else ""

    # -- loading -------------------------------------------------------------------------------------
    @property
    def error(self) -> StoreError | None:  # type: ignore[override]
        return next((store.error for store in self.stores if store.error is not None), None)

    @property
    def ready(self) -> bool:
        return all(store.ready for store in self.stores)

    @property
    def checked(self) -> bool:
        return all(store.checked for store in self.stores)

    @property
    def progress(self) -> tuple[int, int]:
        done = total = 0
        for store in self.stores:
            if store.ready and not store.progress[1]:
                continue  # read before progress was reported: nothing to add
            done, total = done + store.progress[0], total + store.progress[1]
        return done, total

    def wait_ready(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for store in self.stores:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not store.wait_ready(left):
                return False
        return True

    def page_drawn(self) -> None:
        for store in self.stores:
            store.page_drawn()

    def close(self) -> None:
        """Nothing of its own to stop: each root's store is closed by whoever made it."""

    # -- versions ------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The sum of the roots' versions: each only grows, so the sum moves whenever any root changes."""
        return sum(store.version for store in self.stores)

    @property
    def problems(self) -> list[str]:
        return [f"{label}: {problem}" for label, store in zip(self.labels, self.stores) for problem in store.problems]

    def poll(self, *, force: bool = False) -> int:
        return sum(store.poll(force=force) for store in self.stores)

    def wait_for_change(self, version: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.version <= version and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.version

    # -- reading -------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        return sorted(f"{label}/{run_id}" for label, store in zip(self.labels, self.stores)
                      for run_id in store.run_ids())

    def table(self) -> pd.DataFrame:
        """Every root's table, run ids labelled, with a ``root`` column (the label) first."""
        import pandas as pd

        key = self.table_key
        if self._combined is not None and self._combined_key == key:
            return self._combined
        parts = []
        for label, store in zip(self.labels, self.stores):
            part = store.table()
            if part.empty:
                continue
            part = part.copy()
            part["run_id"] = label + "/" + part["run_id"].astype(str)
            part.insert(0, "root", label)
            parts.append(part)
        table = pd.concat(parts, ignore_index=True).sort_values("run_id", ignore_index=True) if parts \
            else pd.DataFrame()
        self._combined, self._combined_key = table, key
        return table

    def analysis(self, run_id: str) -> Analysis | None:
        found = self._split(run_id)
        return None if found is None else found[0].analysis(found[1])

    def summary(self, run_id: str) -> RunSummary | None:
        found = self._split(run_id)
        summary = None if found is None else found[0].summary(found[1])
        return None if summary is None else dataclasses.replace(summary, run_id=run_id)

    def run_version(self, run_id: str) -> int | None:
        found = self._split(run_id)
        return None if found is None else found[0].run_version(found[1])

    def location(self, run_id: str) -> RunLocation | None:
        found = self._split(run_id)
        return None if found is None else found[0].location(found[1])

    def curves(self, run_id: str) -> Curves | None:
        found = self._split(run_id)
        return None if found is None else found[0].curves(found[1])

    def frame(self, run_id: str) -> pd.DataFrame | None:
        found = self._split(run_id)
        return None if found is None else found[0].frame(found[1])

    def problems_of(self, run_id: str) -> list[str]:
        found = self._split(run_id)
        return [] if found is None else found[0].problems_of(found[1])
