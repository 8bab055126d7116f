"""Jobs: every job with its state, backend, who asked and when, its command, a live log tail, and cancel.

The registry is reconciled with the backends on each refresh (throttled and shared across sessions), so
a job that finished or died shows its final state and reason here without anyone running ``nnwatch
jobs``. ``/jobs?job=<id>`` opens one job directly. On the demo the page also starts the demo job
(:mod:`app.demo_job`), a real process that writes a synthetic training, so starting and cancelling can be tried.
"""

from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from app.dashboard import resources
from app.dashboard.auth_ui import current_actor
from app.dashboard.demo_job_panel import demo_job_panel
from app.dashboard.downloads import csv_button
from app.dashboard.jobs_source import JobsSource, tail_text
from app.dashboard.ui import guard
from monitor.numbers import moment
from trainer import Job, JobKind

_STATE_LABELS = {"queued": "⏳ queued", "running": "▶ running", "succeeded": "✓ succeeded", "failed": "✗ failed",
                 "cancelled": "■ cancelled"}
_CONFIRM = "jobs_confirm_cancel"


def _frame(jobs: list[Job]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Job": job.job_id, "Kind": job.kind.value.replace("_", " "),
        "State": _STATE_LABELS.get(job.state.value, job.state.value), "Backend": job.backend,
        "Requested by": job.requested_by, "Created": moment(job.created_at),
        "Parent run": job.parent_run_id, "Epochs": job.epochs, "New trainer": job.new_trainer,
        "Command": shlex.join(job.argv), "Reason": job.reason or "",
    } for job in jobs], columns=["Job", "Kind", "State", "Backend", "Requested by", "Created", "Parent run", "Epochs",
                                 "New trainer", "Command", "Reason"])


def _picker_label(job: Job) -> str:
    """One line per job: extensions say their new schedule, the other kinds what they are."""
    what = f"→ {job.epochs} epochs" if job.kind is JobKind.EXTEND else job.kind.value.replace("_", " ")
    return f"{job.job_id} · {job.state.value} · {job.parent_run_id} {what}"


def _cancel(source: JobsSource, job: Job) -> None:
    actor = current_actor()
    if not job.state.active:
        return
    if not actor.may_act:
        st.button("Cancel job", key="cancel_job", disabled=True, help=actor.why_not, icon=":material/stop_circle:")
        st.caption(actor.why_not)
        return
    if st.session_state.get(_CONFIRM) != job.job_id:
        if st.button("Cancel job", key="cancel_job", icon=":material/stop_circle:"):
            st.session_state[_CONFIRM] = job.job_id
            st.rerun(scope="app")
        return
    st.warning(f"Cancel job **{job.job_id}**? Its training process is stopped (SIGTERM, then SIGKILL after 10 s; "
               "`scancel` on SLURM). The half-trained run stays on disk.", icon=":material/warning:")
    left, right, _ = st.columns([1, 1, 4])
    if left.button("Yes, cancel it", key="confirm_cancel", type="primary"):
        st.session_state.pop(_CONFIRM, None)
        with st.spinner("Stopping the job (up to 10 s for nnU-Net to exit)…"):
            cancelled = source.cancel(job.job_id, actor.name or "unknown")
        st.session_state["jobs_notice"] = f"Job {cancelled.job_id} is {cancelled.state.value}."
        st.rerun(scope="app")
    if right.button("Keep it running", key="keep_job"):
        st.session_state.pop(_CONFIRM, None)
        st.rerun(scope="app")


