"""Overview: every run in one sortable, filterable table, grouped by model (dataset, configuration, trainer, plans).

Filters live in the sidebar and in the URL (``?dataset=…&status=running``), so a filtered view can be
shared. The tables refresh themselves (a fragment on a timer) while the filters stay put.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from app.dashboard import resources
from app.dashboard.downloads import csv_button, dataset_report, png_button, safe_name
from app.dashboard.extend_dialog import RESULT_KEY, open_extend_dialog, render_extend_dialog
from app.dashboard.roots_store import group_root
from app.dashboard.store import RunStore
from app.dashboard.tables import (
    STATUS_LABELS,
    VERDICT_LABELS,
    Filters,
    apply_filters,
    group_of_row,
    groups_frame,
    runs_of,
)
from app.dashboard.ui import extend_eligibility, guard
from app.dashboard.validation_ui import crossval_link

_FIELDS = {"dataset": "Dataset", "configuration": "Configuration", "trainer": "Trainer", "status": "Status",
           "verdict": "Verdict"}
_SYNCED = "overview_synced_query"


def _sync_from_url(table: pd.DataFrame) -> None:
    """Load the filters from the URL on first view, or when the URL changed under us (a shared link)."""
    query = {k: v for k, v in st.query_params.to_dict().items() if k in (*_FIELDS, "q")}
    if st.session_state.get(_SYNCED) == query:
        return
    filters = Filters.from_query(query)
    for name in _FIELDS:
        options = set(table[name].astype(str)) if name in table.columns else set()
        st.session_state[f"f_{name}"] = [v for v in getattr(filters, name) if v in options]
    st.session_state["f_q"] = filters.q
    st.session_state[_SYNCED] = query


def _label(mapping: dict[str, str], value: str) -> str:
    return mapping.get(value, value)


def _sidebar_filters(table: pd.DataFrame) -> Filters:
    labels = {"status": STATUS_LABELS, "verdict": VERDICT_LABELS}
    with st.sidebar:
        st.subheader("Filters")
        st.text_input("Search run id", key="f_q", placeholder="e.g. Prostate or fold_0")
        for name, title in _FIELDS.items():
            options = sorted(set(table[name].dropna().astype(str))) if name in table.columns else []
            mapping: dict[str, str] = labels.get(name, {})
            st.multiselect(title, options, key=f"f_{name}", format_func=partial(_label, mapping), placeholder="all")
        filters = Filters(q=st.session_state.get("f_q", ""),
                          **{name: list(st.session_state.get(f"f_{name}", [])) for name in _FIELDS})
        if filters.active and st.button("Clear filters", key="clear_filters", icon=":material/filter_alt_off:"):
            for name in (*_FIELDS, "q"):
                st.session_state.pop(f"f_{name}", None)
            st.query_params.clear()
            st.session_state[_SYNCED] = {}
            st.rerun()
    wanted = filters.to_query()
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[_SYNCED] = wanted
    return filters


def _metrics(shown: pd.DataFrame, total: int) -> None:
    """Headline counts of the runs the filters let through (the same rows as both tables below)."""
    top, bottom = st.columns(3), st.columns(2)
    status = shown["status"] if len(shown) else pd.Series(dtype=str)
    verdict = shown["verdict"] if "verdict" in shown.columns else pd.Series(dtype=str)
    top[0].metric("Runs", len(shown), help=f"{len(shown)} of the {total} runs in the tree match the filters")
    top[1].metric("Running", int((status == "running").sum()))
    top[2].metric("Finished", int((status == "finished").sum()))
    bottom[0].metric("Crashed or stalled", int(status.isin(["crashed", "stalled"]).sum()))
    worth = int(((verdict == "improving") & (status == "finished")).sum())
    bottom[1].metric("Still improving (finished runs)", worth, help="Final verdicts only: finished runs whose "
                     "pseudo Dice was still rising at the end of the schedule, the candidates for a longer one. "
                     "Verdicts of running or stopped runs are provisional and not counted here.")


def _group_section(groups: pd.DataFrame, store: RunStore) -> None:
    st.subheader("By dataset, configuration and trainer")
    event = st.dataframe(
        groups, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="groups_table",
        column_order=["Dataset", "Config", "Trainer", *(["Root"] if "Root" in groups.columns else []), "Folds",
                      "Finished", "Verdicts", "Best EMA (mean ± SD)", "Running", "Crashed"],
        column_config={
            "Dataset": st.column_config.TextColumn(width=150),
            "Config": st.column_config.TextColumn(width=80),
            "Trainer": st.column_config.TextColumn(width=200, help="The trainer, and its plans where they are not "
                                                   "nnUNetPlans: each trained model is one group"),
            "Root": st.column_config.TextColumn(width=120, help="The results root that holds this model"),
            "Folds": st.column_config.TextColumn(help="✓ finished · ▶ running · ✗ crashed · ⏸ stalled · ? no epoch yet",
                                                 width=150),
            "Finished": st.column_config.TextColumn(width=70, help="Finished folds of the usual five"),
            "Running": st.column_config.NumberColumn(width=65),
            "Crashed": st.column_config.NumberColumn(width=65),
            "Verdicts": st.column_config.TextColumn(width=190),
            "Best EMA (mean ± SD)": st.column_config.TextColumn(width=150, help="Best EMA pseudo Dice of each fold, "
                                                                "averaged over folds, ± standard deviation"),
        })
    st.caption(f"{len(groups)} group(s) of folds", help="Only the runs that match the filters are counted")
    rows = event.selection.rows if event is not None else []
    if rows and rows[0] < len(groups):
        row = groups.iloc[rows[0]]
        group = group_of_row(row)
        left, right, _ = st.columns([1, 1, 3])
        left.page_link("views/compare.py", label="Compare these folds", icon=":material/stacked_line_chart:",
                       query_params=group.query())
        with right:
            png_button(dataset_report(group_root(store, group), group.dataset, group.configuration, group.trainer,
                                      plans=group.plans), group.name, key="group_png")
        crossval_link(store, group)
    else:
        st.caption("Select a row to compare its folds or download a PNG report of them.")


def _runs_section(runs: pd.DataFrame, table: pd.DataFrame, store: RunStore) -> None:
    """The runs table (``runs``, as displayed) and what a selected row offers; ``table``: the raw run table."""
    st.subheader(f"Runs ({len(runs)})")
    event = st.dataframe(
        runs.drop(columns="run_id"),  # a selected row's id is looked up here, not sent to the browser
        hide_index=True, width="stretch", height=min(38 + 35 * max(len(runs), 1), 640), on_select="rerun",
        selection_mode="single-row", key="runs_table",
        # What a user decides on (status, verdict, progress, best Dice, why) fits 1400 px without scrolling;
        # the rest follows. The whole "Why" of the selected row is printed below the table.
        column_order=["Open", *(["Root"] if "Root" in runs.columns else []), "Dataset", "Config", "Trainer", "Fold",
                      "Status", "Verdict", "Epoch", "Best EMA", "Why", "Stopped by", "ETA", "Last EMA", "Job"],
        column_config={
            "Open": st.column_config.LinkColumn("Run", display_text="open ↗", width=50,
                                                help="The run's page (shareable link)"),
            "Dataset": st.column_config.TextColumn(width=120),
            "Config": st.column_config.TextColumn(width=75),
            "Trainer": st.column_config.TextColumn(width=140),
            "Fold": st.column_config.TextColumn(width=36),
            "Status": st.column_config.TextColumn(width=88),
            "Epoch": st.column_config.TextColumn(width=80),
            "ETA": st.column_config.TextColumn(width=80, help="Remaining epochs × median epoch time"),
            "Last EMA": st.column_config.TextColumn(width=68, help="nnU-Net's EMA of the pseudo Dice, last epoch"),
            "Best EMA": st.column_config.TextColumn(width=68),
            "Verdict": st.column_config.TextColumn(width=118),
            "Why": st.column_config.TextColumn("Why (analyzer)", width=190, help="The analyzer's reason; select "
                                               "the row to read it in full below the table"),
            "Stopped by": st.column_config.TextColumn(width=150, help="Why a crashed or stalled run stopped"),
            "Job": st.column_config.TextColumn(width=200),
        })
    rows = event.selection.rows if event is not None else []
    if not rows:
        st.caption("Select a row to open the run or extend it; click a column header to sort.")
        return
    row = runs.iloc[rows[0]]
    run_id = str(row["run_id"])
    reasons = table.loc[table["run_id"] == run_id].get("verdict_reason", pd.Series(dtype=str)).tolist()
    if reasons and isinstance(reasons[0], str) and reasons[0]:
        st.markdown(f"**{row['Verdict']}** — {reasons[0]}")
    left, middle, right = st.columns([1, 1.4, 3])
    left.page_link("views/run.py", label="Open run", icon=":material/monitoring:", query_params={"id": run_id})
    eligible, why = extend_eligibility(store.summary(run_id))
    if middle.button("Extend to 2000 epochs", key="row_extend", disabled=not eligible, help=why or None,
                     icon=":material/update:"):
        open_extend_dialog(run_id)
        st.rerun(scope="app")
    right.caption(f"`{run_id}`")


def _live(store: RunStore, filters: Filters) -> None:
    table, runs, groups = resources.overview_tables(store, resources.jobs())
    if table.empty:
        where = ", ".join(f"`{root}`" for root in store.roots)
        st.info(f"No nnU-Net runs found under {where} yet. nnwatch looks for `fold_N` folders in nnU-Net's "
                "v2 (`Dataset*/Trainer__Plans__config/fold_N`) and v1 layouts; new runs appear here on their own.",
                icon=":material/search_off:")
        for problem in store.problems[:20]:
            st.caption(f"⚠ {problem}")
        return
    if not store.checked:
        done, total = store.progress
        st.caption(f":material/sync: As stored at the last run of nnwatch; checking the runs against their files "
                   f"({done} of {total or len(table)}): changes show as they are found.")
    shown = apply_filters(table, filters)
    visible = runs_of(runs, shown["run_id"])
    if filters.active:
        st.caption(f"Filtered: {len(shown)} of {len(table)} runs. Counts, groups and runs below are those "
                   "that match.", help="Clear the filters in the sidebar to see every run.")
    _metrics(shown, len(table))
    _group_section(groups_frame(shown) if filters.active else groups, store)
    _runs_section(visible, table, store)
    export = shown.drop(columns=[c for c in ("problems", "class_names") if c in shown.columns])
    csv_button(export, f"nnwatch_runs_{safe_name(str(store.root.name))}", key="runs_csv", label="Runs as CSV")
    if store.problems:
        with st.expander(f"{len(store.problems)} folder(s) could not be read"):
            st.markdown("\n".join(f"- {p}" for p in store.problems[:200]))


def page() -> None:
    st.title("Overview")
    store = resources.store()
    if store is None:
        return
    result = st.session_state.get(RESULT_KEY)
    if result:
        st.success(f"Extend job **{result['job_id']}** is {result['state']}.", icon=":material/rocket_launch:")
        st.page_link("views/jobs.py", label="Follow it on the Jobs page", query_params={"job": result["job_id"]})
    table = store.table()
    _sync_from_url(table)
    filters = _sidebar_filters(table)
    refresh = resources.settings().refresh_s

    @st.fragment(run_every=refresh)
    def live() -> None:
        with guard("show the runs"):
            store.poll()
            _live(store, filters)

    live()
    render_extend_dialog()


page()
