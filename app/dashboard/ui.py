"""Small UI pieces every page uses: error guards, verdict call-outs, run flags, extend eligibility.

Why a guard around each page section: a broken run (a garbled log, a half-written JSON) must never take
the page down. :func:`guard` turns any exception into a red box that names what failed and what to do,
with the traceback folded away for whoever files the bug; Streamlit's own control-flow exceptions
(``st.rerun``, ``st.stop``, ``st.switch_page``) derive from ``BaseException`` and pass through.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from app.dashboard.tables import STATUS_LABELS, VERDICT_LABELS, fmt_duration
from monitor.analyze import signed, verdict_label
from monitor.numbers import moment
from monitor.runs.status import RunStatus

if TYPE_CHECKING:
    from monitor.analyze import Analysis
    from monitor.runs.summary import RunSummary

__all__ = [
    "eta_text",
    "extend_eligibility",
    "fmt_dice",
    "guard",
    "no_truncation_style",
    "run_flags",
    "status_text",
    "verdict_callout",
    "verdict_supports_extend",
    "warm_run_page",
]


@contextlib.contextmanager
def guard(what: str, hint: str = "Reload the page; if it persists, run `nnwatch scan` on the same root and "
                                "report the message.") -> Iterator[None]:
    """Show an exception inside ``with`` as an error box instead of a crashed page."""
    try:
        yield
    except Exception as exc:
        st.error(f"**Could not {what}.** {type(exc).__name__}: {exc}\n\n{hint}", icon=":material/error:")
        with st.expander("Details for a bug report"):
            st.code("".join(traceback.format_exception(exc)), language="text")


_STYLE = """<style>
/* Numbers a user decides on wrap instead of ending in an ellipsis when a column is narrow. */
[data-testid="stMetricValue"] > div, [data-testid="stMetricLabel"] p, [data-testid="stMetricLabel"] > div {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere;
}
[data-testid="stMetricValue"] { font-size: clamp(1.15rem, 2.1vw, 2rem); line-height: 1.2; }
[data-testid="stMetricLabel"] { height: auto; min-height: 1.5rem; }
button[data-testid^="stBaseButton"] p { white-space: normal !important; text-overflow: clip !important; }
/* Wide pages keep a narrower margin, so the runs table's decision columns fit 1400 px. */
[data-testid="stMainBlockContainer"] { padding-left: 2rem; padding-right: 2rem; }
</style>"""


def no_truncation_style() -> None:
    """Once per page run: metric values, their labels and button labels wrap rather than being cut off."""
    st.html(_STYLE)


# Streamlit loads each element's script only when a page first shows that element. The run page's own (its
# charts, progress bar, slider and code blocks: Plotly alone is several MB) are loaded while the browser is idle
# after any page is drawn, resolved against Streamlit's entry script so they are the very modules its elements
# import later. Then Plotly (``window.Plotly``, set by its module) draws the run page's two figures, thinned, off
# screen and drops them: the first drawing of such figures in a tab sets up Plotly's styles and text measurement
# and runs its code for their axes, shapes and legends for the first time. Without this, the first run page
# opened from the overview pays for all of it. All this waits until no element of the page is still loading
# (Streamlit's placeholder for it is on screen): evaluating Plotly's script holds the browser's main thread, and
# the page's own tables would wait for it.
# Streamlit's sanitizer drops a script whose text holds a tag, so this one holds none (see warm_run_page).
_WARM_RUN_PAGE = """<script>
(() => {
  const entry = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!entry || window.nnwatchRunPageWarm) return;
  window.nnwatchRunPageWarm = "loading";
  const idle = (task) => window.requestIdleCallback ? requestIdleCallback(task, {timeout: 3000})
                                                    : setTimeout(task, 1000);
  const since = Date.now();
  const settled = (task) => document.querySelector('[data-testid="stSkeleton"]') && Date.now() - since < 10000
    ? setTimeout(() => settled(task), 100) : idle(task);
  const draw = (figure) => {
    if (!window.Plotly) return Promise.resolve();
    const box = document.createElement("div");
    box.style.cssText = "position:fixed;left:-10000px;top:0;width:1200px";
    document.body.appendChild(box);
    return window.Plotly.newPlot(box, figure.data, figure.layout, {displaylogo: false}).catch(() => {})
      .finally(() => { window.Plotly.purge(box); box.remove(); });
  };
  const load = (name) => import(new URL("./" + name, entry.src).href).catch(() => {});
  settled(() => Promise.all(%s.map(load)).then(() => idle(() => %s.reduce(
    (drawn, figure) => drawn.then(() => draw(figure)), Promise.resolve()).then(() => {
      window.nnwatchRunPageWarm = "ready";
    }))));
})();
</script>"""
# The run page's elements that the overview lacks, by the stem of their script's name.
_RUN_PAGE_ELEMENTS = ("PlotlyChart", "Progress", "Slider", "StreamlitSyntaxHighlighter")


@functools.cache
def _run_page_scripts() -> tuple[str, ...]:
    """The file names of the run page elements' scripts that this Streamlit ships."""
    scripts = Path(st.__file__).parent / "static" / "static" / "js"
    return tuple(path.name for stem in _RUN_PAGE_ELEMENTS for path in sorted(scripts.glob(f"{stem}.*.js"))[:1])


