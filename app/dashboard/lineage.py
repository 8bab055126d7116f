"""Parent ↔ extension links on the dashboard: the run page's "extended → 709/2000, running" line and the
pairs the Compare page offers, both from the one pairing rule in :mod:`monitor.runs.lineage`."""

from __future__ import annotations

import streamlit as st

from app.dashboard import resources
from app.dashboard.jobs_source import JobsSource
from app.dashboard.store import RunStore
from app.dashboard.ui import status_text
from monitor.runs import ExtensionPair, extension_pairs, extensions_of, parent_of

__all__ = ["has_extension", "known_pairs", "lineage_line", "render_lineage"]


def known_pairs(store: RunStore) -> list[ExtensionPair]:
    """Every parent → extension pair of the served runs, from the job registry and from folder names: paired once
    per store version and jobs state, and shared by every page and session (a run page asks three times)."""
    source = resources.jobs()
    return _pairs(str(store.root), store.table_key, resources.jobs_stamp(source), store, source)


@st.cache_resource(show_spinner=False, max_entries=8)
def _pairs(root: str, version: tuple[int, bool], stamp: tuple[tuple[str, str], ...], _store: RunStore,
           _source: JobsSource | None) -> list[ExtensionPair]:
    del root, version, stamp  # cache keys only
    return extension_pairs(_store.table(), _source.jobs() if _source is not None else [])


def has_extension(run_id: str) -> bool:
    """The run already has an extension (any length, any state) in the tree."""
    store = resources.store()
    return store is not None and bool(extensions_of(run_id, known_pairs(store)))


def lineage_line(store: RunStore, run_id: str, role: str, other: str) -> str:
    """``extended → 709/2000, running`` or ``extension of ← 1000/1000, finished`` for one linked run."""
    summary = store.summary(other)
    arrow = "extended →" if role == "parent" else "extension of ←"
    if summary is None:
        return f"{arrow} {other}"
    status = status_text(summary.status).split(" ", 1)[-1]
    return f"{arrow} {summary.epochs_completed}/{summary.planned_epochs or '?'}, {status}"


def render_lineage(store: RunStore, run_id: str) -> None:
    """Links from a parent to its extensions (with their progress) and from an extension to its parent."""
    pairs = known_pairs(store)
    children = extensions_of(run_id, pairs)
    parent = parent_of(run_id, pairs)
    for pair in children:
        _pair_row(store, pair, pair.child_run_id, lineage_line(store, run_id, "parent", pair.child_run_id))
    if parent is not None:
        _pair_row(store, parent, parent.parent_run_id, lineage_line(store, run_id, "child", parent.parent_run_id))


def _pair_row(store: RunStore, pair: ExtensionPair, other: str, text: str) -> None:
    summary = store.summary(other)
    trainer = summary.trainer if summary is not None else other.split("/")[-2]
    with st.container(border=True):
        st.markdown(f"**{text}** · `{trainer}` ({pair.how})")
        st.page_link("views/run.py", label="Open the extension" if other == pair.child_run_id else "Open the parent",
                     icon=":material/call_split:", query_params={"id": other})
        st.page_link("views/compare.py", label="Compare the two", icon=":material/compare_arrows:",
                     query_params={"parent": pair.parent_run_id, "child": pair.child_run_id})
