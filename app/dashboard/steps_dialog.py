"""The confirmation dialog of nnU-Net's next steps: train a missing fold, validate with --npz, find the best model.

Modelled on the Extend dialog: it shows what ``trainer.plan_train_fold`` / ``plan_validate`` /
``plan_find_best`` decided (the folder written into, where it runs, the exact command, every pre-flight
check), and nothing starts until "Start" is pressed; a failed blocking check disables that button with the
check's own message. Which step is open lives in ``st.session_state`` so every rerun re-opens it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.dashboard import resources
from app.dashboard.auth_ui import Actor, current_actor
from app.dashboard.ui import guard
from trainer import (
    JobKind,
    PreflightError,
    SlurmOptions,
    StepPlan,
    fold_files,
    plan_find_best,
    plan_train_fold,
    plan_validate,
)

__all__ = ["RESULT_KEY", "StepRequest", "open_step_dialog", "render_step_dialog", "step_plan"]

OPEN_KEY = "step_dialog"
RESULT_KEY = "step_result"
_TITLES = {JobKind.TRAIN_FOLD: "Train a missing fold", JobKind.VALIDATE: "Validate with --npz",
           JobKind.FIND_BEST: "Find the best configuration"}


@dataclass(frozen=True)
class StepRequest:
    """What a button asked for: the kind, the folder it starts from, and the kind's own choices."""

    kind: JobKind
    path: str
    root: str | None = None
    fold: str | None = None
    trainers: tuple[str, ...] = ()
    configurations: tuple[str, ...] = ()
    plans: tuple[str, ...] = ()
    folds: tuple[str, ...] = ()
    context: str = ""  # which page section asked (shows the result there)


def open_step_dialog(request: StepRequest) -> None:
    """Ask for the dialog (button callback: the next run shows it)."""
    st.session_state[OPEN_KEY] = asdict(request)
    st.session_state.pop(RESULT_KEY, None)


def _close() -> None:
    st.session_state.pop(OPEN_KEY, None)


def render_step_dialog() -> None:
    """Show the dialog when one was requested in this session (call once per page run)."""
    raw = st.session_state.get(OPEN_KEY)
    if raw:
        request = StepRequest(**{**raw, "kind": JobKind(raw["kind"]),
                                 **{k: tuple(raw[k]) for k in ("trainers", "configurations", "plans", "folds")}})
        _dialog(request)


def step_plan(request: StepRequest, *, backend: str = "local", device: str = "cuda", gpu: int | None = None,
              slurm: SlurmOptions | None = None, val_best: bool = False) -> StepPlan:
    """The plan behind a request (raises ``ValueError``/``FileNotFoundError`` for input that cannot be planned)."""
    if request.kind is JobKind.TRAIN_FOLD:
        return plan_train_fold(request.path, request.fold or "0", backend=backend, device=device, gpu=gpu,
                               slurm=slurm, root=request.root)
    if request.kind is JobKind.VALIDATE:
        return plan_validate(request.path, val_best=val_best, backend=backend, device=device, gpu=gpu, slurm=slurm,
                             root=request.root)
    return plan_find_best(request.path, configurations=request.configurations, trainers=request.trainers,
                          plans=request.plans or ("nnUNetPlans",), folds=request.folds, backend=backend,
                          slurm=slurm, root=request.root)


def _slurm_inputs(kind: JobKind) -> SlurmOptions:
    cols = st.columns(4)
    partition = cols[0].text_input("Partition", key="step_slurm_partition", placeholder="default")
    time = cols[1].text_input("Time limit", key="step_slurm_time", placeholder="e.g. 1-00:00:00")
    gres = cols[2].text_input("GRES", value="" if kind is JobKind.FIND_BEST else "gpu:1", key="step_slurm_gres")
    account = cols[3].text_input("Account", key="step_slurm_account", placeholder="default")
    extra = st.text_input("Extra sbatch options", key="step_slurm_extra", placeholder="--qos=high --mem=32G")
    return SlurmOptions.from_cli(partition or None, time or None, gres, account or None, extra or None)


def _where(plan: StepPlan) -> str:
    if plan.backend == "slurm":
        parts = [f"{k} {v}" for k, v in plan.slurm.to_dict().items() if v]
        return "SLURM (" + (", ".join(parts) or "cluster defaults") + f"), device {plan.device}"
    if plan.device == "cpu":
        return "this machine, on the CPU" + ("" if plan.kind is JobKind.FIND_BEST else " (slow)")
    return "this machine, " + (f"GPU {plan.gpu}" if plan.gpu is not None else "a GPU chosen at launch")


