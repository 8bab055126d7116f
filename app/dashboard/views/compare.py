"""Compare: the folds of one configuration overlaid with mean ± spread, and a parent run against its extension.

The folds view answers "is this configuration consistent, or is one fold an outlier?"; the pair view
answers "is the longer schedule paying off?" by the one comparison rule of :mod:`monitor.analyze.compare`,
named on the page. A group of folds is one trained model (:class:`~app.dashboard.tables.ModelGroup`: trainer,
plans and results root). Selections are in the URL (``?dataset=…&config=…&trainer=…&plans=…&root=…``,
``?parent=…&child=…``) so a comparison can be shared.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import streamlit as st

from app.dashboard import charts, next_steps, resources
from app.dashboard.compare_data import FoldRow, fold_band, fold_table, with_fraction
from app.dashboard.downloads import (
    chart_config,
    compare_report,
    csv_button,
    dataset_report,
    png_button,
    safe_name,
)
from app.dashboard.lineage import known_pairs
from app.dashboard.roots_store import group_root
from app.dashboard.store import RunStore
from app.dashboard.tables import DEFAULT_PLANS, ModelGroup, model_groups, run_link
from app.dashboard.ui import guard, status_text
from app.dashboard.validation_ui import compare_page_section
from monitor.analyze import COMPARISON_RULE, ComparedRun, Standing, compare_extension, verdict_label

_METRICS = {"ema_fg_dice": "EMA pseudo Dice", "mean_fg_dice": "mean pseudo Dice"}


def _default_index(options: list[Any], wanted: Any) -> int:
    return options.index(wanted) if wanted in options else 0


def _wanted_group(groups: list[ModelGroup]) -> ModelGroup | None:
    """The group the URL names: ``dataset``, ``config`` and ``trainer``, with ``plans`` and ``root`` where given.
    Without ``plans`` (an older link) nnU-Net's default plans come first; without ``root``, the first group in
    the picker's order."""
    query = st.query_params
    wanted = {"dataset": query.get("dataset"), "configuration": query.get("config"), "trainer": query.get("trainer"),
              "plans": query.get("plans"), "root": query.get("root")}
    matching = [g for g in groups if all(value is None or getattr(g, name) == value for name, value in wanted.items())]
    if not matching or None in (wanted["dataset"], wanted["configuration"], wanted["trainer"]):
        return None
    return min(matching, key=lambda g: (g.plans != DEFAULT_PLANS, g))


def _folds(store: RunStore, table: pd.DataFrame) -> None:
    of_rows = model_groups(table)
    counts = Counter(of_rows)
    groups = sorted(counts)
    if not groups:
        st.info("No runs to compare yet.")
        return
    default = _wanted_group(groups) or max(groups, key=lambda g: counts[g])
    cols = st.columns([3, 1.2, 1])
    group = cols[0].selectbox("Dataset · configuration · trainer", groups, index=_default_index(groups, default),
                              format_func=lambda g: f"{g.label} ({counts[g]} fold{'' if counts[g] == 1 else 's'})",
                              key="cmp_group",
                              help="One trained model: its plans are named where they are not nnUNetPlans, and "
                                   "its results root where several are served")
    metric = cols[1].radio("Curve", list(_METRICS), format_func=_METRICS.get, horizontal=True, key="cmp_metric")
    spread = cols[2].radio("Band", ["std", "range"], format_func={"std": "mean ± SD", "range": "min–max"}.get,
                           horizontal=True, key="cmp_spread")
    if not group.root and "root" in st.query_params:
        del st.query_params["root"]
    st.query_params.update(group.query())
    members = table[[g == group for g in of_rows]]

    @st.fragment(run_every=resources.settings().refresh_s)
    def live() -> None:
        with guard("compare these folds"):
            store.poll()
            found = {str(r.fold): store.frame(str(r.run_id)) for r in members.itertuples()}
            frames = {fold: frame for fold, frame in found.items() if frame is not None and len(frame)}
            band = fold_band(frames, metric)
            fig = charts.folds_figure(frames, band, column=metric, label=_METRICS[metric],
                                      spread="std" if spread == "std" else "range")
            name = safe_name(group.name)
            st.plotly_chart(fig, config=chart_config(f"{name}_folds"), key="folds_chart")
            rows = []
            for r in members.itertuples():
                summary, analysis = store.summary(str(r.run_id)), store.analysis(str(r.run_id))
                if summary is None or analysis is None:
                    continue  # removed since the table was built
                rows.append(FoldRow(str(r.fold), status_text(summary.status),
                                    f"{summary.epochs_completed} / {summary.planned_epochs or '?'}",
                                    summary.last_ema_fg_dice, summary.best_ema_fg_dice, summary.final_validation_dice,
                                    verdict_label(analysis), run_link(str(r.run_id))))
            st.dataframe(fold_table(rows), hide_index=True, width="stretch", column_config={
                "Run": st.column_config.LinkColumn("Run", display_text="open run", help="The fold's run page")})
            left, right, _ = st.columns([1, 1, 3])
            with left:
                png_button(dataset_report(group_root(store, group), group.dataset, group.configuration,
                                          group.trainer, plans=group.plans), f"{name}_folds", key="folds_png")
            with right:
                csv_button(band, f"{name}_fold_band", key="folds_csv", label="Band CSV")

    live()
    next_steps.configuration_next_steps(store, group)


