"""The "Extend to 2000 epochs" confirmation dialog: what will run, what it costs, then one click.

The dialog shows everything ``trainer.plan_extend`` decided (trainer, new folder, backend, GPU or
SLURM options, the exact command and every pre-flight check) next to the analyzer's verdict, and says
plainly when the verdict does not support a longer run; it still lets the user go ahead, because the
user may know something the curve does not. Nothing starts until "Start" is pressed, and a failed
blocking check disables that button with the check's own message.

Why the open state lives in ``st.session_state``: a dialog function runs only in the script run that
calls it. Keeping "which run's dialog is open" in the session lets every rerun (a widget inside the
dialog, AppTest's ``run()``) re-open it until it is confirmed or dismissed.
"""

from __future__ import annotations

import shlex
from typing import Any

import streamlit as st

from app.dashboard import resources
from app.dashboard.auth_ui import Actor, current_actor
from app.dashboard.store import RunSummary
from app.dashboard.ui import extend_eligibility, guard, verdict_supports_extend
from trainer import ExtendPlan, PreflightError

__all__ = ["RESULT_KEY", "open_extend_dialog", "render_extend_dialog"]

OPEN_KEY = "extend_dialog_run"
RESULT_KEY = "extend_result"


def open_extend_dialog(run_id: str) -> None:
    """Ask for the dialog of ``run_id`` (button callback: the next run shows it)."""
    st.session_state[OPEN_KEY] = run_id
    st.session_state.pop(RESULT_KEY, None)


def _close() -> None:
    st.session_state.pop(OPEN_KEY, None)


def render_extend_dialog() -> None:
    """Show the dialog when one was requested in this session (call once per page run)."""
    run_id = st.session_state.get(OPEN_KEY)
    if run_id:
        _dialog(run_id)


def _slurm_inputs() -> dict[str, Any]:
    cols = st.columns(4)
    return {
        "partition": cols[0].text_input("Partition", key="extend_slurm_partition", placeholder="default"),
        "time": cols[1].text_input("Time limit", key="extend_slurm_time", placeholder="e.g. 3-00:00:00"),
        "gres": cols[2].text_input("GRES", value="gpu:1", key="extend_slurm_gres"),
        "account": cols[3].text_input("Account", key="extend_slurm_account", placeholder="default"),
        "extra": st.text_input("Extra sbatch options", key="extend_slurm_extra",
                               placeholder="--qos=high --mem=32G"),
    }


def _where(plan: ExtendPlan) -> str:
    if plan.backend == "slurm":
        parts = [f"{k} {v}" for k, v in plan.slurm.to_dict().items() if v]
        return "SLURM (" + (", ".join(parts) or "cluster defaults") + f"), device {plan.device}"
    if plan.device == "cpu":
        return "this machine, on the CPU (very slow)"
    return "this machine, " + (f"GPU {plan.gpu}" if plan.gpu is not None else "a GPU chosen at launch")


def _plan_table(plan: ExtendPlan, summary: RunSummary, epochs: int) -> None:
    per_epoch = summary.median_epoch_time_s
    hours = f"≈ {per_epoch * epochs / 3600:.0f} GPU-hours ({epochs} × median epoch {per_epoch:.0f} s of the parent)" \
        if per_epoch else "unknown (the parent logged no epoch times)"
    rows = {
        "Parent run": f"{plan.parent.run_id} ({plan.parent_epochs or '?'} epochs planned)",
        "New trainer": plan.new_trainer or "–",
        "New run folder": str(plan.new_run_dir) if plan.new_trainer else "–",
        "Runs on": _where(plan),
        "Estimated cost": hours,
        "Training": "from scratch (no checkpoint is reused: the learning-rate schedule starts over)",
    }
    st.markdown("\n".join(f"- **{k}:** {v}" for k, v in rows.items()))
    if plan.argv:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items()))
        st.code((env + " \\\n  " if env else "") + shlex.join(plan.argv), language="bash", wrap_lines=True)


