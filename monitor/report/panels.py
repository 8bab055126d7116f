"""The chart panels of a run report: pseudo Dice with the analyzer's fit, loss, learning rate, epoch time.

Each draws into the axes it is given, so the run, dataset and compare layouts reuse them. With smoothing on,
raw values stay as faint lines under the smoothed curve: trend and noise at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from monitor.analyze import smooth as smooth_curve
from monitor.report.data import RunData
from monitor.report.layout import fit_text, signed
from monitor.report.style import Canvas, class_style, dice_limits, hidden_note

__all__ = [
    "LegendEntry",
    "draw_dice",
    "draw_epoch_time",
    "draw_loss",
    "draw_lr",
    "legend",
    "legend_in_figure",
    "panel_title",
    "resolve_smooth",
    "robust_ylim",
    "set_dice_ylim",
    "set_epoch_axis",
    "x_limit",
]

FAINT = 0.28  # alpha of raw curves under a smoothed one
LegendEntry = tuple[Artist, str]
MARKERS_BELOW = 30  # points: fewer epochs than this get markers, a 3-epoch run must still be visible


def resolve_smooth(smooth: int | None, n_epochs: int) -> int:
    """The smoothing window actually used: ``None`` picks ~2 % of the run (20 for 1000 epochs), off below 100."""
    if smooth is None:
        return int(round(n_epochs / 50)) if n_epochs >= 100 else 0
    return int(smooth) if smooth > 1 else 0


def x_limit(epochs_done: int, planned: int | None) -> float:
    """Right end of the epoch axis: the whole schedule (so "stopped at 60 %" shows), unless the run has done
    under 10 % of it and would be a sliver at the left edge."""
    if planned and planned >= epochs_done and epochs_done >= 0.1 * planned:
        return float(planned)
    return float(max(epochs_done, 10))


def set_epoch_axis(ax: Axes, canvas: Canvas, right: float) -> None:
    ax.set_xlim(0, right)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.set_xlabel("epoch", fontsize=canvas.pt(15), color=canvas.theme.muted, labelpad=canvas.pt(2))


def panel_title(ax: Axes, canvas: Canvas, title: str) -> None:
    # A fixed y skips matplotlib's automatic title placement, which measures every tick label.
    ax.set_title(title, loc="left", fontsize=canvas.pt(17), fontweight="bold", color=canvas.theme.text,
                 pad=canvas.pt(8), y=1.0)


def no_data(ax: Axes, canvas: Canvas, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=canvas.pt(15),
            color=canvas.theme.muted)
    ax.set_yticks([])


def _line(ax: Axes, canvas: Canvas, x: np.ndarray, y: np.ndarray, *, colour: str, width: float,
          smooth: int, dash: Any = "-", label: str | None = None, zorder: float = 2.0) -> Line2D | None:
    """A curve, raw-faint-plus-smoothed when smoothing is on; markers when there are only a few points."""
    finite = np.isfinite(y)
    if not finite.any():
        return None
    marker = "o" if finite.sum() < MARKERS_BELOW else None
    style: dict[str, Any] = {"marker": marker, "markersize": canvas.pt(7), "solid_capstyle": "round"}
    if smooth:
        ax.plot(x, y, color=colour, linewidth=canvas.pt(1.2), alpha=FAINT, zorder=zorder - 0.5)
        y = smooth_curve(y, smooth)
    (line,) = ax.plot(x, y, color=colour, linewidth=canvas.pt(width), linestyle=dash, label=label,
                      zorder=zorder, **style)
    return line


def draw_dice(ax: Axes, canvas: Canvas, data: RunData, smooth: int, right: float) -> list[LegendEntry]:
    """Per-class pseudo Dice, their mean, nnU-Net's EMA, the analyzer's window and fit; returns legend entries."""
    theme = canvas.theme
    x = data.epoch
    entries: list[LegendEntry] = []
    window = data.analysis.window
    if window is not None:
        band = ax.axvspan(window[0], window[1] + 1, color=theme.window, zorder=0.5, linewidth=0)
        entries.append((band, f"analysis window {window[0]}–{window[1]}"))
    for k, (column, name) in enumerate(zip(data.dice_columns, data.class_names)):
        colour, dash = class_style(theme, k)
        line = _line(ax, canvas, x, data.column(column), colour=colour, width=2.2, smooth=smooth, dash=dash)
        proxy = line if line is not None else Line2D([], [], color=colour, linestyle=dash,
                                                     linewidth=canvas.pt(2.2), alpha=FAINT)
        entries.append((proxy, name if line is not None else f"{name} (no values)"))
    mean = _line(ax, canvas, x, data.column("mean_fg_dice"), colour=theme.muted, width=1.3, smooth=0,
                 zorder=2.5)
    if mean is not None:
        mean.set_alpha(0.45)  # reads as the noise around the EMA, not as another class (grey vs green for deuteranopes)
        entries.append((mean, "mean (raw)"))
    ema_line = _line(ax, canvas, x, data.column("ema_fg_dice"), colour=theme.strong, width=3.4, smooth=0,
                     zorder=3)
    if ema_line is not None:
        entries.append((ema_line, "EMA (nnU-Net)"))
    series = [data.column(c) for c in data.dice_columns] + [data.column("ema_fg_dice")]
    set_dice_ylim(ax, data.epoch, series, canvas)
    fit = data.analysis.fit
    if fit is not None:
        xs = np.array([fit.first_epoch, fit.last_epoch], dtype=float)
        # A broad translucent ribbon: told apart from data lines by width (all colours belong to classes).
        (fit_line,) = ax.plot(xs, [fit.value_at(v) for v in xs], color=theme.strong, alpha=0.3,
                              linewidth=canvas.pt(13.0), zorder=2.8, solid_capstyle="butt")
        entries.append((fit_line, "trend fit (analyzer)"))
        _slope_note(ax, canvas, data, right, series)
    _stop_marker(ax, canvas, data)
    return entries


def set_dice_ylim(ax: Axes, epoch: np.ndarray, series: Sequence[np.ndarray] | np.ndarray,
                  canvas: Canvas | None = None) -> None:
    """:func:`dice_limits` on the axes; with ``canvas``, the note on hidden first epochs in the lower left."""
    low, high, hidden = dice_limits(epoch, series)
    ax.set_ylim(low, high)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    note = hidden_note(low, hidden)
    if note is not None and canvas is not None:
        ax.text(0.99, 0.02, f"↓ {note}", transform=ax.transAxes, ha="right", va="bottom", fontsize=canvas.pt(12),
                color=canvas.theme.muted, zorder=5,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": canvas.theme.background, "alpha": 0.85,
                      "edgecolor": "none"})


def slope_text(data: RunData) -> str | None:
    """"+0.009 / 100 ep (95 % CI +0.004 … +0.014)" in Dice units, or None without a fit."""
    analysis = data.analysis
    if analysis.slope_per_100_epochs is None:
        return None
    text = f"slope {signed(analysis.slope_per_100_epochs, 4)} Dice / 100 epochs"
    if analysis.slope_ci95 is not None:
        lo, hi = analysis.slope_ci95
        text += f"\n95 % CI {signed(lo, 4)} … {signed(hi, 4)}"
    return text


def _slope_note(ax: Axes, canvas: Canvas, data: RunData, right: float, series: Sequence[np.ndarray]) -> None:
    """The slope beside the fit where it covers no curve: after a window that ends early, else in the widest
    gap between the curves inside the window, else at the top."""
    text, window = slope_text(data), data.analysis.window
    if text is None or window is None:
        return
    end = window[1] + 1
    style: dict[str, Any] = {
        "fontsize": canvas.pt(14), "color": canvas.theme.text, "zorder": 5, "textcoords": "offset points",
        "bbox": {"boxstyle": "round,pad=0.3", "facecolor": canvas.theme.background, "alpha": 0.85, "edgecolor": "none"},
    }
    if end < 0.7 * right:
        ax.annotate(text, xy=(end, 0.97), xycoords=("data", "axes fraction"), xytext=(canvas.pt(10), 0),
                    ha="left", va="top", **style)
        return
    inside = (data.epoch >= window[0]) & (data.epoch <= window[1])
    need = (2 * 14 * 1.35 + 14) * canvas.unit / (ax.get_position().height * canvas.height)
    low, high = _widest_gap(ax, [y[inside] for y in series])
    if high - low >= need:
        y, va = (low + high) / 2, "center"
    else:
        y, va = 0.97, "top"
    ax.annotate(text, xy=(end, y), xycoords=("data", "axes fraction"), xytext=(-canvas.pt(6), 0), ha="right",
                va=va, **style)


def _widest_gap(ax: Axes, series: Sequence[np.ndarray]) -> tuple[float, float]:
    """The tallest band (axes fraction) that no curve's 3rd–97th percentile range covers."""
    bottom, top = ax.get_ylim()
    spans = []
    for values in series:
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = np.percentile(values, [3, 97])
            spans.append(((lo - bottom) / (top - bottom), (hi - bottom) / (top - bottom)))
    best, cursor = (0.0, 0.0), 0.0
    for lo, hi in sorted(spans):
        if lo - cursor > best[1] - best[0]:
            best = (cursor, lo)
        cursor = max(cursor, hi)
    return best if 1.0 - cursor <= best[1] - best[0] else (cursor, 1.0)