def _pick_pair(store: RunStore, table: pd.DataFrame) -> tuple[str, str] | None:
    pairs = known_pairs(store)
    ids = list(table["run_id"])
    query = st.query_params
    wanted = (query.get("parent"), query.get("child"))
    missing = [name for name in wanted if name and name not in ids]
    if missing:
        st.warning("No run " + " and no run ".join(f"`{name}`" for name in missing) + " in this results tree "
                   "(renamed, deleted, or a link from another tree). Pick a pair below.", icon=":material/link_off:")
    options = [(p, c) for p, c, _ in pairs]
    how = {(p, c): h for p, c, h in pairs}
    manual = not options or (all(wanted) and wanted not in options)
    if options:
        manual = st.toggle("Choose the two runs myself", value=manual, key="cmp_manual")
    if not manual:
        pair = st.selectbox("Parent → extended run", options, index=_default_index(options, wanted),
                            format_func=lambda p: f"{p[0]} → {p[1].split('/')[-2]} ({how[p]})", key="cmp_pair")
        return pair
    if not options:
        st.caption("No extended runs found (an nnwatch extend job, or a `<Trainer>_<N>epochs` trainer next to its "
                   "parent). Pick any two runs to compare them.")
    cols = st.columns(2)
    parent = cols[0].selectbox("Parent run", ids, index=_default_index(ids, wanted[0]), key="cmp_parent")
    child = cols[1].selectbox("Extended run", ids, index=_default_index(ids, wanted[1]) if wanted[1] in ids
                              else min(1, len(ids) - 1), key="cmp_child")
    return (parent, child) if parent and child else None


def _pair(store: RunStore, table: pd.DataFrame) -> None:
    if len(table) < 2:
        st.info("Two runs are needed for this comparison.")
        return
    pair = _pick_pair(store, table)
    if pair is None:
        return
    parent_id, child_id = pair
    st.query_params.update({"parent": parent_id, "child": child_id})
    cols = st.columns([1.4, 1, 2])
    x_mode = cols[0].radio("x axis", ["fraction", "epoch"], horizontal=True, key="cmp_x",
                           format_func={"fraction": "fraction of schedule", "epoch": "epochs"}.get)
    metric = cols[1].radio("Curve", list(_METRICS), format_func=_METRICS.get, horizontal=True, key="cmp_pair_metric")
    window = int(cols[2].slider("Smoothing (epochs)", 1, 100, 10, key="cmp_smooth",
                                help="Centred window over the mean pseudo Dice; the EMA is drawn as nnU-Net "
                                     "computed it."))

    @st.fragment(run_every=resources.settings().refresh_s)
    def live() -> None:
        with guard("compare these runs"):
            store.poll()
            parent, child = store.summary(parent_id), store.summary(child_id)
            parent_frame, child_frame = store.frame(parent_id), store.frame(child_id)
            if parent is None or child is None or parent_frame is None or child_frame is None:
                st.info("One of the two runs is no longer in the results tree.")
                return
            p_frame = with_fraction(parent_frame, parent.planned_epochs)
            c_frame = with_fraction(child_frame, child.planned_epochs)
            result = compare_extension(
                ComparedRun.from_frame(parent_id, parent_frame, parent.planned_epochs, parent.status.value),
                ComparedRun.from_frame(child_id, child_frame, child.planned_epochs, child.status.value))
            box = {Standing.AHEAD: st.success, Standing.BEHIND: st.warning}.get(result.standing, st.info)
            box(f"**{result.question}** {result.statement}", icon=":material/compare_arrows:")
            st.caption(f"Comparison rule: **{COMPARISON_RULE}**. {result.rule_description} The chart below is "
                       "drawn by " + ("fraction of schedule." if x_mode == "fraction" else
                                      "epoch, where a longer schedule is expected to be lower at the same epoch."))
            fig = charts.pair_figure(p_frame, c_frame, parent_label=f"parent: {parent.trainer}",
                                     child_label=f"extended: {child.trainer}", x_mode=x_mode,
                                     column=metric, window=window)
            name = safe_name(f"{parent_id}_vs_{child.trainer}")
            st.plotly_chart(fig, config=chart_config(name), key="pair_chart")
            p_loc, c_loc = store.location(parent_id), store.location(child_id)
            left, right, _ = st.columns([1, 1, 3])
            with left:
                if p_loc is not None and c_loc is not None:
                    png_button(compare_report(p_loc.path, c_loc.path, "fraction" if x_mode == "fraction" else "epochs"),
                               name, key="pair_png")
            with right:
                both = pd.concat([p_frame.assign(run="parent"), c_frame.assign(run="extended")], ignore_index=True)
                csv_button(both[["run", "epoch", "fraction", "mean_fg_dice", "ema_fg_dice"]], name, key="pair_csv")

    live()
    compare_page_section(store, parent_id, child_id)


def page() -> None:
    st.title("Compare")
    store = resources.store()
    if store is None:
        return
    table = store.table()
    if table.empty:
        st.info("No runs found in the results tree yet.")
        return
    folds_tab, pair_tab = st.tabs(["Folds of one configuration", "Parent vs extended run"])
    with folds_tab, guard("show the fold comparison"):
        _folds(store, table)
    with pair_tab, guard("show the run comparison"):
        _pair(store, table)


page()