def _checks(plan: ExtendPlan) -> None:
    lines = []
    for check in plan.checks:
        mark = ":green[✓]" if check.ok else (":red[✗]" if check.blocking else ":orange[!]")
        lines.append(f"{mark} **{check.name}** — {check.message}")
    st.markdown("  \n".join(lines))


@st.dialog("Extend to a longer schedule", width="large", on_dismiss=_close)
def _dialog(run_id: str) -> None:
    with guard("prepare the extend", "Close the dialog and try again; `nnwatch extend --dry-run RUN_DIR` shows the "
                                     "same plan in a terminal."):
        _dialog_body(run_id, current_actor())


def _dialog_body(run_id: str, actor: Actor) -> None:
    store, jobs = resources.store(), resources.jobs()
    if store is None or jobs is None:
        return
    summary = store.summary(run_id)
    location = store.location(run_id)
    if summary is None or location is None:
        st.error(f"Run {run_id!r} is no longer in the results tree.")
        return
    st.markdown(f"#### {summary.dataset} · {summary.configuration} · {summary.trainer} · fold {summary.fold}")
    eligible, why = extend_eligibility(summary)
    if not eligible:
        st.warning(why)
        return
    analysis = store.analysis(run_id)
    if verdict_supports_extend(analysis):
        st.success(f"**The verdict supports a longer run.** {analysis.reason if analysis else ''}",
                   icon=":material/thumb_up:")
    else:
        verdict = analysis.verdict.value if analysis else "unknown"
        st.warning(f"**The verdict ({verdict.replace('_', ' ')}) does not support a longer run.** "
                   f"{analysis.reason if analysis else ''} You can still start it.", icon=":material/warning:")

    cols = st.columns([1, 1, 1])
    epochs = int(cols[0].number_input("Epochs", min_value=1, max_value=100_000, value=2000, step=250,
                                      key="extend_epochs"))
    backend = cols[1].radio("Backend", ["local", "slurm"], horizontal=True, key="extend_backend")
    device = cols[2].radio("Device", ["cuda", "cpu"], horizontal=True, key="extend_device")
    gpu: int | None = None
    slurm: dict[str, Any] = {}
    if backend == "local" and device == "cuda":
        raw = st.text_input("GPU index", key="extend_gpu", placeholder="empty: the GPU with the most free memory")
        if raw.strip():
            if not raw.strip().isdigit():
                st.error("The GPU index is a number such as 0 or 1.")
                return
            gpu = int(raw.strip())
    if backend == "slurm":
        slurm = _slurm_inputs()
    with st.spinner("Checking the plan (the first time loads nnU-Net, a few seconds)…"):
        try:
            root = store.root
            plan = jobs.plan(location.path, root=root, epochs=epochs, backend=backend, device=device, gpu=gpu,
                             slurm=slurm)
        except ValueError as exc:
            st.error(f"{exc}")
            return
    st.markdown("##### What will run")
    _plan_table(plan, summary, epochs)
    st.markdown("##### Pre-flight checks")
    _checks(plan)
    if not actor.may_act:
        st.warning(actor.why_not, icon=":material/lock:")
    left, right, _ = st.columns([1.2, 0.8, 2])
    start = left.button(f"Start {epochs}-epoch run", type="primary", key="extend_confirm",
                        disabled=not plan.ok or not actor.may_act, icon=":material/play_arrow:",
                        help=None if plan.ok else "A blocking check failed: " + "; ".join(plan.problems))
    if right.button("Cancel", key="extend_cancel"):
        _close()
        st.rerun()
    if start and plan.ok and actor.may_act and actor.name:
        before = {job.job_id for job in jobs.registry.list_jobs()}
        try:
            job = jobs.submit(plan, actor.name)
        except PreflightError as exc:
            st.error(str(exc))
            return
        st.session_state[RESULT_KEY] = {"job_id": job.job_id, "state": job.state.value, "run_id": run_id,
                                        "new_run_id": job.new_run_id, "reason": job.reason,
                                        "existing": job.job_id in before}
        _close()
        st.rerun()
