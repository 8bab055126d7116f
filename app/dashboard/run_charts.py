"""The run page's charts: Dice (drawn first) and the loss, learning-rate and epoch-time panels, with their CSVs.

The two figures of a run are built once per run version and smoothing window and shared by every session
(``st.cache_resource``): building them is most of a run page's server time, and a fresh tab or a rerun (a
dialog opening) shows the same figures. The three panels are one figure, one chart for the browser to draw
instead of three: it draws the Dice chart only once the charts sent after it are drawn too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import streamlit as st

from app.dashboard import charts
from app.dashboard.downloads import chart_config, csv_button, safe_name
from app.dashboard.store import RunStore, RunSummary

if TYPE_CHECKING:
    import pandas as pd

    from monitor.analyze import Analysis

__all__ = ["dice_chart", "panels", "run_figures", "warm_figures"]

#: Epochs kept of the run whose figures a page draws hidden (see :func:`warm_figures`).
_WARM_EPOCHS = 50


@st.cache_resource(show_spinner=False, max_entries=32)
def _figures(root: str, run_id: str, version: int, window: int, _store: RunStore) -> tuple[go.Figure, ...]:
    """(Dice, panels) of one run version; shared by every session (plotly_chart copies a figure, it never
    changes it). ``_store`` is not part of the key: ``root`` stands for it."""
    del root, version  # cache keys only
    summary, frame = _store.summary(run_id), _store.frame(run_id)
    if summary is None or frame is None:
        return ()
    return _build(summary, frame, _store.analysis(run_id), window)


def _build(summary: RunSummary, frame: pd.DataFrame, analysis: Analysis | None, window: int) -> tuple[go.Figure, ...]:
    planned = summary.planned_epochs
    return (charts.dice_figure(frame, list(summary.class_names), analysis, window=window, planned_epochs=planned),
            charts.panels_figure(frame, window=window, planned_epochs=planned))


@st.cache_resource(show_spinner=False, max_entries=1)
def _warm_figures(root: str, run_id: str, _store: RunStore) -> str:
    del root  # a cache key
    summary, frame = _store.summary(run_id), _store.frame(run_id)
    if summary is None or frame is None or not len(frame):
        return "[]"
    step = max(1, len(frame) // _WARM_EPOCHS)
    figures = _build(summary, frame.iloc[::step], _store.analysis(run_id), 1)
    return "[" + ",".join(figure.to_json() for figure in figures) + "]"


def warm_figures(store: RunStore) -> str:
    """The run page's figures of one of the store's runs with epochs, thinned to about 50 epochs, as a JSON list
    (``[]`` while no run has one): a page draws them hidden (:func:`app.dashboard.ui.warm_run_page`) so the first
    run page finds Plotly ready."""
    for run_id in store.run_ids()[:20]:
        summary = store.summary(run_id)
        if summary is not None and summary.epochs_completed:
            return _warm_figures(str(store.root), run_id, store)
    return "[]"


def dice_chart(run_id: str, frame: Any, figures: tuple[go.Figure, ...]) -> None:
    name = safe_name(run_id)
    st.plotly_chart(figures[0], config=chart_config(f"{name}_dice"), key="dice_chart")
    dice_cols = ["epoch", *[c for c in frame.columns if c.startswith("dice_")], "mean_fg_dice", "ema_fg_dice"]
    csv_button(frame[[c for c in dice_cols if c in frame.columns]], f"{name}_dice", key="csv_dice")


def panels(run_id: str, frame: Any, figures: tuple[go.Figure, ...]) -> None:
    name = safe_name(run_id)
    st.plotly_chart(figures[1], config=chart_config(f"{name}_panels"), key="panels_chart")
    downloads = (("loss", "Loss CSV", ["epoch", "train_loss", "val_loss"]),
                 ("lr", "Learning rate CSV", ["epoch", "lr"]),
                 ("epoch_time", "Epoch time CSV", ["epoch", "epoch_time_s", "epoch_end"]))
    for col, (key, label, columns) in zip(st.columns(3), downloads):
        with col:
            csv_button(frame[[c for c in columns if c in frame.columns]], f"{name}_{key}", key=f"csv_{key}",
                       label=label)


def run_figures(store: RunStore, run_id: str, window: int) -> tuple[go.Figure, ...]:
    """(Dice, panels) of the run as it is now; empty for an unknown run."""
    version = store.run_version(run_id)
    return () if version is None else _figures(str(store.root), run_id, version, window, store)
