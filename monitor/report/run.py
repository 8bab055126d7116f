"""The per-run report: pseudo Dice (top 55 %, what the verdict is about), then loss, learning rate and epoch
time in a row below. The Dice legend sits beside the panel, never on the curves.
"""

from __future__ import annotations

from datetime import datetime

from monitor.analyze import verdict_label
from monitor.report.data import RunData
from monitor.report.layout import Frame, draw_footer, draw_header, fit_text, signed, text_width, wrap_lines
from monitor.report.panels import (
    draw_dice,
    draw_epoch_time,
    draw_loss,
    draw_lr,
    legend_in_figure,
    panel_title,
    resolve_smooth,
    set_epoch_axis,
    x_limit,
)
from monitor.report.style import Canvas
from monitor.stops import StopCause

__all__ = ["build_run_figure", "run_footer_lines", "run_subtitle", "run_title"]

Y_TICKS = 64.0  # room left of a panel for its tick labels ("0.001", "-0.75")
PANEL_TITLE = 34.0  # room above a panel for its title
X_TICKS = 52.0  # room below a panel for tick labels and "epoch"


def run_title(data: RunData) -> str:
    s = data.summary
    return f"{s['dataset']} · {s['configuration']} · {s['trainer']} · fold {s['fold']}"


def run_subtitle(data: RunData) -> str:
    s = data.summary
    planned = data.planned
    done = f"{data.epochs_done} / {planned} epochs" if planned else f"{data.epochs_done} epochs (schedule unknown)"
    status = s.get("status") or "unknown"
    if status in ("crashed", "stalled"):
        status = f"{status} after epoch {data.last_epoch}"
        if s.get("stop_cause"):
            status += f" ({StopCause(s['stop_cause']).label})"
    return f"{done} · {status} · plans {s['plans']} · nnU-Net {s['nnunet_version']}"


def _number(value: float | None, fmt: str = ".4f") -> str:
    return "n/a" if value is None else format(value, fmt)


def run_footer_lines(data: RunData) -> list[str]:
    """The verdict's reason, then the numbers a lab meeting asks for (final Dice, a longer schedule's cost)."""
    analysis = data.analysis
    final = data.summary.get("final_validation_dice")
    facts = [f"final validation Dice {_number(final)}" if final is not None else "no final validation yet"]
    gain = analysis.projected_gain_2000
    if not analysis.final:
        facts.append("a longer schedule's gain and cost: decided when this run's schedule ends")
    elif analysis.verdict.value == "declining":
        facts.append("no projection for a declining run: use checkpoint_best, or a shorter schedule")
    elif gain is not None:
        facts.append(f"2000-epoch schedule: projected gain {signed(gain[0])} … {signed(gain[1])} Dice")
    else:
        facts.append("2000-epoch gain: not projected (the trend is unclear or the schedule already as long)")
    if analysis.final and analysis.gpu_hours_2000 is not None:
        facts.append(f"2000 epochs ≈ {analysis.gpu_hours_2000:.0f} {analysis.hours_unit}")
    lines = [analysis.reason, " · ".join(facts)]
    if data.summary.get("stop_cause"):
        line = StopCause(data.summary["stop_cause"]).stopped(data.summary.get("stop_evidence") or "")
        lines.append(line[0].upper() + line[1:])
    return lines


def build_run_figure(canvas: Canvas, data: RunData, *, smooth: int | None, now: datetime | None = None) -> None:
    """Draw the whole run report onto ``canvas`` (panels are labelled dice, loss, lr, epoch_time)."""
    u = canvas.unit
    window = resolve_smooth(smooth, len(data.frame))
    draw_header(canvas, run_title(data), run_subtitle(data), data.analysis.verdict.value, verdict_label(data.analysis))
    footer = wrap_lines(canvas, run_footer_lines(data))
    frame = Frame(canvas, len(footer) + 1)
    right_end = x_limit(data.last_epoch + 1, data.planned)

    # Top: Dice, with its legend in a column on the right sized to the longest label.
    chart_top = frame.top + PANEL_TITLE * u
    chart_h = frame.bottom - chart_top
    dice_h = 0.55 * chart_h - X_TICKS * u
    labels = [*data.class_names, "analysis window 800–999", "EMA (nnU-Net)"]
    legend_w = min(max(max(text_width(fit_text(t, 300 * u, 14 * u), 14 * u) for t in labels) + 64 * u, 190 * u),
                   340 * u)
    if (len(labels) + 3) * 1.55 * 10 * u > dice_h + X_TICKS * u:  # two legend columns (see legend_in_figure)
        legend_w = min(2 * legend_w, 0.3 * frame.width)
    dice_left = frame.left + Y_TICKS * u
    dice = canvas.axes(dice_left, chart_top, frame.right - legend_w - 16 * u - dice_left, dice_h, "dice")
    entries = draw_dice(dice, canvas, data, window, right_end)
    title = "Validation pseudo Dice" + (f" (smoothed over {window} epochs; raw faint)" if window else "")
    panel_title(dice, canvas, title)
    set_epoch_axis(dice, canvas, right_end)
    legend_in_figure(canvas, entries, frame.right - legend_w, chart_top, legend_w, dice_h + X_TICKS * u)

    # Bottom: three equal diagnostics.
    row_top = chart_top + dice_h + X_TICKS * u + PANEL_TITLE * u
    row_h = frame.bottom - X_TICKS * u - row_top
    gap = 34 * u
    cell = (frame.width - 2 * gap) / 3
    for k, (name, title_text) in enumerate((("loss", "Loss"), ("lr", "Learning rate"),
                                            ("epoch_time", "Epoch time (s)"))):
        left = frame.left + k * (cell + gap) + Y_TICKS * u
        ax = canvas.axes(left, row_top, cell - Y_TICKS * u, row_h, name)
        if name == "loss":
            draw_loss(ax, canvas, data, window)
        elif name == "lr":
            draw_lr(ax, canvas, data)
        else:
            draw_epoch_time(ax, canvas, data)
        panel_title(ax, canvas, title_text)
        set_epoch_axis(ax, canvas, right_end)
    draw_footer(canvas, frame, footer, f"run {data.summary['run_id']}", now)