def _show_plan(plan: StepPlan) -> None:
    rows = {"Job": f"{plan.kind.value}: {plan.description}", "Writes into": str(plan.target),
            "Runs on": _where(plan)}
    st.markdown("\n".join(f"- **{k}:** {v}" for k, v in rows.items()))
    if plan.argv:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items()))
        st.code((env + " \\\n  " if env else "") + shlex.join(plan.argv), language="bash", wrap_lines=True)
    lines = []
    for check in plan.checks:
        mark = ":green[✓]" if check.ok else (":red[✗]" if check.blocking else ":orange[!]")
        lines.append(f"{mark} **{check.name}** — {check.message}")
    st.markdown("##### Pre-flight checks")
    st.markdown("  \n".join(lines))


@st.dialog("nnU-Net next step", width="large", on_dismiss=_close)
def _dialog(request: StepRequest) -> None:
    with guard("prepare this job", "Close the dialog and try again; the same plan shows in a terminal with "
                                   "`nnwatch train-fold|validate|find-best ... --dry-run`."):
        _dialog_body(request, current_actor())


def _options(request: StepRequest) -> dict[str, Any]:
    cols = st.columns([1, 1, 1])
    backend = cols[0].radio("Backend", ["local", "slurm"], horizontal=True, key="step_backend")
    device = "cpu"
    if request.kind is not JobKind.FIND_BEST:
        device = cols[1].radio("Device", ["cuda", "cpu"], horizontal=True, key="step_device")
    options: dict[str, Any] = {"backend": backend, "device": device}
    if request.kind is JobKind.VALIDATE:
        files = fold_files(Path(request.path))
        why = None if files.checkpoint_final else (
            "Not offered: this run has no checkpoint_final.pth, and nnU-Net's --val loads it before switching to "
            "checkpoint_best.pth, so the validation would fail (nnU-Net issue #3056).")
        options["val_best"] = cols[2].checkbox("Use checkpoint_best (--val_best)", key="step_val_best",
                                               disabled=why is not None, help=why or "Validate with the best "
                                               "checkpoint instead of the final one; replaces the validation folder.")
        if why:
            st.caption(why)
    if backend == "local" and device == "cuda":
        raw = st.text_input("GPU index", key="step_gpu", placeholder="empty: the GPU with the most free memory")
        if raw.strip() and not raw.strip().isdigit():
            raise ValueError("the GPU index is a number such as 0 or 1")
        options["gpu"] = int(raw) if raw.strip() else None
    if backend == "slurm":
        options["slurm"] = _slurm_inputs(request.kind)
    return options


def _dialog_body(request: StepRequest, actor: Actor) -> None:
    jobs = resources.jobs()
    if jobs is None:
        return
    st.markdown(f"#### {_TITLES[request.kind]}")
    try:
        options = _options(request)
        with st.spinner("Checking the plan (the first time loads nnU-Net, a few seconds)…"):
            plan = step_plan(request, **options)
    except (ValueError, FileNotFoundError) as exc:
        st.error(str(exc))
        return
    st.markdown("##### What will run")
    _show_plan(plan)
    if not actor.may_act:
        st.warning(actor.why_not, icon=":material/lock:")
    left, right, _ = st.columns([1.2, 0.8, 2])
    start = left.button("Start", type="primary", key="step_confirm", disabled=not plan.ok or not actor.may_act,
                        icon=":material/play_arrow:",
                        help=None if plan.ok else "A blocking check failed: " + "; ".join(plan.problems))
    if right.button("Cancel", key="step_cancel"):
        _close()
        st.rerun()
    if start and plan.ok and actor.may_act and actor.name:
        before = {job.job_id for job in jobs.registry.list_jobs()}
        try:
            job = jobs.submit_step(plan, actor.name)
        except PreflightError as exc:
            st.error(str(exc))
            return
        st.session_state[RESULT_KEY] = {"job_id": job.job_id, "state": job.state.value, "kind": job.kind.value,
                                        "target_id": job.new_run_id, "reason": job.reason,
                                        "existing": job.job_id in before, "context": request.context}
        _close()
        st.rerun()
