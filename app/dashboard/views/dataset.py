"""Datasets: the trainers, plans and configurations of one dataset side by side, and the cross-validation table of
each.

``/dataset?dataset=<name>`` picks the dataset, ``&model=<Trainer>__<Plans>__<configuration>`` the configuration
whose cross-validation table is shown (``<root label>/…`` where several results roots are served), so both can be
shared as links.
"""

from __future__ import annotations

import streamlit as st

from app.dashboard import resources
from app.dashboard.dataset_table import dataset_models, only_differing, side_by_side
from app.dashboard.store import RunStore
from app.dashboard.ui import guard
from app.dashboard.validation_ui import crossval_section


def _body(store: RunStore) -> None:
    table = store.table()
    if table.empty:
        st.info("No runs found in the results tree yet.")
        return
    datasets = sorted(set(table["dataset"].astype(str)))
    wanted = st.query_params.get("dataset")
    dataset = st.selectbox("Dataset", datasets, index=datasets.index(wanted) if wanted in datasets else 0,
                           key="ds_dataset")
    if dataset != wanted:
        st.query_params["dataset"] = dataset
        st.query_params.pop("model", None)
    models = dataset_models(store, dataset)
    frame = side_by_side(store, models)
    st.subheader("Which one wins?")
    differing = st.toggle("Only the columns that differ", key="ds_differ")
    shown = only_differing(frame) if differing else frame
    event = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="ds_table", column_config={"model": None})
    st.caption("CV Dice: the real validation Dice (nnU-Net's validation/summary.json) over the validated folds. "
               "The last column compares each row with the highest one case by case on the folds both validated "
               "(paired bootstrap, 95 % interval). Select a row for its cross-validation table.")
    names = [m.key for m in models]
    rows = event.selection.rows if event is not None else []
    chosen = names[rows[0]] if rows else st.query_params.get("model")
    if chosen not in names:
        chosen = names[0] if names else None
    if chosen is None:
        return
    st.query_params["model"] = chosen
    crossval_section(store, str(models[names.index(chosen)].model_dir))


def page() -> None:
    st.title("Datasets")
    store = resources.store()
    if store is None:
        return
    with guard("show this dataset"):
        store.poll()
        _body(store)


page()
