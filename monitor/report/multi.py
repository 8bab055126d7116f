"""Reports over several runs: all folds of a dataset/configuration, and a parent run beside its extension.

Both plot each run's EMA pseudo Dice (five raw fold curves on one chart are unreadable); the table beside the
chart, each row starting with its run's colour, doubles as the legend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from monitor.analyze import COMPARISON_RULE, ComparedRun, ExtensionComparison, compare_extension, verdict_label
from monitor.analyze import smooth as smooth_curve
from monitor.numbers import mean_sd
from monitor.report.data import DatasetGroup, ReportError, RunData, load_run_data
from monitor.report.layout import Frame, draw_footer, draw_header, fit_text, signed, text_width, wrap_lines
from monitor.report.panels import (
    LegendEntry,
    legend,
    panel_title,
    resolve_smooth,
    robust_ylim,
    set_dice_ylim,
    set_epoch_axis,
    x_limit,
)
from monitor.report.style import VERDICT_COLOURS, Canvas, class_style, fold_style

__all__ = ["FoldRow", "build_compare_figure", "build_dataset_figure", "compare_pair", "load_group"]

Y_TICKS, PANEL_TITLE, X_TICKS = 64.0, 34.0, 52.0
# (swatch colour and dash, cells, verdict that colours the last cell)
TableRow = tuple[tuple[str, Any] | None, list[str], str | None]


@dataclass(frozen=True)
class FoldRow:
    """One fold of a dataset report: its data, or why it has none (the table still lists it)."""

    fold: str
    data: RunData | None
    problem: str | None = None


def load_group(group: DatasetGroup, root: str | os.PathLike[str]) -> list[FoldRow]:
    """Every fold of the group; folds without a completed epoch stay in the table, marked as such."""
    rows = []
    for location in group.runs:
        try:
            rows.append(FoldRow(location.fold, load_run_data(location.path, root=root)))
        except ReportError:
            rows.append(FoldRow(location.fold, None, "no completed epoch"))
    if all(row.data is None for row in rows):
        raise ReportError(f"{group.key}: none of its {len(rows)} fold(s) has a completed epoch to plot")
    return rows


def _aligned(runs: Sequence[RunData], column: str, smooth: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Epochs 0..max and a (runs × epochs) matrix of ``column`` (smoothed), NaN where a run lacks the epoch."""
    length = max(run.last_epoch for run in runs) + 1
    matrix = np.full((len(runs), length), np.nan)
    for k, run in enumerate(runs):
        epochs = run.frame["epoch"].to_numpy(dtype=np.int64)
        keep = (epochs >= 0) & (epochs < length)
        matrix[k, epochs[keep]] = smooth_curve(run.column(column), smooth)[keep]
    return np.arange(length, dtype=float), matrix


def _overlay(ax: Axes, canvas: Canvas, runs: Sequence[RunData | None], column: str,
             smooth: int = 0) -> list[LegendEntry]:
    """Each run in its colour, then the across-run mean (thick) and ± 1 SD band where ≥ 2 runs have the epoch."""
    present = [run for run in runs if run is not None]
    x, matrix = _aligned(present, column, smooth)
    entries: list[LegendEntry] = []
    row = 0
    for k, run in enumerate(runs):
        if run is None:
            continue
        colour, dash = fold_style(canvas.theme, k)
        ax.plot(x, matrix[row], color=colour, linestyle=dash, linewidth=canvas.pt(2.2), zorder=2)
        if run.summary.get("status") in ("crashed", "stalled"):  # where a fold died, not just ended
            ax.plot([x[run.last_epoch]], [matrix[row, run.last_epoch]], marker="X", color=colour,
                    markersize=canvas.pt(13), markeredgecolor=canvas.theme.background, zorder=3.5)
            if not entries:
                entries.append((Line2D([], [], marker="X", linestyle="none", color=canvas.theme.muted,
                                       markersize=canvas.pt(13)), "crashed or stalled here"))
        row += 1
    counts = np.isfinite(matrix).sum(axis=0)
    ok = counts >= 2
    if not ok.any():
        return entries
    mean = np.full(len(x), np.nan)
    sd = np.full(len(x), np.nan)
    mean[ok] = np.nanmean(matrix[:, ok], axis=0)
    sd[ok] = np.nanstd(matrix[:, ok], axis=0, ddof=1)
    band = ax.fill_between(x, mean - sd, mean + sd, color=canvas.theme.strong, alpha=0.13, linewidth=0,
                           zorder=1)
    (line,) = ax.plot(x, mean, color=canvas.theme.strong, linewidth=canvas.pt(3.4), zorder=3)
    return [(line, f"mean of folds (n={int(counts.max())})"), (band, "± 1 SD (where ≥ 2 folds)"), *entries]