def warm_run_page(figures: str) -> None:
    """After a page is drawn, the browser loads the run page's element scripts while idle and draws
    ``figures`` (a JSON list of Plotly figures, see :func:`app.dashboard.run_charts.warm_figures`) hidden, so
    the first run page opened from the overview waits for neither."""
    names = _run_page_scripts()
    if names:  # as JSON inside a script, "<" could close it: escaped, it holds no tag
        st.html(_WARM_RUN_PAGE % (json.dumps(list(names)), figures.replace("<", "\\u003c")),
                unsafe_allow_javascript=True)


def fmt_dice(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{number:.4f}" if math.isfinite(number) else "–"


def status_text(status: str | None) -> str:
    """The status with its symbol, as the run tables show it."""
    return STATUS_LABELS.get(status or "unknown", status or "unknown")


def verdict_supports_extend(analysis: Analysis | None) -> bool:
    """The analyzer recommends a longer schedule: improving *and* a projected gain worth the GPU time."""
    return analysis is not None and analysis.recommends_longer_schedule


def extend_eligibility(summary: RunSummary | None) -> tuple[bool, str]:
    """Whether the Extend action is offered for a run, and the sentence that says why not."""
    if summary is None:
        return False, "This run is no longer in the results tree."
    if summary.nnunet_version != "v2":
        return False, ("nnU-Net v1 runs cannot be extended by nnunetv2 (different trainers and plans); "
                       "retrain with nnU-Net v2 to use Extend.")
    if summary.status != RunStatus.FINISHED:
        return False, (f"This run is {summary.status}. Extend retrains from scratch with a longer schedule; it is "
                       "offered once the run has finished, so the verdict is about a complete schedule.")
    return True, ""


def _gain_range(gain: tuple[float, float]) -> str:
    """``0 … +0.012``; a range that is 0 at both ends is just ``0``."""
    low, high = signed(gain[0]), signed(gain[1])
    return low if low == high else f"{low} … {high}"


def verdict_callout(analysis: Analysis | None, summary: RunSummary) -> None:
    """The verdict in one coloured sentence, with its estimates and the plain-language explanation."""
    if analysis is None:
        st.info("No verdict: the run has no completed epoch yet.", icon=":material/hourglass_empty:")
        return
    verdict = analysis.verdict.value
    icon = VERDICT_LABELS.get(verdict, verdict).split(" ")[0]
    label = verdict_label(analysis)  # the words of the PNG badge and the reason: one source
    text = f"**{icon} {label}** — {analysis.reason}"
    box = {"improving": st.success, "declining": st.error}.get(verdict, st.info)
    if not analysis.final:
        box = st.info  # a provisional verdict is not yet a green light
    elif verdict == "improving" and not verdict_supports_extend(analysis):
        box = st.warning
    box(text, icon=":material/insights:")
    cols = [*st.columns(2), *st.columns(2)]  # two per row: the ranges must fit at 900 px
    slope, ci = analysis.slope_per_100_epochs, analysis.slope_ci95
    cols[0].metric("Slope at the end" if analysis.final else "Slope so far", "–" if slope is None else signed(slope, 4),
                   help="Theil–Sen slope of the raw mean pseudo Dice over the shaded window, Dice per 100 epochs" +
                   ("" if ci is None else f"; 95 % interval {signed(ci[0], 4)} … {signed(ci[1], 4)}"))
    unit = analysis.hours_unit
    if not analysis.final:
        pending = "after the schedule ends"
        why = ("The run has not completed its schedule, so the verdict is provisional "
               f"({analysis.provisional_note}); a longer schedule's gain, cost and recommendation are decided once "
               "the schedule has ended.")
        cols[1].metric("Projected gain at 2000 ep", pending, help=why)
        cols[2].metric("Cost of 2000 epochs", pending, help=why)
        cols[3].metric("Recommended schedule", "not decided yet", help=why)
    else:
        gain = analysis.projected_gain_2000
        gain_text = "–" if gain is None else _gain_range(gain)
        if verdict == "declining":
            gain_text = "none (declining)"
        cols[1].metric("Projected gain at 2000 ep", gain_text,
                       help="Range of Dice a from-scratch 2000-epoch schedule could add, from the trend before the "
                       "learning-rate annealing, bounded by what Dice can be; the low end 0 means 'same Dice, later'. "
                       "A declining run gets no projection: use checkpoint_best, or a shorter schedule.")
        hours = analysis.gpu_hours_2000
        cols[2].metric("Cost of 2000 epochs", "–" if hours is None else f"≈ {hours:.0f} {unit.replace('-hours', '-h')}",
                       help=f"Median epoch time of this run × 2000 epochs, in {unit} on the same device")
        rec = analysis.recommended_epochs
        cols[3].metric("Recommended schedule", f"{rec} ep" if rec else "no longer run",
                       help="The cheapest schedule whose projected gain is worth it (at least 0.01 Dice); "
                       "the table under 'Why this verdict?' gives each option's reason")
    with st.expander("Why this verdict? (and why pseudo Dice differs from the final validation Dice)"):
        st.markdown(analysis.explanation or analysis.reason)
        if analysis.final and analysis.schedules:
            rows = [{"epochs": s.epochs,
                     "projected gain": "–" if s.projected_gain is None else _gain_range(s.projected_gain),
                     unit: "–" if s.gpu_hours is None else f"{s.gpu_hours:.0f}",
                     "worth it": "yes" if s.worth_it else f"no: {s.why_not or 'not projected'}"}
                    for s in analysis.schedules]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        final = summary.final_validation_dice
        if final is not None:
            st.caption(f"Final validation Dice (whole cases, after training): {fmt_dice(final)}; last EMA pseudo "
                       f"Dice: {fmt_dice(summary.last_ema_fg_dice)}.")


def run_flags(summary: RunSummary, frame: pd.DataFrame, problems: list[str]) -> list[str]:
    """Plain sentences for what needs a human look: dead classes, NaNs, stalls and crashes, parse problems."""
    flags = list(problems)
    dice_columns = [c for c in frame.columns if c.startswith("dice_")]
    if len(frame) and dice_columns:
        nan_epochs = int(frame[dice_columns].isna().any(axis=1).sum())
        if nan_epochs and not any("NaN" in p for p in problems):
            flags.append(f"{nan_epochs} epoch(s) have NaN pseudo Dice for at least one class (a class absent from "
                         "the sampled validation patches, or a diverged run).")
    for column in ("train_loss", "val_loss"):
        if column in frame.columns and len(frame) and frame[column].isna().iloc[-min(5, len(frame)):].all():
            flags.append(f"The last epochs have no {column.replace('_', ' ')} (NaN): the run may have diverged.")
    status = summary.status
    if status == RunStatus.CRASHED:
        ended = moment(summary.last_update) if summary.last_update else "an unknown time"
        flags.append(f"The log stopped changing at {ended} before the schedule ended: the process is gone "
                     "(crash, out of memory, or killed by the scheduler).")
    elif status == RunStatus.STALLED:
        flags.append("No new epoch for much longer than an epoch usually takes: the run may be stuck.")
    if status == RunStatus.RUNNING and summary.eta_s is not None:
        flags = [f for f in flags if "no completed epoch" not in f]
    return flags


def eta_text(summary: RunSummary) -> str:
    return fmt_duration(summary.eta_s) or "–"
