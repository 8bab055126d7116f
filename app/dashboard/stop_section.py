"""The run page's "why it stopped" section: the cause, the lines that show it, where they came from, and what
to do, for a run that stopped before its planned end (crashed or stalled).

The cause and evidence come with the run's summary (the watcher classified them when the run stopped); the
section re-asks the classifier for the full answer (source, strength, further signs) with the evidence of
nnwatch's own job for this run, when there is one.
"""

from __future__ import annotations

import streamlit as st

from app.dashboard import resources
from app.dashboard.store import RunStatus, RunStore, RunSummary
from monitor.stops import JobEvidence, StopCause, StopDiagnosis, diagnose
from trainer import job_evidence

__all__ = ["render_stop_section", "stop_diagnosis"]


def _job_of(run_id: str) -> JobEvidence | None:
    source = resources.jobs()
    if source is None:
        return None
    trained_here = [job for job in source.jobs_by_run().get(run_id, []) if job.new_run_id == run_id]
    return job_evidence(trained_here[0]) if trained_here else None  # newest first


def stop_diagnosis(store: RunStore, run_id: str, summary: RunSummary) -> StopDiagnosis | None:
    """The full answer for a stopped run, or None for a run that did not stop early."""
    location = store.location(run_id)
    if summary.stop_cause is None or location is None:
        return None
    found = diagnose(location, store.curves(run_id), job=_job_of(run_id))
    if found.cause.value != summary.stop_cause:  # the files changed since the summary: show what it says
        found = StopDiagnosis(StopCause(summary.stop_cause), summary.stop_evidence or "", found.source,
                              found.strength, StopCause(summary.stop_cause).label, found.notes)
    return found


def render_stop_section(store: RunStore, run_id: str, summary: RunSummary) -> None:
    """Nothing for a running or finished run; for a stopped one, the cause with its evidence and advice."""
    found = stop_diagnosis(store, run_id, summary)
    if found is None:
        return
    stalled = summary.status == RunStatus.STALLED
    box = st.warning if stalled else st.error
    if found.cause is StopCause.UNKNOWN:  # the summary says what was (not) found
        box(f"**{'Stalled' if stalled else 'Stopped'}:** {found.summary}.", icon=":material/report:")
    else:
        title = f"{'Stalled, most likely' if stalled else 'Stopped'} because of {found.cause.label}."
        box(f"**{title}** {found.summary}", icon=":material/report:")
    st.caption(f"Evidence from {found.source} ({found.strength} evidence)")
    st.code(found.evidence or "(no lines)", language=None)
    for note in found.notes:
        st.markdown(f"- {note}")
    st.info(f"**What to do.** {found.advice}", icon=":material/lightbulb:")
