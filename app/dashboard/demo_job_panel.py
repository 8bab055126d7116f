"""The Jobs page's panel on the demo: start the demo job (:mod:`app.demo_job`) and say which one runs.

The panel lives outside the page's live fragment, so a click never lands in a fragment rerun that a full rerun has
replaced, and a click while a demo job runs is answered with that job (the registry allows one at a time).
"""

from __future__ import annotations

import streamlit as st

from app.dashboard import resources
from app.dashboard.auth_ui import current_actor
from app.dashboard.jobs_source import JobsSource
from app.demo_job import DEMO_JOB_EPOCH_S, DEMO_JOB_EPOCHS, DEMO_JOB_RUN, plan_demo_job
from trainer import JobKind, PreflightError

__all__ = ["demo_job_panel"]


def demo_job_panel(source: JobsSource) -> None:
    """On the demo only: a button that starts the demo job, a real process tracked like any job, and the job's
    notice (shown by the page) once it started."""
    config = resources.settings()
    if not config.demo:
        return
    active = next((job for job in source.jobs() if job.kind is JobKind.DEMO and job.state.active), None)
    actor = current_actor()
    with st.container(border=True):
        st.markdown(f"**Try a real job.** The demo job is a real process on this machine, started, tracked and "
                    f"cancelled like an extend. It trains nothing: it writes a synthetic nnU-Net training into "
                    f"the demo run `{DEMO_JOB_RUN}`, one epoch every {DEMO_JOB_EPOCH_S:g} s for {DEMO_JOB_EPOCHS} "
                    "epochs. Watch it on the overview and its run page, then cancel it here.")
        left, middle, right = st.columns([1, 1, 2], vertical_alignment="center")
        clicked = left.button("Start the demo job", key="start_demo_job", icon=":material/play_arrow:",
                              disabled=not actor.may_act, help=actor.why_not)
        middle.page_link("views/run.py", label="Its run", icon=":material/monitoring:",
                         query_params={"id": DEMO_JOB_RUN})
        if not actor.may_act:
            right.caption(actor.why_not)
        elif active is not None:
            right.caption(f"Demo job {active.job_id} is {active.state.value}; cancel it below to start it again.")
        if not clicked:
            return
        try:
            job = source.submit_step(plan_demo_job(resources.results_root(config)), actor.name or "unknown")
        except PreflightError as exc:
            st.error(str(exc), icon=":material/block:")
            return
    if active is not None and job.job_id == active.job_id:
        notice = f"Demo job {job.job_id} is already {job.state.value}: one demo job at a time."
    else:
        notice = f"Demo job {job.job_id} is {job.state.value}" + (f": {job.reason}" if job.reason else
                                                                  ": a new epoch every second.")
    st.session_state["jobs_notice"] = notice
    st.session_state["job_picker"] = job.job_id
    st.query_params["job"] = job.job_id
    st.rerun()