def _table(canvas: Canvas, left: float, top: float, width: float, header: Sequence[str],
           rows: Sequence[TableRow]) -> float:
    """A text table; each row is (swatch colour, cells, verdict to colour the last cell). Returns its bottom."""
    u = canvas.unit
    size = 15.0
    swatch = 42 * u
    widths = [max(text_width(str(c), size * u, bold=True) for c in column) + 18 * u
              for column in zip(header, *[cells for _, cells, _ in rows])]
    shrink = min(1.0, (width - swatch) / sum(widths))
    xs = np.concatenate([[left + swatch], left + swatch + np.cumsum(widths[:-1]) * shrink])
    line_h = 27 * u
    for x, text in zip(xs, header):
        canvas.text(x, top, text, size=size, weight="bold", color=canvas.theme.muted)
    y = top + line_h
    for style, cells, verdict in rows:
        if style is not None:
            canvas.figure.add_artist(_swatch(canvas, left, y + 9 * u, 30 * u, *style))
        for k, (x, text) in enumerate(zip(xs, cells)):
            last = k == len(cells) - 1
            colour_k = VERDICT_COLOURS.get(verdict or "", canvas.theme.text) if last else canvas.theme.text
            canvas.text(x, y, text, size=size, color=colour_k, weight="bold" if last and verdict else "normal")
        y += line_h
    return y


def _swatch(canvas: Canvas, left: float, middle: float, length: float, colour: str, dash: Any) -> Line2D:
    return Line2D([left / canvas.width, (left + length) / canvas.width],
                  [1 - middle / canvas.height, 1 - middle / canvas.height], transform=canvas.figure.transFigure,
                  color=colour, linestyle=dash, linewidth=canvas.pt(3))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _row(label: str, run: RunData, style: tuple[str, Any]) -> TableRow:
    """A table row: label, status, epochs done/planned, best EMA @ epoch, final validation Dice, verdict."""
    verdict = run.analysis.verdict.value
    epochs = f"{run.epochs_done}/{run.planned}" if run.planned else str(run.epochs_done)
    return (style, [label, str(run.summary.get("status")), epochs, _best(run),
                    _fmt(run.summary.get("final_validation_dice")), verdict_label(run.analysis)], verdict)


def _best(run: RunData) -> str:
    best, at = run.summary.get("best_ema_fg_dice"), run.summary.get("best_ema_epoch")
    return "–" if best is None else f"{best:.3f} @{at}"


