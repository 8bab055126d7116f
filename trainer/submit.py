"""Turn a plan (an :class:`~trainer.plan.ExtendPlan` or a :class:`~trainer.steps.StepPlan`) into a job.

A job is recorded first, then launched.

The order is what makes extends idempotent. The registry row is inserted before anything starts, and a
partial unique index allows one queued/running extend per (parent run, epochs) and per new run folder;
a caller that loses that race gets the winner's job back and launches nothing. If the job is cancelled
while its launch is still in flight, the launcher notices (its update finds no active row) and stops what
it just started. The next-step kinds (:func:`submit_step`) follow the same order; their unique key is the
folder they write into.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

from trainer.backends import Backend, BackendError, LaunchRequest, Observation
from trainer.checks import check_target, check_target_free
from trainer.jobs import Job, JobKind, new_job_id, utc_now
from trainer.plan import ExtendPlan, PreflightError
from trainer.registry import JobRegistry
from trainer.runner import LOG_FILE
from trainer.selection import get_backend
from trainer.states import JobState
from trainer.steps import StepPlan
from trainer.variants import VariantError, install_variant, locate_trainer

__all__ = ["current_user", "submit", "submit_step"]


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is asking: ``NNWATCH_USER`` (set by a dashboard login), else the OS user."""
    environ = os.environ if environ is None else environ
    if environ.get("NNWATCH_USER"):
        return environ["NNWATCH_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _new_job(plan: ExtendPlan, registry: JobRegistry, requested_by: str) -> Job:
    job_id = new_job_id()
    job_dir = registry.job_dir(job_id)
    options: dict[str, object] = {"gpu": plan.gpu, "parent_epochs": plan.parent_epochs,
               "variant_module": None if plan.variant is None or plan.variant.module_path is None
               else str(plan.variant.module_path)}
    if plan.backend == "slurm":
        options["slurm"] = plan.slurm.to_dict()
    return Job(
        job_id=job_id, state=JobState.QUEUED, parent_run_id=plan.parent.run_id, parent_path=str(plan.parent.path),
        new_run_id=plan.new_run_id, new_run_path=str(plan.new_run_dir), new_trainer=plan.new_trainer,
        epochs=plan.epochs, backend=plan.backend, device=plan.device, requested_by=requested_by,
        created_at=utc_now(), argv=plan.argv, env=dict(plan.env), job_dir=str(job_dir),
        log_path=str(job_dir / LOG_FILE), options=options,
    )


def _move_aside(plan: ExtendPlan, registry: JobRegistry) -> None:
    """Start over: move the stopped attempt in the new run's folder to the sibling the plan named, after
    checking again that it is still stopped (a job may have started since the plan was made)."""
    again = check_target(plan.new_run_dir, jobs=registry.list_jobs(), start_over=True)
    if not again.check.ok or plan.aside is None:
        raise PreflightError(f"cannot extend {plan.parent.run_id}:\n  - {again.check.message}")
    if plan.aside.exists():
        raise PreflightError(f"cannot extend {plan.parent.run_id}:\n  - {plan.aside} exists; plan again")
    try:
        plan.new_run_dir.rename(plan.aside)
    except OSError as exc:
        raise PreflightError(f"cannot extend {plan.parent.run_id}:\n  - cannot move {plan.new_run_dir} aside to "
                             f"{plan.aside}: {exc.strerror or exc}") from exc


def submit(plan: ExtendPlan, *, registry: JobRegistry, requested_by: str | None = None,
           backend: Backend | None = None) -> Job:
    """Start the planned extend, or return the extend of the same run and length that is already active.

    Raises :class:`~trainer.plan.PreflightError` when a blocking check failed (nothing is recorded).
    A launch that fails is recorded as a failed job with the backend's message as its reason.
    """
    plan.raise_for_problems()
    existing = registry.active_job_for(str(plan.parent.path), plan.epochs)
    if existing is not None:
        return existing
    if plan.start_over:
        _move_aside(plan, registry)
    target = check_target_free(plan.new_run_dir)
    if not target.ok:
        raise PreflightError(f"cannot extend {plan.parent.run_id}:\n  - {target.message}")
    if plan.variant is not None:
        try:
            install_variant(plan.variant, {**os.environ, **plan.env})
        except VariantError as exc:
            raise PreflightError(f"cannot extend {plan.parent.run_id}:\n  - {exc}") from exc
    job, created = registry.create(_new_job(plan, registry, requested_by or current_user()))
    if not created:
        return job
    return _launch(job, registry, backend or get_backend(plan.backend), LaunchRequest(
        job_id=job.job_id, job_dir=registry.job_dir(job.job_id), log_path=registry.job_dir(job.job_id) / LOG_FILE,
        argv=plan.argv, env=plan.env, slurm=plan.slurm))


def _launch(job: Job, registry: JobRegistry, backend: Backend, request: LaunchRequest) -> Job:
    """Start a recorded job; a failed launch is recorded, a launch that lost to a cancel is stopped."""
    try:
        launched = backend.launch(request)
    except BackendError as exc:
        registry.record_observation(job, Observation(JobState.FAILED, reason=f"launch failed: {exc}"))
        return registry.get(job.job_id)
    if not registry.record_launch(job.job_id, launched):
        # Cancelled (or given up on) while we were launching: stop what we just started.
        stale = registry.get(job.job_id)
        backend.cancel(stale.evolve(backend_job_id=launched.backend_job_id, pid=launched.pid,
                                    pid_start_ticks=launched.pid_start_ticks, boot_id=launched.boot_id,
                                    host=launched.host), grace_s=10.0)
    return registry.get(job.job_id)


def _new_step_job(plan: StepPlan, registry: JobRegistry, requested_by: str) -> Job:
    job_id = new_job_id()
    job_dir = registry.job_dir(job_id)
    options: dict[str, object] = {**plan.options, "gpu": plan.gpu, "dataset": plan.dataset,
                                  "trainers": list(plan.trainers), "plans": list(plan.plans),
                                  "configurations": list(plan.configurations), "folds": list(plan.folds)}
    if plan.backend == "slurm":
        options["slurm"] = plan.slurm.to_dict()
    return Job(
        job_id=job_id, state=JobState.QUEUED, kind=plan.kind, parent_run_id=plan.target_id,
        parent_path=str(plan.source), new_run_id=plan.target_id, new_run_path=str(plan.target),
        new_trainer=",".join(plan.trainers), epochs=plan.epochs, backend=plan.backend, device=plan.device,
        requested_by=requested_by, created_at=utc_now(), argv=plan.argv, env=dict(plan.env), job_dir=str(job_dir),
        log_path=str(job_dir / LOG_FILE), options=options,
    )


def _confirm_trainers(plan: StepPlan) -> None:
    """The plan found its trainers in the sources; nnU-Net's own import must find them too before a job starts."""
    if plan.kind not in (JobKind.TRAIN_FOLD, JobKind.VALIDATE, JobKind.FIND_BEST):
        return
    environ = {**os.environ, **plan.env}
    problems = []
    for name in plan.trainers:
        try:
            found = locate_trainer(name, environ)
        except Exception as exc:
            problems.append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        if found is None:
            problems.append(name)
    if problems:
        raise PreflightError(f"cannot {plan.kind.value.replace('_', ' ')} {plan.target_id}:\n  - nnU-Net cannot "
                             f"import trainer(s) {', '.join(problems)}")


def submit_step(plan: StepPlan, *, registry: JobRegistry, requested_by: str | None = None,
                backend: Backend | None = None) -> Job:
    """Start a planned next step, or return the job of the same kind already active on the same folder.

    Raises :class:`~trainer.plan.PreflightError` when a blocking check failed, or when a job of another
    kind (a training, a validation) is active on that folder; nothing is recorded then.
    """
    if plan.kind is JobKind.EXTEND:
        raise ValueError("an extend is submitted with submit(plan_extend(...))")
    # Checked before the plan's own checks: a training under way makes its fold look taken.
    existing = registry.active_job_writing(str(plan.target))
    if existing is None:
        plan.raise_for_problems()
        _confirm_trainers(plan)
        existing, created = registry.create(_new_step_job(plan, registry, requested_by or current_user()))
        if created:
            return _launch(existing, registry, backend or get_backend(plan.backend), LaunchRequest(
                job_id=existing.job_id, job_dir=registry.job_dir(existing.job_id),
                log_path=registry.job_dir(existing.job_id) / LOG_FILE, argv=plan.argv, env=plan.env,
                slurm=plan.slurm, description=plan.description))
    if existing.kind is plan.kind:
        return existing
    raise PreflightError(f"cannot {plan.kind.value.replace('_', ' ')} {plan.target_id}:\n  - job "
                         f"{existing.job_id} ({existing.kind.value}, {existing.state.value}) is already writing "
                         f"into {plan.target}; wait for it or cancel it")