def _stop_marker(ax: Axes, canvas: Canvas, data: RunData) -> None:
    """A labelled line where an unfinished run's curves end ("crashed", "stalled", "running")."""
    status = data.summary.get("status")
    if status not in ("crashed", "stalled", "running"):
        return
    end = data.last_epoch + 1
    ax.axvline(end, color=canvas.theme.muted, linewidth=canvas.pt(1.6), linestyle=(0, (2, 2)), zorder=1)
    ax.annotate(status, xy=(end, 0.03), xycoords=("data", "axes fraction"), xytext=(canvas.pt(5), 0),
                textcoords="offset points", ha="left", va="bottom", fontsize=canvas.pt(14), fontstyle="italic",
                color=canvas.theme.muted)


def draw_loss(ax: Axes, canvas: Canvas, data: RunData, smooth: int) -> None:
    """Train and validation loss (nnU-Net's Dice+CE is negative: lower is better)."""
    theme = canvas.theme
    lines = []
    for k, (column, label) in enumerate((("train_loss", "train"), ("val_loss", "validation"))):
        colour, _ = class_style(theme, k)
        line = _line(ax, canvas, data.epoch, data.column(column), colour=colour, width=2.2, smooth=smooth,
                     label=label)
        if line is not None:
            lines.append(line)
    if not lines:
        no_data(ax, canvas, "no loss logged")
        return
    robust_ylim(ax, np.concatenate([data.column("train_loss"), data.column("val_loss")]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    legend(ax, canvas, lines, [str(line.get_label()) for line in lines], loc="upper right")


def draw_lr(ax: Axes, canvas: Canvas, data: RunData) -> None:
    """Learning rate on a log axis: nnU-Net's poly schedule bends down steeply only at the very end."""
    lr = data.column("lr")
    positive = np.isfinite(lr) & (lr > 0)
    if not positive.any():
        no_data(ax, canvas, "no learning rate logged")
        return
    colour, _ = class_style(canvas.theme, 2)
    _line(ax, canvas, data.epoch[positive], lr[positive], colour=colour, width=2.4, smooth=0)
    ax.set_yscale("log")
    low, high = float(lr[positive].min()), float(lr[positive].max())
    ax.set_ylim(10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high) + 1e-9))
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
    ax.yaxis.set_major_formatter(FuncFormatter(_lr_label))
    ax.yaxis.set_minor_locator(NullLocator())  # dozens of minor tick objects cost more than they tell


