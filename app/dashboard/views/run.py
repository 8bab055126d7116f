"""Run: one run's curves, the analyzer's verdict with its numbers and reasons, flags, and Extend.

Opened directly by ``/run?id=<url-encoded run id>``. While the run trains, the header, verdict and
charts refresh on a timer (a fragment); a finished run is drawn once. The Dice chart comes right after the
verdict, before the sections that read more files (stop cause, follow-up, validation), so the browser draws it
while the server computes the rest; figures are cached per run version and smoothing window, and the Extend
dialog is drawn before the page body so its plan does not wait for the charts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from app.dashboard import next_steps, resources
from app.dashboard.advice import render_follow_up
from app.dashboard.downloads import csv_button, png_button, run_report, safe_name
from app.dashboard.extend_dialog import RESULT_KEY, open_extend_dialog, render_extend_dialog
from app.dashboard.jobs_source import job_role
from app.dashboard.lineage import has_extension, render_lineage
from app.dashboard.run_charts import dice_chart, panels, run_figures
from app.dashboard.stop_section import render_stop_section
from app.dashboard.store import RunStatus, RunStore, RunSummary
from app.dashboard.ui import eta_text, extend_eligibility, fmt_dice, guard, run_flags, status_text, verdict_callout
from app.dashboard.validation_ui import run_validation_section

if TYPE_CHECKING:
    from monitor.analyze import Analysis

def _choose_run(store: RunStore, wanted: str | None) -> str | None:
    ids = store.run_ids()
    if wanted and wanted not in ids:
        st.warning(f"No run `{wanted}` under `{store.root}` (renamed, deleted, or a link from another tree). "
                   "Pick one below.", icon=":material/link_off:")
    if not ids:
        st.info("No runs found in the results tree yet.")
        return None
    choice = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else None, key="run_picker",
                          placeholder="Choose a run (type to search)")
    if choice and choice != wanted:
        st.query_params["id"] = choice
    return choice


def _header(summary: RunSummary) -> None:
    cols = [*st.columns(3), *st.columns(3)]  # three per row: nothing a user decides on is cut at 900 px
    done, planned = summary.epochs_completed, summary.planned_epochs
    cols[0].metric("Status", status_text(summary.status))
    cols[1].metric(f"Epochs done (of {planned or '?'})", f"{done}")
    cols[2].metric("ETA", eta_text(summary) if summary.status == RunStatus.RUNNING else "–")
    cols[3].metric("Last EMA Dice", fmt_dice(summary.last_ema_fg_dice))
    best_epoch = summary.best_ema_epoch
    cols[4].metric("Best EMA Dice", fmt_dice(summary.best_ema_fg_dice),
                   help=None if best_epoch is None else f"at epoch {best_epoch}")
    cols[5].metric("Final validation Dice", fmt_dice(summary.final_validation_dice),
                   help="Computed by nnU-Net on whole validation cases after training (not the pseudo Dice)")
    if planned:
        st.progress(min(1.0, done / planned), text=f"{done / planned:.0%} of the schedule")


def _actions(run_id: str, summary: RunSummary) -> None:
    source = resources.jobs()
    related = source.jobs_by_run().get(run_id, []) if source is not None else []
    eligible, why = extend_eligibility(summary)
    left, right = st.columns([1, 3])
    primary = eligible and not has_extension(run_id)
    if left.button("Extend to 2000 epochs", type="primary" if primary else "secondary", disabled=not eligible,
                   key="run_extend", icon=":material/update:", help=why or "Retrain from scratch with a longer "
                   "schedule; a dialog shows what will run before anything starts."):
        open_extend_dialog(run_id)
        st.rerun(scope="app")
    with right:
        if not eligible:
            st.caption(why)
        for job in related[:3]:
            st.page_link("views/jobs.py", label=f"Job {job.job_id} ({job.state.value}, {job.backend}) "
                         f"{job_role(job, run_id)}",
                         icon=":material/work_history:", query_params={"job": job.job_id})


def _smoothing(store: RunStore, run_id: str, frame: Any, analysis: Analysis | None) -> int:
    top = st.columns([2, 1, 1])
    window = int(top[0].slider("Smoothing (epochs)", 1, 100, value=10, key="smooth",
                               help="Centred moving average, as in the PNG report; the raw curve stays "
                                    "as a faint shadow. 1 = raw."))
    location = store.location(run_id)
    with top[1]:
        if location is not None:
            png_button(run_report(location.path, analysis, window), f"{safe_name(run_id)}_report", key="run_png")
    with top[2]:
        csv_button(frame, f"{safe_name(run_id)}_curves", key="csv_all", label="All curves CSV")
    return window


def _body(store: RunStore, run_id: str) -> None:
    summary, frame = store.summary(run_id), store.frame(run_id)
    if summary is None or frame is None:
        st.warning("This run disappeared from the results tree.")
        return
    analysis = store.analysis(run_id)
    _header(summary)
    render_lineage(store, run_id)
    _actions(run_id, summary)
    verdict_callout(analysis, summary)
    figures: tuple[Any, ...] = ()
    if frame.empty:
        st.info("No completed epoch yet: curves appear after the first epoch ends.", icon=":material/hourglass_top:")
    else:
        window = _smoothing(store, run_id, frame, analysis)
        figures = run_figures(store, run_id, window)
        if figures:
            dice_chart(run_id, frame, figures)
    render_stop_section(store, run_id, summary)
    render_follow_up(store, run_id, summary)
    flags = run_flags(summary, frame, store.problems_of(run_id))
    if flags:
        st.warning("**Needs a look:**\n" + "\n".join(f"- {f}" for f in flags), icon=":material/flag:")
    run_validation_section(store, run_id, summary, frame)
    if figures:
        panels(run_id, frame, figures)


def page() -> None:
    store = resources.store()
    if store is None:
        return
    wanted = st.query_params.get("id")
    result = st.session_state.get(RESULT_KEY)
    run_id = wanted if wanted in set(store.run_ids()) else None
    if run_id is None:
        st.title("Run")
        run_id = _choose_run(store, wanted)
        if run_id is None:
            return
    summary = store.summary(run_id)
    if summary is not None:
        st.title(f"{summary.dataset} · {summary.configuration} · fold {summary.fold}")
        st.caption(f"{summary.trainer} · {summary.plans} · nnU-Net {summary.nnunet_version} · `{run_id}`")
    if result and result.get("run_id") == run_id:
        verb = "was already active" if result.get("existing") else "was created"
        st.success(f"Extend job **{result['job_id']}** {verb}: {result['state']}"
                   + (f" — {result['reason']}" if result.get("reason") else ""), icon=":material/rocket_launch:")
        st.page_link("views/jobs.py", label=f"Open job {result['job_id']} on the Jobs page",
                      icon=":material/work_history:", query_params={"job": result["job_id"]})
    live = summary is None or summary.status != RunStatus.FINISHED  # a crashed run that writes again is running again

    @st.fragment(run_every=resources.settings().refresh_s if live else None)
    def body() -> None:
        with guard("show this run", "Other runs are unaffected; `nnwatch curves RUN_DIR` shows what was parsed."):
            store.poll()
            _body(store, run_id)

    render_extend_dialog()  # before the body: the dialog's plan does not wait for the charts
    body()
    next_steps.run_next_steps(run_id)


page()
