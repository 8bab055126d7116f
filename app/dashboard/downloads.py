"""Download buttons: PNG reports from :mod:`monitor.report.render` and the curves behind every chart as CSV.

PNGs and CSVs are rendered lazily (Streamlit calls the callable only when the button is clicked), because a
report takes a noticeable moment of matplotlib and most page views download nothing. The chart-level PNG of the
figure as seen is plotly's own camera button, configured here with a readable file name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from monitor.numbers import csv_text

if TYPE_CHECKING:
    from monitor.analyze import Analysis

__all__ = ["chart_config", "compare_report", "csv_button", "dataset_report", "png_button", "run_report",
           "safe_name"]

Render = Callable[[], bytes]


def safe_name(text: str) -> str:
    """A file-name-safe version of a run id or title."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "nnwatch"


def chart_config(name: str) -> dict[str, Any]:
    """plotly config: the camera button saves a 2× PNG named after the chart."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": safe_name(name), "scale": 2},
            "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def csv_button(frame: pd.DataFrame, name: str, *, key: str, label: str = "CSV") -> None:
    """The frame as CSV (timestamps ISO-8601), written only when clicked: a page shows several and most views
    download none."""

    def render() -> bytes:
        return csv_text(frame).encode("utf-8")

    st.download_button(f":material/download: {label}", data=render,
                       file_name=f"{safe_name(name)}.csv", mime="text/csv", key=key, on_click="ignore",
                       help="The numbers behind this chart, one row per epoch")


def png_button(render: Callable[[], bytes], name: str, *, key: str, label: str = "PNG report",
               disabled: bool = False, help: str | None = None) -> None:
    """A PNG rendered by ``render`` only when clicked."""
    st.download_button(f":material/image: {label}", data=render, file_name=f"{safe_name(name)}.png",
                       mime="image/png", key=key, on_click="ignore", disabled=disabled,
                       help=help or "A slide-ready PNG drawn by nnwatch's report renderer")


def run_report(run_dir: Path, analysis: Analysis | None, smooth: int) -> Render:
    """The run report (verdict, four panels, numbers) with the page's smoothing and verdict."""

    def render() -> bytes:
        from monitor.report.render import render_run_report

        return render_run_report(run_dir, analysis=analysis, smooth=smooth)

    return render


def dataset_report(root: Path, dataset: str, configuration: str, trainer: str, plans: str | None = None) -> Render:
    """All folds of one model (dataset × configuration × trainer, and plans where given) under ``root``:
    overlay, mean ± SD, per-fold table."""

    def render() -> bytes:
        from monitor.report.render import render_dataset_report

        return render_dataset_report(root, dataset, configuration, trainer, plans=plans)

    return render


def compare_report(parent_dir: Path, child_dir: Path, x: str) -> Render:
    """A parent run and its extension on one chart, by ``x`` = "epochs" or "fraction" of schedule."""

    def render() -> bytes:
        from monitor.report.render import render_compare_report

        return render_compare_report(parent_dir, child_dir, x=x)

    return render