def _lr_label(value: float, _pos: float) -> str:
    """0.01, 0.001, 1e-04: short, and no mathtext (slow to typeset)."""
    return f"{value:g}" if value >= 1e-3 else f"{value:.0e}"


def draw_epoch_time(ax: Axes, canvas: Canvas, data: RunData) -> None:
    """Seconds per epoch with the median; the axis ignores the slow first epoch (compilation, caching)."""
    seconds = data.column("epoch_time_s")
    finite = np.isfinite(seconds)
    if not finite.any():
        no_data(ax, canvas, "no epoch times logged")
        return
    colour, _ = class_style(canvas.theme, 3)
    _line(ax, canvas, data.epoch, seconds, colour=colour, width=1.8, smooth=0)
    median = float(np.median(seconds[finite]))
    ax.plot(data.epoch[[0, -1]], [median, median], color=canvas.theme.muted, linewidth=canvas.pt(1.6),
            linestyle=(0, (4, 2)), zorder=2.5)
    top = float(np.percentile(seconds[finite], 99)) * 1.25
    ax.set_ylim(0, max(top, median * 1.3, 1e-3))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.text(0.98, 0.06, f"median {_duration(median)}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=canvas.pt(14), color=canvas.theme.text,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": canvas.theme.background, "alpha": 0.85,
                  "edgecolor": "none"})


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def robust_ylim(ax: Axes, values: np.ndarray) -> None:
    """Limits from the 1st–99th percentile, so one diverged epoch does not flatten the whole curve."""
    values = values[np.isfinite(values)]
    if not values.size:
        return
    low, high = np.percentile(values, [1, 99])
    pad = max((high - low) * 0.08, 1e-3)
    ax.set_ylim(low - pad, high + pad)


def legend(ax: Axes, canvas: Canvas, handles: Sequence[Artist], labels: Sequence[str], **kwargs: Any) -> None:
    theme = canvas.theme
    ax.legend(handles, labels, fontsize=canvas.pt(14), frameon=True, facecolor=theme.background,
              edgecolor=theme.grid, framealpha=0.9, labelcolor=theme.text, handlelength=1.8,
              **kwargs)


def legend_in_figure(canvas: Canvas, entries: Sequence[LegendEntry], left: float, top: float,
                     width: float, height: float) -> None:
    """A frameless legend in a box of the figure (logical pixels), labels shortened to fit its width; many
    classes shrink the text to fit the height, down to 10 px, then go into two columns."""
    if not entries:
        return
    u = canvas.unit
    per_line = 1.55  # line height in font sizes, with labelspacing 0.55
    size = min(14.0, height / (len(entries) * per_line * u))
    columns = 1
    if size < 10.0:
        columns = 2
        size = max(8.0, min(14.0, height / (math.ceil(len(entries) / 2) * per_line * u)))
    labels = [fit_text(label, width / columns - 50 * u, size * u) for _, label in entries]
    canvas.figure.legend([h for h, _ in entries], labels, loc="upper left", ncols=columns,
                         bbox_to_anchor=(left / canvas.width, 1.0 - top / canvas.height),
                         fontsize=canvas.pt(size), frameon=False, labelcolor=canvas.theme.text,
                         handlelength=2.0, borderaxespad=0.0, borderpad=0.0, labelspacing=0.55,
                         columnspacing=1.0)
