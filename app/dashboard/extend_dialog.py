"""The "Extend to 2000 epochs" confirmation dialog: what will run, what it costs, then one click.

The dialog shows everything ``trainer.plan_extend`` decided (trainer, new folder, backend, GPU or
SLURM options, the exact command and every pre-flight check) next to the analyzer's verdict, and says
plainly when the verdict does not support a longer run; it still lets the user go ahead, because the
user may know something the curve does not. Nothing starts until "Start" is pressed; a failed
blocking check or an invalid input disables that button (it never disappears) with the reason inline.

Why the open state lives in ``st.session_state``: a dialog function runs only in the script run that
calls it. Keeping "which run's dialog is open" in the session lets every rerun (a widget inside the
dialog, AppTest's ``run()``) re-open it until it is confirmed or dismissed.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.dashboard import resources
from app.dashboard.auth_ui import Actor, current_actor
from app.dashboard.store import RunSummary
from app.dashboard.ui import extend_eligibility, guard, verdict_supports_extend
from trainer import ExtendPlan, PreflightError, command_text, sbatch_preview, suggest_time_limit

__all__ = ["RESULT_KEY", "open_extend_dialog", "render_extend_dialog"]

OPEN_KEY = "extend_dialog_run"
RESULT_KEY = "extend_result"
MAX_EPOCHS = 20_000


def open_extend_dialog(run_id: str) -> None:
    """Ask for the dialog of ``run_id`` (button callback: the next run shows it)."""
    st.session_state[OPEN_KEY] = run_id
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop("extend_start_over", None)


def _close() -> None:
    st.session_state.pop(OPEN_KEY, None)


def render_extend_dialog() -> None:
    """Show the dialog when one was requested in this session (call once per page run)."""
    run_id = st.session_state.get(OPEN_KEY)
    if run_id:
        _dialog(run_id)


def _slurm_inputs(summary: RunSummary, epochs: int | None) -> dict[str, Any]:
    cols = st.columns(2)
    suggested = suggest_time_limit(epochs or 0, summary.median_epoch_time_s)
    out = {
        "partition": cols[0].text_input("Partition", key="extend_slurm_partition", placeholder="cluster default"),
        "time": cols[1].text_input("Time limit", key="extend_slurm_time", placeholder=suggested or "e.g. 3-00:00:00",
                                   help=None if suggested is None else f"Suggested {suggested}: {epochs} epochs × "
                                   f"the parent's median epoch of {summary.median_epoch_time_s:.0f} s, plus 25 %"),
        "gres": cols[0].text_input("GRES", value="gpu:1", key="extend_slurm_gres"),
        "account": cols[1].text_input("Account", key="extend_slurm_account", placeholder="your default"),
        "extra": st.text_input("Extra sbatch options", key="extend_slurm_extra",
                               placeholder="--qos=high --mem=32G"),
    }
    if suggested and not out["time"]:
        st.caption(f"Suggested time limit: **{suggested}** (from the parent's epoch time); the cluster's default "
                   "applies when left empty.")
    return out


def _where(plan: ExtendPlan) -> str:
    if plan.backend == "slurm":
        parts = [f"{k} {v}" for k, v in plan.slurm.to_dict().items() if v]
        return "SLURM (" + (", ".join(parts) or "cluster defaults") + f"), device {plan.device}"
    if plan.device == "cpu":
        return "this machine, on the CPU (very slow)"
    return "this machine, " + (f"GPU {plan.gpu} (CUDA_VISIBLE_DEVICES={plan.gpu})" if plan.gpu is not None
                               else "a GPU chosen at launch")


def _plan_table(plan: ExtendPlan, summary: RunSummary, epochs: int) -> None:
    per_epoch = summary.median_epoch_time_s
    unit = "CPU-hours" if plan.device == "cpu" else "GPU-hours"
    hours = f"≈ {per_epoch * epochs / 3600:.0f} {unit} ({epochs} × median epoch {per_epoch:.0f} s of the parent)" \
        if per_epoch else "unknown (the parent logged no epoch times)"
    rows = {
        "Parent run": f"{plan.parent.run_id} ({plan.parent_epochs or '?'} epochs planned)",
        "New trainer": plan.new_trainer or "–",
        "New run folder": str(plan.new_run_dir) if plan.new_trainer else "–",
        "Runs on": _where(plan),
        "Estimated cost": hours,
        "Training": "from scratch (no checkpoint is reused: the learning-rate schedule starts over)",
    }
    if plan.start_over and plan.aside is not None:
        rows["Earlier attempt"] = f"moved aside to {plan.aside} before the start (nothing is deleted)"
    st.markdown("\n".join(f"- **{k}:** {v}" for k, v in rows.items()))
    if plan.argv:
        st.caption("The exact command (copy button at its right):")
        st.code(command_text(plan), language="bash", wrap_lines=True)
        if plan.backend == "slurm":
            with st.expander("The sbatch script that will be submitted"):
                st.code(sbatch_preview(plan), language="bash")


def _checks(plan: ExtendPlan) -> None:
    lines = []
    for check in plan.checks:
        mark = ":green[✓]" if check.ok else (":red[✗]" if check.blocking else ":orange[!]")
        lines.append(f"{mark} **{check.title}** — {check.message}")
    st.markdown("  \n".join(lines))


@st.dialog("Extend to a longer schedule", width="large", on_dismiss=_close)
def _dialog(run_id: str) -> None:
    with guard("prepare the extend", "Close the dialog and try again; `nnwatch extend --dry-run RUN_DIR` shows the "
                                     "same plan in a terminal."):
        _dialog_body(run_id, current_actor())


def _epochs_input(column: Any) -> tuple[int | None, str | None]:
    value = column.number_input("Epochs", value=2000, step=250, key="extend_epochs")
    epochs = int(value)
    if epochs != value or epochs < 1:
        return None, "The number of epochs is a whole number above 0, such as 2000."
    if epochs > MAX_EPOCHS:
        return None, f"{epochs} epochs is far beyond any nnU-Net schedule; use at most {MAX_EPOCHS}."
    return epochs, None


def _gpu_input() -> tuple[int | None, str | None]:
    raw = st.text_input("GPU index", key="extend_gpu", placeholder="empty: the GPU with the most free memory")
    if not raw.strip():
        return None, None
    if not raw.strip().isdigit():
        return None, f"The GPU index is a number such as 0 or 1, not {raw.strip()!r}."
    return int(raw.strip()), None


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
    if resources.settings().demo:
        st.info("**These are demo runs: nothing can start from here.** They were written by nnwatch to show the "
                "dashboard; there is no nnU-Net preprocessed data or dataset behind them, so the checks below "
                "fail. On your own results tree the same dialog starts the training.", icon=":material/science:")
    analysis = store.analysis(run_id)
    if verdict_supports_extend(analysis):
        st.success(f"**The verdict supports a longer run.** {analysis.reason if analysis else ''}",
                   icon=":material/thumb_up:")
    else:
        verdict = analysis.verdict.value if analysis else "unknown"
        st.warning(f"**The verdict ({verdict.replace('_', ' ')}) does not support a longer run.** "
                   f"{analysis.reason if analysis else ''} You can still start it.", icon=":material/warning:")

    cols = st.columns([1, 1, 1])
    epochs, epochs_error = _epochs_input(cols[0])
    backend = cols[1].radio("Backend", ["local", "slurm"], horizontal=True, key="extend_backend")
    device = cols[2].radio("Device", ["cuda", "cpu"], horizontal=True, key="extend_device")
    if epochs_error:
        st.error(epochs_error, icon=":material/error:")
    gpu, gpu_error = _gpu_input() if backend == "local" and device == "cuda" else (None, None)
    if gpu_error:
        st.error(gpu_error, icon=":material/error:")
    slurm = _slurm_inputs(summary, epochs) if backend == "slurm" else {}
    plan: ExtendPlan | None = None
    if epochs is not None and gpu_error is None:
        start_over = bool(st.session_state.get("extend_start_over"))
        with st.spinner("Checking the plan…"):
            try:
                plan = jobs.plan(location.path, root=store.root_of(run_id), epochs=epochs, backend=backend,
                                 device=device, gpu=gpu, slurm=slurm, start_over=start_over)
            except ValueError as exc:
                st.error(f"{exc}", icon=":material/error:")
    if plan is not None:
        st.markdown("##### What will run")
        _plan_table(plan, summary, plan.epochs)
        st.markdown("##### Pre-flight checks")
        _checks(plan)
        if plan.can_start_over:
            st.checkbox(f"Start over: move the earlier attempt aside to `{plan.aside}` (nothing is deleted)",
                        key="extend_start_over")
    if not actor.may_act:
        st.warning(actor.why_not, icon=":material/lock:")
    ready = plan is not None and plan.ok and actor.may_act
    why_not = None if ready else ("Fix the inputs above first." if plan is None else
                                  "A blocking check failed: " + "; ".join(plan.problems) if not plan.ok else None)
    left, right, _ = st.columns([1.2, 0.8, 2])
    start = left.button(f"Start {epochs}-epoch run" if epochs else "Start", type="primary", key="extend_confirm",
                        disabled=not ready, icon=":material/play_arrow:", help=why_not)
    if right.button("Cancel", key="extend_cancel"):
        _close()
        st.rerun()
    if start and plan is not None and ready and actor.name:
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