def build_dataset_figure(canvas: Canvas, folds: Sequence[FoldRow], *, smooth: int | None,
                         now: datetime | None = None) -> None:
    """Folds overlaid (EMA Dice and validation loss) with mean ± SD, and the per-fold table on the right."""
    u = canvas.unit
    runs = [row.data for row in folds if row.data is not None]
    first = runs[0].summary
    title = (f"{first['dataset']} · {first['configuration']} · {first['trainer']} · {len(folds)} "
             f"fold{'' if len(folds) == 1 else 's'}")
    planned = max((run.planned or 0) for run in runs) or None
    subtitle = (f"plans {first['plans']} · EMA pseudo Dice per fold, mean ± SD across folds · "
                f"{planned or 'unknown'} planned epochs")
    draw_header(canvas, title, subtitle, None)
    frame = Frame(canvas, 1)
    table_w = min(600 * u, 0.4 * frame.width)
    chart_right = frame.right - table_w - 30 * u
    left = frame.left + Y_TICKS * u
    top = frame.top + PANEL_TITLE * u
    total = frame.bottom - top
    dice_h = 0.62 * total - X_TICKS * u
    right_end = max(x_limit(run.last_epoch + 1, run.planned) for run in runs)
    window = resolve_smooth(smooth, max(len(run.frame) for run in runs))

    dice = canvas.axes(left, top, chart_right - left, dice_h, "dice")
    loss_top = top + dice_h + X_TICKS * u + PANEL_TITLE * u
    loss = canvas.axes(left, loss_top, chart_right - left, frame.bottom - X_TICKS * u - loss_top, "val_loss")
    by_fold = [row.data for row in folds]
    entries = _overlay(dice, canvas, by_fold, "ema_fg_dice")
    _overlay(loss, canvas, by_fold, "val_loss", window)
    rows: list[TableRow] = []
    for k, row in enumerate(folds):
        if row.data is None:
            rows.append((None, [f"fold {row.fold}", row.problem or "", "", "", "", ""], None))
            continue
        rows.append(_row(f"fold {row.fold}", row.data, fold_style(canvas.theme, k)))
    set_dice_ylim(dice, np.arange(max(run.last_epoch for run in runs) + 1, dtype=float),
                  _aligned(runs, "ema_fg_dice")[1], canvas)
    if entries:
        legend(dice, canvas, [h for h, _ in entries], [t for _, t in entries], loc="lower right")
    panel_title(dice, canvas, "EMA pseudo Dice (validation), per fold")
    panel_title(loss, canvas, "Validation loss" + (f" (smoothed over {window} epochs)" if window else ""))
    robust_ylim(loss, np.concatenate([run.column("val_loss") for run in runs]))
    for ax in (dice, loss):
        set_epoch_axis(ax, canvas, right_end)
    header = ["fold", "status", "epochs", "best EMA", "val Dice", "verdict"]
    bottom = _table(canvas, chart_right + 30 * u, frame.top + 4 * u, table_w, header, rows)
    y = bottom + 24 * u
    for line in _dataset_facts(runs, len(folds)):
        canvas.text(chart_right + 30 * u, y, fit_text(line, table_w, 17 * u), size=17)
        y += 30 * u
    draw_footer(canvas, frame, [], f"{first['dataset']}/{first['trainer']}__{first['plans']}__"
                f"{first['configuration']}", now)


def _dataset_facts(runs: Sequence[RunData], n_folds: int) -> list[str]:
    """The numbers a slide about a dataset needs, in words, under the fold table."""
    bests = [run.summary["best_ema_fg_dice"] for run in runs if run.summary.get("best_ema_fg_dice") is not None]
    finals = [run.summary["final_validation_dice"] for run in runs
              if run.summary.get("final_validation_dice") is not None]
    lines = [f"best EMA pseudo Dice: {mean_sd(bests, 3)}" if bests else "no EMA pseudo Dice logged",
             f"final validation Dice: {mean_sd(finals, 3)} ({len(finals)} of {n_folds} folds)" if finals
             else "no final validation yet"]
    verdicts: dict[str, int] = {}
    for run in runs:
        name = verdict_label(run.analysis)
        verdicts[name] = verdicts.get(name, 0) + 1
    lines.append("verdicts: " + " · ".join(f"{count} {name}" for name, count in verdicts.items()))
    costed = [run.analysis for run in runs if run.analysis.gpu_hours_2000 is not None]
    units = {a.hours_unit for a in costed}
    if costed and len(units) == 1:  # only finished folds have a cost; never a median of GPU and CPU hours
        hours = float(np.median([a.gpu_hours_2000 or 0.0 for a in costed]))
        lines.append(f"2000 epochs ≈ {hours:.0f} {units.pop()} per fold ({len(costed)} finished)")
    return lines


def _label(run: RunData, other: RunData) -> str:
    """What tells the two runs apart: the trainer (parent vs ``_2000epochs``), else the run id."""
    s, o = run.summary, other.summary
    if s["trainer"] != o["trainer"]:
        return str(s["trainer"])
    return fit_text(str(s["run_id"]), 400, 14)


def compare_pair(parent: RunData, child: RunData) -> ExtensionComparison:
    """The one comparison rule (:func:`monitor.analyze.compare_extension`) on two report runs."""
    return compare_extension(*(ComparedRun.from_frame(str(run.summary["run_id"]), run.frame, run.planned,
                                                      str(run.summary.get("status"))) for run in (parent, child)))


