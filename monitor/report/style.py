"""Look of every chart, the PNG reports' and the dashboard's: themes, a colour-blind-safe palette and the Dice
axis; then the reports' sizes in pixels and PNG encoding. matplotlib is imported only to draw a report, so the
dashboard's Plotly charts share this look without loading it.

Reports are laid out in *logical pixels* and rendered at ``scale`` times that, so a 3× image has exactly the
layout of the 1× one: the figure is ``width/100`` inches at ``100·scale`` dpi. Colours are Okabe & Ito's
(distinguishable under colour-vision deficiencies); black (white when dark) marks the EMA and fold mean.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BASE_DPI",
    "THEMES",
    "Canvas",
    "ReportOptions",
    "Theme",
    "class_style",
    "dice_limits",
    "figure_to_png",
    "fold_style",
    "hidden_note",
    "new_canvas",
    "panel_boxes",
    "report_png",
]

BASE_DPI = 100.0
# Okabe–Ito without yellow and black: blue, vermillion, bluish green, reddish purple, orange, sky blue.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
# Beyond six classes the colours repeat with another dash pattern (colour alone cannot carry 13 labels).
_DASHES = ("-", (0, (5, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1.5, 2)))
VERDICT_COLOURS = {"improving": "#009E73", "plateau": "#0072B2", "declining": "#D55E00",
                   "insufficient_data": "#767676"}

# Matplotlib's text caches are shared between figures and the dashboard renders from several threads, so
# drawing is serialised (it is CPU-bound under the GIL anyway).
_DRAW_LOCK = threading.Lock()


@dataclass(frozen=True)
class Theme:
    """Colours of one theme; ``light`` is the default because it projects well in a lit room."""

    name: str
    background: str
    panel: str
    text: str
    muted: str
    grid: str
    strong: str  # EMA, across-fold mean
    window: str  # the analyzer's window band
    palette: tuple[str, ...] = OKABE_ITO


THEMES = {
    "light": Theme("light", background="#FFFFFF", panel="#FFFFFF", text="#1A1A1A", muted="#5F5F5F",
                   grid="#DADADA", strong="#000000", window="#E8E8E8"),
    "dark": Theme("dark", background="#0E1117", panel="#0E1117", text="#F0F0F0", muted="#A8A8A8",
                  grid="#3A3F4A", strong="#FFFFFF", window="#2A2F3A",
                  palette=("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")),
}


# Folds get a dash pattern as well as a colour: a protanope cannot tell five hues apart.
_FOLD_DASHES = ("-", (0, (6, 2)), (0, (1.5, 1.2)), (0, (7, 2, 1.5, 2)), (0, (3, 1.5)))


def fold_style(theme: Theme, index: int) -> tuple[str, Any]:
    """Colour and dash pattern of the ``index``-th fold (or run) on an overlay chart."""
    return theme.palette[index % len(theme.palette)], _FOLD_DASHES[index % len(_FOLD_DASHES)]


def class_style(theme: Theme, index: int) -> tuple[str, Any]:
    """Colour and dash pattern of the ``index``-th class (or fold, or run)."""
    colours = theme.palette
    return colours[index % len(colours)], _DASHES[(index // len(colours)) % len(_DASHES)]


@dataclass(frozen=True)
class ReportOptions:
    """Size and look of one report, checked before any reading or drawing. ``smooth``: window in epochs
    (``None``: about 2 % of the run, 0 or 1: off); ``now`` fixes the footer stamp."""

    width: int = 1600
    height: int = 1000
    scale: float = 1.0
    smooth: int | None = None
    theme: str = "light"
    now: datetime | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (320 <= int(self.width) <= 8000 and 240 <= int(self.height) <= 8000):
            problems.append(f"width×height must be within 320×240 … 8000×8000 pixels, got {self.width}×{self.height}")
        if not (0.25 <= float(self.scale) <= 8.0) or int(self.width * self.scale) * int(self.height * self.scale) > 1e8:
            problems.append(f"scale must be within 0.25 … 8 and the image under 100 megapixels, got {self.scale}")
        if self.smooth is not None and not 0 <= int(self.smooth) <= 10000:
            problems.append(f"smooth must be an epoch count ≥ 0, got {self.smooth}")
        if self.theme not in THEMES:
            problems.append(f"theme must be one of {', '.join(THEMES)}, got {self.theme!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Canvas:
    """A figure plus the pixel arithmetic every layout needs (logical pixels, origin top-left)."""

    figure: Figure
    width: int
    height: int
    scale: float
    theme: Theme

    @property
    def unit(self) -> float:
        """Size factor of text and lines: 1 at the default 1600×1000, smaller on a thumbnail."""
        return max(0.55, min(self.width / 1600.0, self.height / 1000.0, 2.0))

    def pt(self, px: float) -> float:
        """Points for a size given in logical pixels at the default size (fonts, line widths)."""
        return px * self.unit * 72.0 / BASE_DPI

    def axes(self, left: float, top: float, width: float, height: float, name: str) -> Axes:
        """An axes whose data area is the given box in logical pixels; ``name`` labels it for tests."""
        box = (left / self.width, 1.0 - (top + height) / self.height, width / self.width, height / self.height)
        ax = self.figure.add_axes(box, label=name)
        ax.set_facecolor(self.theme.panel)
        for side, spine in ax.spines.items():
            spine.set_visible(side in ("left", "bottom"))
            spine.set_color(self.theme.muted)
            spine.set_linewidth(self.pt(1.2))
        return ax

    def flatten_ticks(self) -> None:
        """Turn every axes' ticks (from their locators and formatters) into plain texts and one grid collection,
        just before drawing: matplotlib's own ticks cost about a third of a report's drawing time."""
        from matplotlib.transforms import ScaledTranslation

        theme, fig = self.theme, self.figure
        pad = self.pt(6) / 72.0
        size = self.pt(15)
        for ax in fig.axes:
            x0, x1 = sorted(ax.get_xlim())
            y0, y1 = sorted(ax.get_ylim())
            xs = [v for v in ax.xaxis.get_major_locator()() if _within(v, x0, x1)]
            ys = [v for v in ax.yaxis.get_major_locator()() if _within(v, y0, y1)]
            x_labels = ax.xaxis.get_major_formatter().format_ticks(xs)
            y_labels = ax.yaxis.get_major_formatter().format_ticks(ys)
            xlabel = ax.get_xlabel()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            grid: dict[str, Any] = {"colors": theme.grid, "linewidths": self.pt(1.0), "zorder": 0.6}
            if xs:
                ax.vlines(xs, 0, 1, transform=ax.get_xaxis_transform(), **grid)
            if ys:
                ax.hlines(ys, 0, 1, transform=ax.get_yaxis_transform(), **grid)
            below = ax.get_xaxis_transform() + ScaledTranslation(0, -pad, fig.dpi_scale_trans)
            for x, label in zip(xs, x_labels):
                ax.text(x, 0, label, transform=below, ha="center", va="top", fontsize=size, color=theme.text,
                        clip_on=False)
            left = ax.get_yaxis_transform() + ScaledTranslation(-pad, 0, fig.dpi_scale_trans)
            for y, label in zip(ys, y_labels):
                ax.text(0, y, label, transform=left, ha="right", va="center", fontsize=size, color=theme.text,
                        clip_on=False)
            if xlabel:
                offset = ScaledTranslation(0, -(pad + self.pt(15) * 1.45 / 72.0), fig.dpi_scale_trans)
                ax.text(0.5, 0, xlabel, transform=ax.transAxes + offset, ha="center", va="top", fontsize=size,
                        color=theme.muted, clip_on=False)

    def text(self, x: float, y: float, s: str, *, size: float, weight: str = "normal", color: str | None = None,
             ha: str = "left", va: str = "top", **kwargs: Any) -> None:
        """Figure text at logical pixel ``(x, y)`` from the top-left corner."""
        self.figure.text(x / self.width, 1.0 - y / self.height, s, fontsize=self.pt(size), fontweight=weight,
                         color=color or self.theme.text, ha=ha, va=va, **kwargs)


def _within(value: float, low: float, high: float) -> bool:
    """``low <= value <= high`` up to float rounding (a tick at exactly 1.0 of a 0–1.0 axis counts)."""
    slack = 1e-9 * max(abs(high - low), abs(high), abs(low), 1e-300)
    return low - slack <= value <= high + slack


def dice_limits(epoch: np.ndarray, series: Sequence[np.ndarray] | np.ndarray) -> tuple[float, float, int | None]:
    """The Dice axis of every chart (PNG and dashboard): between round bounds, zoomed past the initial rise (on a
    0–1 axis a good run's second half is flat): from the 2nd percentile after the first 10 % of epochs − 0.05 to
    the maximum + 0.02, rounded out to 0.1. Also the last epoch with a value below the axis (hidden by the zoom,
    which the chart must say), or None."""
    epoch = np.asarray(epoch, dtype=float)
    late = epoch >= max(1.0, 0.1 * (epoch[-1] + 1)) if len(epoch) >= 20 else np.zeros(len(epoch), bool)
    values = np.concatenate([np.asarray(y)[late] for y in series]) if len(series) else np.empty(0)
    values = values[np.isfinite(values)]
    low, high = 0.0, 1.0
    if values.size:
        low = max(0.0, math.floor((float(np.percentile(values, 2)) - 0.05) * 10.0) / 10.0)
        high = min(1.0, math.ceil((float(values.max()) + 0.02) * 10.0) / 10.0)
    low = min(low, high - 0.1)
    hidden: int | None = None
    if low > 0 and len(series) and len(epoch):
        with np.errstate(invalid="ignore"):
            below = np.any(np.vstack([np.asarray(y, dtype=float) < low for y in series]), axis=0) & ~late
        if below.any():
            hidden = int(epoch[np.flatnonzero(below)[-1]])
    return low, high + 0.01 if high >= 1.0 else high, hidden


def hidden_note(low: float, hidden: int | None) -> str | None:
    """The words every chart prints when the zoomed Dice axis hides the first epochs."""
    if hidden is None:
        return None
    return f"axis starts at {low:.1f}: values of epochs 0–{hidden} lie below it"


def new_canvas(width: int, height: int, scale: float, theme: Theme) -> Canvas:
    """An Agg figure of ``width``×``height`` logical pixels rendered at ``scale`` (no pyplot, no globals)."""
    dpi = BASE_DPI * scale
    # Agg truncates inches × dpi to whole pixels; the 0.001 px keeps 13.66 in × 100 dpi from becoming 1365.
    size = ((round(width * scale) + 0.001) / dpi, (round(height * scale) + 0.001) / dpi)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi, facecolor=theme.background)
    FigureCanvasAgg(figure)
    return Canvas(figure, width, height, scale, theme)


def panel_boxes(canvas: Canvas) -> dict[str, tuple[int, int, int, int]]:
    """Data area of each named panel in output pixels, ``(left, top, right, bottom)`` from the top-left."""
    width, height = canvas.figure.canvas.get_width_height()
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for ax in canvas.figure.axes:
        pos = ax.get_position()
        boxes[str(ax.get_label())] = (round(pos.x0 * width), round((1 - pos.y1) * height),
                                 round(pos.x1 * width), round((1 - pos.y0) * height))
    return boxes


def report_png(opts: ReportOptions, build: Callable[..., None], *args: Any, **kwargs: Any) -> bytes:
    """``build(canvas, *args, smooth=…, now=…, **kwargs)`` on a fresh canvas of ``opts``, encoded as PNG."""
    canvas = new_canvas(opts.width, opts.height, opts.scale, THEMES[opts.theme])
    build(canvas, *args, smooth=opts.smooth, now=opts.now, **kwargs)
    return figure_to_png(canvas)


def figure_to_png(canvas: Canvas) -> bytes:
    """Encode as PNG at exactly the intended pixel size; zlib level 1 trades a little size for much less time."""
    buffer = io.BytesIO()
    with _DRAW_LOCK:
        canvas.flatten_ticks()
        canvas.figure.savefig(buffer, format="png", dpi=BASE_DPI * canvas.scale,
                              facecolor=canvas.theme.background, metadata={"Software": "nnwatch"},
                              pil_kwargs={"compress_level": 1})
    return buffer.getvalue()
