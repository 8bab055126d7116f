"""The run page's "what you can run next" box: nnU-Net's own commands for this run, each with a copy button
(``st.code`` has one), resume with ``--c`` when it stopped, validate with ``--val_best`` when it can."""

from __future__ import annotations

import streamlit as st

from app.dashboard.store import RunStatus, RunStore, RunSummary
from trainer import follow_up_commands

__all__ = ["render_follow_up"]


def render_follow_up(store: RunStore, run_id: str, summary: RunSummary) -> None:
    """Nothing when no command fits (a running run, a v1 run, a run without checkpoints)."""
    location = store.location(run_id)
    if location is None:
        return
    stopped = summary.status in (RunStatus.CRASHED, RunStatus.STALLED)
    commands = follow_up_commands(location, stopped=stopped)
    if not commands:
        return
    with st.expander("nnU-Net commands for this run", expanded=stopped, icon=":material/terminal:"):
        for command in commands:
            st.caption(command.purpose)
            st.code(command.text, language="bash", wrap_lines=True)
