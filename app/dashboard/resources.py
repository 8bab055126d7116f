"""Streamlit's caches: one store per results root, one jobs source per registry, derived frames by version.

Several roots are served through one :class:`RootsStore` over their stores.

``st.cache_resource`` holds objects every session shares (the :class:`RunStore` with its readers, the
:class:`JobsSource`, the demo tree and its trainer thread); ``st.cache_data`` holds frames derived from
them, keyed on the store's ``version`` so a new epoch invalidates exactly what it changes. Filters are
applied by the pages, outside the caches, so every filter combination shares one cached frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import streamlit as st

from app.dashboard.jobs_source import JobsSource, load_backend_factory
from app.dashboard.roots_store import RootsStore, job_labeller
from app.dashboard.run_charts import warm_figures
from app.dashboard.settings import Settings, load_settings
from app.dashboard.store import RunStore, StoreError
from app.dashboard.tables import groups_frame, runs_frame
from monitor.index import RunIndex
from trainer import Job, JobLiveness

__all__ = ["jobs", "jobs_stamp", "overview_frames", "overview_tables", "results_root", "settings", "store", "warm"]


def settings() -> Settings:
    """This server's settings; Streamlit's ``server.address`` is the binding that counts."""
    return load_settings(server_address=st.get_option("server.address"))


@st.cache_resource(show_spinner=False)  # written by the server's warm-up thread, which has no page to spin on
def _demo_root(interval_s: float) -> str:
    from app.demo import build_demo_tree

    root, _trainer = build_demo_tree(interval_s=interval_s)
    return str(root)


def results_root(config: Settings) -> Path:
    """The watched tree: the configured root, or the bundled demo (written once per server)."""
    return config.root if config.root is not None else Path(_demo_root(config.demo_interval_s))


def _close_store(store: RunStore) -> None:
    store.close()


# A small tree is read in less than this: show it at once rather than flash a progress bar.
_PATIENCE_S = 2.0


def _open_index() -> RunIndex | None:
    """The run index in the state folder; without one (unwritable folder) every start reads every run."""
    try:
        return RunIndex()
    except Exception as exc:  # a read-only state folder, a full disk: the dashboard still works, slower
        logging.getLogger("nnwatch.dashboard").warning("run index unavailable: %s", exc)
        return None


@st.cache_resource(show_spinner=False, on_release=_close_store)
def _store(root: str, indexed: bool, _jobs: JobsSource | None = None) -> RunStore:
    """Reads in the background: the first page shows its progress (:func:`_loading`) instead of waiting blind.
    The job registry is the watcher's liveness: a run whose job died is crashed at once, with its cause."""
    return RunStore(root, index=_open_index() if indexed else None, background=True,
                    liveness=None if _jobs is None else JobLiveness(_jobs.jobs, root))


@st.cache_resource(show_spinner=False)
def _roots(roots: tuple[str, ...], _jobs: JobsSource | None = None) -> RootsStore:
    """Several roots: each its own indexed store (cached and closed by :func:`_store`), combined under one interface."""
    return RootsStore([_store(root, True, _jobs) for root in roots])


def _served(config: Settings) -> RunStore:
    """The store of these settings: the one root's (or the demo's), or every root's combined."""
    if len(config.roots) > 1:
        return _roots(tuple(str(root) for root in config.roots), _jobs_of(config))
    return _store(str(results_root(config)), not config.demo, _jobs_of(config))  # demo trees: no index


@st.fragment(run_every=1.0)
def _loading(shared: RunStore) -> None:
    if shared.ready:
        st.rerun()
    done, total = shared.progress
    text = f"Reading the results tree: {done} of {total} runs" if total else "Looking for runs in the results tree…"
    st.progress(done / total if total else 0.0, text=text)
    st.caption("Once per server start; runs unchanged since the last start come from the run index at once.")