def _details(source: JobsSource, job: Job) -> None:
    """The picked job, from the same reading of the registry as the table and the picker, so all three agree."""
    st.subheader(f"Job {job.job_id} · {_STATE_LABELS.get(job.state.value, job.state.value)}")
    cols = st.columns(4)
    cols[0].markdown(f"**Backend**  \n{job.backend} ({job.device})" + (f"  \nid `{job.backend_job_id}`"
                                                                     if job.backend_job_id else ""))
    cols[1].markdown(f"**Requested by**  \n{job.requested_by}  \n{moment(job.created_at)}")
    cols[2].markdown(f"**Started / finished**  \n{moment(job.started_at)}  \n{moment(job.finished_at)}")
    cols[3].markdown("**Exit**  \n" + ("–" if job.exit_code is None else str(job.exit_code))
                     + (f"  \ncancelled by {job.cancel_requested_by}" if job.cancel_requested_by else ""))
    if job.reason:
        (st.error if job.state.value == "failed" else st.info)(job.reason)
    links = st.columns([1, 1, 3])
    extend = job.kind is JobKind.EXTEND  # the other kinds write into the run (or folder) they were planned from
    if extend:
        links[0].page_link("views/run.py", label="Parent run", icon=":material/monitoring:",
                           query_params={"id": job.parent_run_id})
    store = resources.store()
    where = links[1] if extend else links[0]
    if store is not None and job.new_run_id in set(store.run_ids()):
        where.page_link("views/run.py", label="New run" if extend else "Its run", icon=":material/monitoring:",
                        query_params={"id": job.new_run_id})
    elif extend or job.kind is JobKind.DEMO:
        where.caption(("New run" if extend else "Its run") + ": no epoch yet")
    st.code(shlex.join(job.argv), language="bash", wrap_lines=True)
    _cancel(source, job)
    st.markdown("**Log** (last lines, live)")
    text = tail_text(job.log_path)
    st.code(text if text else "(no output yet)", language="text", height=320, wrap_lines=True)
    st.caption(f"`{job.log_path}`")


def page() -> None:
    st.title("Jobs")
    source = resources.jobs()
    if source is None:
        return
    notice = st.session_state.pop("jobs_notice", None)
    if notice:
        st.success(notice, icon=":material/check_circle:")
    demo_job_panel(source)

    @st.fragment(run_every=resources.settings().refresh_s)
    def live() -> None:
        with guard("list the jobs", "The registry is a SQLite file; check that it is readable (NNWATCH_JOBS_DB)."):
            jobs = source.jobs()
            if source.last_error:
                st.warning(f"Could not ask the backends for news ({source.last_error}); showing the last known "
                           "states.")
            wanted = st.query_params.get("job")
            if wanted and wanted not in {job.job_id for job in jobs}:
                st.warning(f"No job `{wanted}` in this registry ({source.path}): a link from another server, or a "
                           "mistyped id." + (" Pick one below." if jobs else ""), icon=":material/link_off:")
            if not jobs:
                st.info("No jobs yet. Open a finished run and press **Extend to 2000 epochs**; the job shows up "
                        "here at once.", icon=":material/work_history:")
                return
            frame = _frame(jobs)
            st.dataframe(frame, hide_index=True, width="stretch", key="jobs_table",
                         column_config={"Job": st.column_config.TextColumn(width=110),
                                        "State": st.column_config.TextColumn(width=105),
                                        "Backend": st.column_config.TextColumn(width=70),
                                        "Requested by": st.column_config.TextColumn(width=100),
                                        "Created": st.column_config.TextColumn(width=165),
                                        "Parent run": st.column_config.TextColumn(width=300),
                                        "Epochs": st.column_config.NumberColumn(width=65),
                                        "New trainer": st.column_config.TextColumn(width=200),
                                        "Command": st.column_config.TextColumn(width=500),
                                        "Reason": st.column_config.TextColumn(width=300)})
            csv_button(frame, "nnwatch_jobs", key="jobs_csv", label="Jobs as CSV")
            ids = [job.job_id for job in jobs]
            by_id = {job.job_id: job for job in jobs}
            chosen = st.selectbox("Job", ids, index=ids.index(wanted) if wanted in ids else 0, key="job_picker",
                                  format_func=lambda i: _picker_label(by_id[i]))
            if chosen != wanted:
                st.query_params["job"] = chosen
            _details(source, by_id[chosen])

    live()


page()