def build_compare_figure(canvas: Canvas, pair: tuple[RunData, RunData], *, x: str, smooth: int | None,
                         now: datetime | None = None, extra_lines: Sequence[str] = ()) -> None:
    """Both runs' Dice on one chart, by epoch and/or by fraction of each run's own schedule; a table below;
    ``extra_lines`` (the case-by-case comparison) join the footer."""
    u = canvas.unit
    a, b = pair
    s = a.summary
    title = f"{s['dataset']} · {s['configuration']} · fold {s['fold']}: {_label(a, b)} vs {_label(b, a)}"
    solid = f"raw mean smoothed over {smooth} epochs" if smooth and smooth > 1 else "nnU-Net's EMA"
    subtitle = (f"faint: raw mean pseudo Dice · solid: {solid} · fraction of schedule = epoch / that run's "
                "planned epochs")
    draw_header(canvas, title, subtitle, None)
    comparison = compare_pair(a, b)
    lines = [f"{comparison.question} {comparison.statement}"]
    fin_a, fin_b = (run.summary.get("final_validation_dice") for run in pair)
    if fin_a is not None and fin_b is not None:  # a different quantity: whole cases, after training
        lines.append(f"Not the rule's quantity: nnU-Net's final validation Dice (whole cases) {fin_a:.4f} → "
                     f"{fin_b:.4f} ({signed(fin_b - fin_a, 4)}). Rule \"{COMPARISON_RULE}\": EMA pseudo Dice at "
                     "the end of each schedule, not epoch by epoch.")
    else:
        lines.append(f"Rule \"{COMPARISON_RULE}\": EMA pseudo Dice at the end of each schedule, not epoch by epoch "
                     "(a longer schedule keeps a higher learning rate and is expected to be lower at the same epoch).")
    footer = wrap_lines(canvas, [*lines, *extra_lines])
    frame = Frame(canvas, len(footer) + 1)
    window = int(smooth) if smooth and smooth > 1 else 0  # explicit only: the default solid line is the EMA
    table_h = 3 * 27 * u + 18 * u
    top = frame.top + PANEL_TITLE * u
    bottom = frame.bottom - table_h - X_TICKS * u
    modes = ("epochs", "fraction") if x == "both" else (x,)
    gap = 40 * u
    cell = (frame.width - gap * (len(modes) - 1)) / len(modes)
    rows: list[TableRow] = []
    for k, run in enumerate(pair):
        rows.append(_row(_label(run, pair[1 - k]), run, class_style(canvas.theme, k)))
    for m, mode in enumerate(modes):
        left = frame.left + m * (cell + gap) + Y_TICKS * u
        ax = canvas.axes(left, top, cell - Y_TICKS * u, bottom - top, mode)
        for k, run in enumerate(pair):
            colour, _ = class_style(canvas.theme, k)
            span = float(run.planned or run.last_epoch + 1)
            xs = run.epoch if mode == "epochs" else run.epoch / span
            ax.plot(xs, run.column("mean_fg_dice"), color=colour, linewidth=canvas.pt(1.1), alpha=0.28, zorder=1.5)
            solid_y = smooth_curve(run.column("mean_fg_dice"), window) if window else run.column("ema_fg_dice")
            ax.plot(xs, solid_y, color=colour, linewidth=canvas.pt(3.0), zorder=2)
        all_epochs, raw_means = _aligned(pair, "mean_fg_dice")
        set_dice_ylim(ax, all_epochs, [*raw_means, *_aligned(pair, "ema_fg_dice")[1]],
                      canvas if mode == "epochs" else None)
        if mode == "epochs":
            set_epoch_axis(ax, canvas, max(x_limit(run.last_epoch + 1, run.planned) for run in pair))
            panel_title(ax, canvas, "Pseudo Dice by epoch")
        else:
            ax.set_xlim(0, 1.0)
            ax.set_xlabel("fraction of schedule", fontsize=canvas.pt(15), color=canvas.theme.muted,
                          labelpad=canvas.pt(2))
            panel_title(ax, canvas, "Pseudo Dice by fraction of schedule")
    _table(canvas, frame.left, bottom + X_TICKS * u + 14 * u, frame.width,
           ["run", "status", "epochs", "best EMA", "val Dice", "verdict"], rows)
    draw_footer(canvas, frame, footer, f"runs {a.summary['run_id']} and {b.summary['run_id']}", now)