def store(*, quiet: bool = False) -> RunStore | None:
    """The shared store (its watcher follows the tree by itself); None after showing what is wrong, or the
    reading progress while a cold start goes on (``quiet``: show nothing, for the sidebar)."""
    try:
        shared = _served(settings())
        was_ready = shared.ready
        shared.wait_ready(0.0 if quiet else _PATIENCE_S)  # the sidebar does not hold the page up
        if not shared.ready and not quiet:
            _loading(shared)
        elif not was_ready and shared.ready and not quiet:
            st.rerun()  # ready while this page waited: draw everything (the sidebar too) with every run
        if shared.ready and shared.error is not None:
            raise shared.error
    except StoreError as exc:
        if not quiet:
            st.error(f"**{exc}.** Start nnwatch with `nnwatch serve --root /path/to/nnUNet_results`, or set "
                     "`$nnUNet_results`; with neither it serves demo runs.", icon=":material/folder_off:")
        return None
    return shared if shared.ready else None


@st.cache_resource(show_spinner=False)
def _jobs(db: str | None, factory_spec: str | None, roots: tuple[str, ...] = ()) -> JobsSource:
    """``roots``: several served roots, whose run ids the pages see labelled (see :func:`job_labeller`)."""
    return JobsSource(Path(db) if db else None, backend_factory=load_backend_factory(factory_spec),
                      relabel=job_labeller([Path(root) for root in roots]) if len(roots) > 1 else None)


def _jobs_of(config: Settings, quiet: bool = True) -> JobsSource | None:
    """The shared job registry of these settings (raises unless ``quiet``, which gives None)."""
    db = config.jobs_db
    if db is None and config.demo:
        db = Path(_demo_root(config.demo_interval_s)).parent / "jobs.sqlite3"
    try:
        return _jobs(str(db) if db else None, config.backend_factory,
                     tuple(str(root) for root in config.roots) if len(config.roots) > 1 else ())
    except Exception:
        if quiet:
            return None  # the pages that list jobs say why
        raise


def jobs() -> JobsSource | None:
    """The shared job registry; None after showing why it cannot be opened."""
    try:
        return _jobs_of(settings(), quiet=False)
    except Exception as exc:  # a bad path, a locked file, a bad factory spec
        st.error(f"**The job registry cannot be opened:** {exc}. Set `NNWATCH_JOBS_DB` to a writable file.",
                 icon=":material/database:")
        return None


def jobs_stamp(source: JobsSource | None) -> tuple[tuple[str, str], ...]:
    """A hashable summary of the jobs (id, state) so cached frames notice a new or finished job."""
    if source is None:
        return ()
    return tuple((job.job_id, job.state.value) for job in source.jobs())


@st.cache_resource(show_spinner=False, max_entries=8)
def overview_frames(root: str, version: tuple[int, bool], stamp: tuple[tuple[str, str], ...],
                    _by_run: dict[str, list[Job]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(raw run table, display table, fold-group table) for one store version and jobs state, built once and
    shared by every session without a copy (pages filter into new frames, never change these).

    ``_by_run`` is not part of the cache key (Streamlit skips arguments starting with ``_``): ``stamp``
    stands for it.
    """
    del version, stamp  # cache keys only
    table = _served(settings()).table()
    return table, runs_frame(table, _by_run), groups_frame(table)


def overview_tables(store: RunStore, source: JobsSource | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The overview's (raw run table, display table, fold-group table) of the store as it is now."""
    by_run = source.jobs_by_run() if source is not None else {}
    return overview_frames(str(store.root), store.table_key, jobs_stamp(source), by_run)


def warm(server_address: str | None = None) -> None:
    """What the first visitor's overview needs, made before anyone asks: the served store, ready, its tables and
    the figures its page draws hidden.

    Run by the server process while Streamlit starts (see :mod:`app.dashboard.server`); every session then shares
    what it made through the caches above. A cold start (no run index) is left to read on: its page shows how far
    it got.
    """
    config = load_settings(server_address=server_address)
    shared = _served(config)
    if shared.wait_ready(_PATIENCE_S) and shared.error is None:
        overview_tables(shared, _jobs_of(config))
        warm_figures(shared)
