"""Plotly figures for the Run and Compare pages, built from monitor's frames and the analyzer's answer.

They draw what the PNG reports draw, in the same style (:mod:`monitor.report.style`): each class in the
report's colour-blind-safe colour, smoothed by :func:`monitor.analyze.smooth` (the one centred window, which
does not lag) with the raw curve as a faint shadow, so smoothing can never hide a collapse; the mean pseudo
Dice raw in grey; nnU-Net's EMA (the merged run's, as in the report) thick in black; the analyzer's window
shaded and its Theil–Sen fit as a broad translucent ribbon. The Dice axis is the report's
(:func:`monitor.report.style.dice_limits`) and says when it hides the first epochs. Hover values have 4
decimals and full names. The x axis spans the planned schedule, so a running run shows how much is left.

Each figure is assembled as plain traces and one layout, then validated once by ``go.Figure``: plotly's
``update_*`` and ``add_*`` helpers validate the whole figure again at every call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from monitor.analyze import signed, smooth
from monitor.report.style import THEMES, class_style, dice_limits, hidden_note

if TYPE_CHECKING:
    from monitor.analyze import Analysis

__all__ = [
    "PALETTE",
    "dice_figure",
    "folds_figure",
    "pair_figure",
    "panels_figure",
]

_THEME = THEMES["light"]  # the report's light theme: the same colours on screen and in the PNG
PALETTE = _THEME.palette
MEAN_COLOUR = _THEME.strong  # the EMA and the across-fold mean, as in the report
RAW_MEAN_COLOUR = _THEME.muted
WINDOW_COLOUR = _THEME.window
TITLE_COLOUR = "#31333F"  # Streamlit's text colour, which it gives the figures' own titles
_FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
_DASH = {"-": "solid", (0, (5, 2)): "dash", (0, (1.5, 1.5)): "dot", (0, (6, 2, 1.5, 2)): "dashdot"}
_HOVER = "%{y:.4f}"
# Every figure's template. Named in each figure's layout, plotly validates the whole template again for every
# figure; as the default it is applied as it is.
pio.templates.default = "plotly_white"
_GRID = {"showgrid": True, "gridcolor": "#EEF0F3", "zeroline": False}


def _class_line(k: int) -> tuple[str, str]:
    colour, dash = class_style(_THEME, k)
    return colour, _DASH.get(dash, "solid")


Trace = dict[str, Any]


def _layout(title: str, y_title: str, *, height: int = 360, x_max: float | None = None,
            x_title: str = "epoch") -> dict[str, Any]:
    xaxis: dict[str, Any] = {"title": {"text": x_title}, **_GRID}
    if x_max:
        xaxis["range"] = [0, x_max]
    return {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}}, "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 45}, "font": {"family": _FONT, "size": 12},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0,
                   "traceorder": "normal"},
        "hovermode": "x unified", "hoverlabel": {"namelength": -1, "font": {"size": 12}},
        "xaxis": xaxis, "yaxis": {"title": {"text": y_title}, **_GRID}, "shapes": [], "annotations": [],
    }


def _figure(traces: list[Trace], layout: dict[str, Any]) -> go.Figure:
    for key in ("shapes", "annotations"):
        if not layout[key]:
            del layout[key]
    return go.Figure(data=[{"type": "scatter", "mode": "lines", **trace} for trace in traces], layout=layout)


def _shadowed(x: pd.Series, y: pd.Series, *, name: str, colour: str, window: int, width: float = 1.6,
              dash: str | None = None, group: str | None = None) -> list[Trace]:
    """A faint raw trace plus its smoothed line in the same colour (one legend entry)."""
    group = group or name
    traces: list[Trace] = []
    if window > 1:
        traces.append({"x": x, "y": y, "name": f"{name} (raw)", "legendgroup": group, "showlegend": False,
                       "line": {"color": colour, "width": 1}, "opacity": 0.22, "hoverinfo": "skip"})
    smoothed = smooth(y.to_numpy(dtype=float, na_value=np.nan), window)
    traces.append({"x": x, "y": smoothed, "name": name, "legendgroup": group, "hovertemplate": _HOVER,
                   "line": {"color": colour, "width": width, "dash": dash}})
    return traces


def dice_figure(frame: pd.DataFrame, class_names: Sequence[str], analysis: Analysis | None, *, window: int = 1,
                planned_epochs: int | None = None) -> go.Figure:
    """Pseudo Dice per class, their mean, nnU-Net's EMA, and the analyzer's window and fit, as the PNG draws them."""
    x = frame["epoch"]
    layout = _layout("Validation pseudo Dice", "Dice", height=430,
                     x_max=max(planned_epochs or 0, int(x.max()) + 1 if len(x) else 1))
    traces: list[Trace] = []
    dice_columns = sorted((c for c in frame.columns if c.startswith("dice_")), key=lambda c: int(c[5:]))
    if analysis is not None and analysis.window is not None:
        first, last = analysis.window
        layout["shapes"].append({"type": "rect", "xref": "x", "yref": "y domain", "x0": first, "x1": last + 1,
                                 "y0": 0, "y1": 1, "fillcolor": WINDOW_COLOUR, "opacity": 0.8,
                                 "line": {"width": 0}, "layer": "below"})
        layout["annotations"].append({"text": f"analysis window {first}–{last}", "xref": "x", "x": first,
                                      "xanchor": "left", "yref": "y domain", "y": 1, "yanchor": "top",
                                      "showarrow": False, "font": {"size": 11, "color": RAW_MEAN_COLOUR}})
    for k, column in enumerate(dice_columns):
        label = class_names[k] if k < len(class_names) else f"class {k + 1}"
        colour, dash = _class_line(k)
        traces += _shadowed(x, frame[column], name=label, colour=colour, window=window, width=2.0, dash=dash)
    if "mean_fg_dice" in frame.columns:
        traces.append({"x": x, "y": frame["mean_fg_dice"], "name": "mean (raw)", "opacity": 0.45,
                       "hovertemplate": _HOVER, "line": {"color": RAW_MEAN_COLOUR, "width": 1.2}})
    if "ema_fg_dice" in frame.columns:
        traces.append({"x": x, "y": frame["ema_fg_dice"], "name": "EMA (nnU-Net)", "hovertemplate": _HOVER,
                       "line": {"color": MEAN_COLOUR, "width": 3.0}})
    if analysis is not None and analysis.fit is not None:
        fit = analysis.fit
        slope = analysis.slope_per_100_epochs or 0.0
        traces.append({"x": [fit.first_epoch, fit.last_epoch],
                       "y": [fit.value_at(fit.first_epoch), fit.value_at(fit.last_epoch)],
                       "name": f"trend fit (analyzer), {signed(slope, 4)} / 100 ep", "opacity": 0.3,
                       "hovertemplate": _HOVER, "line": {"color": MEAN_COLOUR, "width": 11}})
    series = [frame[c].to_numpy(dtype=float, na_value=np.nan) for c in [*dice_columns, "ema_fg_dice"]
              if c in frame.columns]
    if len(frame) and series:
        _dice_axis(layout, [frame], "", note=True, series=series)
    return _figure(traces, layout)


#: The run page's three small panels side by side in one figure (one chart to draw, not three): x domains,
#: titles and y axis titles.
_PANELS = (((0.0, 0.28), "Loss", "loss (Dice + CE)"), ((0.36, 0.64), "Learning rate", "learning rate (log scale)"),
           ((0.72, 1.0), "Epoch time", "seconds"))


def panels_figure(frame: pd.DataFrame, *, window: int = 1, planned_epochs: int | None = None) -> go.Figure:
    """Loss (train and validation, smoothed over ``window``), the learning rate on a log axis, and the epoch
    time with its median, side by side on the planned schedule."""
    x_max = _x_max(frame, planned_epochs)
    layout = _layout("", "", x_max=x_max)
    del layout["title"]
    layout["margin"]["t"] = 40
    layout["legend"].update(orientation="v", x=0.28, y=1.0, xanchor="right", yanchor="top",
                            bgcolor="rgba(255,255,255,0.7)", font={"size": 11})
    for k, ((low, high), title, y_title) in enumerate(_PANELS, start=1):
        suffix = "" if k == 1 else str(k)
        layout[f"xaxis{suffix}"] = {**layout["xaxis"], "domain": [low, high], "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {"title": {"text": y_title}, **_GRID, "anchor": f"x{suffix}"}
        layout["annotations"].append({"text": title, "xref": "paper", "yref": "paper", "x": low, "y": 1.0,
                                      "xanchor": "left", "yanchor": "bottom", "showarrow": False,
                                      "font": {"size": 15, "color": TITLE_COLOUR}})
    traces = [*_shadowed(frame["epoch"], frame["train_loss"], name="train loss", colour=PALETTE[0], window=window),
              *_shadowed(frame["epoch"], frame["val_loss"], name="validation loss", colour=PALETTE[1],
                         window=window)]
    layout["yaxis2"].update(type="log", exponentformat="power")
    traces.append({"x": frame["epoch"], "y": frame["lr"].where(frame["lr"] > 0), "name": "learning rate",
                   "hovertemplate": "%{y:.3g}", "line": {"color": PALETTE[2], "width": 2}, "showlegend": False,
                   "xaxis": "x2", "yaxis": "y2"})
    traces.append({"x": frame["epoch"], "y": frame["epoch_time_s"], "name": "epoch time", "showlegend": False,
                   "hovertemplate": "%{y:.1f} s", "line": {"color": PALETTE[3], "width": 1.4},
                   "xaxis": "x3", "yaxis": "y3"})
    median = frame["epoch_time_s"].median()
    if pd.notna(median):
        layout["shapes"].append({"type": "line", "xref": "x3 domain", "x0": 0, "x1": 1, "yref": "y3",
                                 "y0": float(median), "y1": float(median),
                                 "line": {"color": "#6B7280", "dash": "dash"}})
        layout["annotations"].append({"text": f"median {median:.0f} s", "xref": "x3 domain", "x": 1,
                                      "xanchor": "right", "yref": "y3", "y": float(median), "yanchor": "bottom",
                                      "showarrow": False, "font": {"size": 11, "color": "#374151"},
                                      "bgcolor": "rgba(255,255,255,0.8)"})
    values = frame["epoch_time_s"].dropna()
    if len(values):  # from 0, so jitter of a second does not look like chaos; rare spikes may clip
        layout["yaxis3"]["range"] = [0, float(values.quantile(0.99)) * 1.25]
    return _figure(traces, layout)


def _x_max(frame: pd.DataFrame, planned_epochs: int | None) -> float:
    last = int(frame["epoch"].max()) + 1 if len(frame) else 1
    return float(max(planned_epochs or 0, last))


def folds_figure(frames: Mapping[str, pd.DataFrame], band: pd.DataFrame, *, column: str = "ema_fg_dice",
                 label: str = "EMA pseudo Dice", spread: str = "std") -> go.Figure:
    """Every fold as a thin line, the mean across folds bold, and mean ± SD (or min–max) as a band."""
    traces: list[Trace] = []
    if len(band):
        low = band["mean"] - band["std"] if spread == "std" else band["min"]
        high = band["mean"] + band["std"] if spread == "std" else band["max"]
        traces.append({"x": band["epoch"], "y": high, "line": {"width": 0}, "showlegend": False,
                       "hoverinfo": "skip"})
        traces.append({"x": band["epoch"], "y": low, "line": {"width": 0}, "fill": "tonexty",
                       "fillcolor": "rgba(15,118,110,0.15)",
                       "name": "mean ± SD" if spread == "std" else "min–max", "hoverinfo": "skip"})
    for k, (fold, frame) in enumerate(sorted(frames.items())):
        if column in frame.columns and len(frame):
            traces.append({"x": frame["epoch"], "y": frame[column], "name": f"fold {fold}", "hovertemplate": _HOVER,
                           "line": {"color": PALETTE[k % len(PALETTE)], "width": 1.1}, "opacity": 0.75})
    if len(band):
        traces.append({"x": band["epoch"], "y": band["mean"], "name": "mean of folds", "hovertemplate": _HOVER,
                       "line": {"color": MEAN_COLOUR, "width": 2.6}})
    layout = _layout(f"{label} across folds", label, height=430)
    _dice_axis(layout, [f for f in frames.values() if column in f.columns and len(f)], column, note=True)
    return _figure(traces, layout)


def _dice_axis(layout: dict[str, Any], frames: Sequence[pd.DataFrame], column: str, *, note: bool,
               series: Sequence[np.ndarray] | None = None) -> None:
    """The report's Dice axis (:func:`monitor.report.style.dice_limits`) over ``column`` of frames aligned by
    epoch (or over ``series`` of the one frame), and the note when it hides the first epochs."""
    if not frames:
        return
    length = int(max(f["epoch"].max() for f in frames)) + 1
    if series is not None:
        epochs_x, rows = frames[0]["epoch"].to_numpy(dtype=float), list(series)
    else:
        matrix = np.full((len(frames), length), np.nan)
        for k, f in enumerate(frames):
            epochs = f["epoch"].to_numpy(dtype=np.int64)
            keep = (epochs >= 0) & (epochs < length)
            matrix[k, epochs[keep]] = f[column].to_numpy(dtype=float, na_value=np.nan)[keep]
        epochs_x, rows = np.arange(length, dtype=float), list(matrix)
    low, high, hidden = dice_limits(epochs_x, rows)
    layout["yaxis"]["range"] = [low, high]
    text = hidden_note(low, hidden) if note else None
    if text is not None:
        layout["annotations"].append({"text": f"↓ {text} (double-click the chart to see them)", "xref": "paper",
                                      "yref": "paper", "x": 1.0, "y": 0.0, "xanchor": "right", "yanchor": "bottom",
                                      "showarrow": False, "font": {"size": 11, "color": RAW_MEAN_COLOUR},
                                      "bgcolor": "rgba(255,255,255,0.8)"})


def pair_figure(parent: pd.DataFrame, child: pd.DataFrame, *, parent_label: str, child_label: str,
                x_mode: str = "epoch", column: str = "ema_fg_dice", window: int = 1) -> go.Figure:
    """Parent and extended run on one chart, as the compare PNG draws them: the raw mean pseudo Dice faint, and
    solid nnU-Net's EMA (``column`` "ema_fg_dice", never smoothed again) or the mean smoothed over ``window``
    epochs. ``x_mode`` "fraction" puts both on 0–100 % of schedule."""
    traces: list[Trace] = []
    x_col = "fraction" if x_mode == "fraction" else "epoch"
    for frame, label, colour in ((parent, parent_label, PALETTE[0]), (child, child_label, PALETTE[1])):
        if not len(frame) or column not in frame.columns:
            continue
        if column == "ema_fg_dice":
            if "mean_fg_dice" in frame.columns:
                traces.append({"x": frame[x_col], "y": frame["mean_fg_dice"], "name": f"{label} (raw)",
                               "legendgroup": label, "showlegend": False, "opacity": 0.28, "hoverinfo": "skip",
                               "line": {"color": colour, "width": 1}})
            traces.append({"x": frame[x_col], "y": frame[column], "name": label, "legendgroup": label,
                           "hovertemplate": _HOVER, "line": {"color": colour, "width": 2.6}})
        else:
            traces += _shadowed(frame[x_col], frame[column], name=label, colour=colour, window=window, width=2.2)
    title = "Parent vs extended run" + (" at the same fraction of schedule" if x_col == "fraction" else "")
    layout = _layout(title, "EMA pseudo Dice" if column == "ema_fg_dice" else "mean pseudo Dice", height=430,
                     x_title="fraction of schedule" if x_col == "fraction" else "epoch")
    if x_col == "fraction":
        layout["xaxis"].update(range=[0, 1], tickformat=".0%")
    _dice_axis(layout, [f for f in (parent, child) if len(f) and column in f.columns], column, note=x_col == "epoch")
    return _figure(traces, layout)
