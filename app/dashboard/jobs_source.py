"""The dashboard's door to the job registry: plan, submit, list (reconciled) and cancel, via :mod:`trainer`.

Why a holder: every session shares one registry per database path (``st.cache_resource``), and
reconciling with the backends (``registry.refresh``: one ``/proc`` scan or one ``squeue``) is throttled
to once per ``min_interval_s`` however many browser tabs poll. The backend used for launching, polling
and cancelling can be replaced with ``NNWATCH_BACKEND_FACTORY=module:callable`` (``callable(name) ->
Backend``); tests use that to record launches instead of starting nnU-Net.
"""

from __future__ import annotations

import importlib
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.tail import tail_text as read_tail
from trainer import (
    Backend,
    ExtendPlan,
    Job,
    JobKind,
    JobRegistry,
    SlurmOptions,
    StepPlan,
    plan_extend,
    submit,
    submit_step,
)

__all__ = ["JobsSource", "job_role", "load_backend_factory", "tail_text"]

BackendFactory = Callable[[str], Backend]


def load_backend_factory(spec: str | None) -> BackendFactory | None:
    """Import ``module:callable``; a bad spec raises ``ValueError`` naming what is wrong."""
    if not spec:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"NNWATCH_BACKEND_FACTORY must look like 'module:callable', not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise ValueError(f"NNWATCH_BACKEND_FACTORY: {spec!r} is not a callable")
    return factory


def tail_text(path: str | os.PathLike[str], max_bytes: int = 16_384, max_lines: int = 60) -> str | None:
    """The last lines of a job log (None when it does not exist yet)."""
    text = read_tail(path, max_bytes)
    return None if text is None else "\n".join(text.splitlines()[-max_lines:])


class JobsSource:
    """One registry plus the backends to reconcile it with; thread-safe, throttled ``jobs()``."""

    def __init__(self, db_path: Path | None, *, backend_factory: BackendFactory | None = None,
                 min_interval_s: float = 3.0, relabel: Callable[[Job], Job] | None = None) -> None:
        """``relabel``: how the pages see each job (several roots: run ids labelled as the store labels them)."""
        self.registry = JobRegistry(db_path)
        self._relabel = relabel
        self._factory = backend_factory
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._last_refresh = -math.inf
        self._jobs: list[Job] = []
        self.last_error: str | None = None

    @property
    def path(self) -> Path:
        return self.registry.path

    def _backends(self) -> dict[str, Backend] | None:
        if self._factory is None:
            return None
        return {name: self._factory(name) for name in ("local", "slurm")}

    def jobs(self, *, force: bool = False) -> list[Job]:
        """All jobs, newest first, reconciled with their backends at most every ``min_interval_s``."""
        jobs = self._reconciled(force)
        return jobs if self._relabel is None else [self._relabel(job) for job in jobs]

    def _reconciled(self, force: bool = False) -> list[Job]:
        """The registry's jobs as recorded (run ids relative to their own root)."""
        with self._lock:
            now = time.monotonic()
            if force or now - self._last_refresh >= self.min_interval_s:
                self._last_refresh = now
                try:
                    self._jobs = self.registry.refresh(self._backends())
                    self.last_error = None
                except Exception as exc:  # a broken backend must not take the page down
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._jobs = self.registry.list_jobs()
            return list(self._jobs)

    def plan(self, run_dir: Path, *, root: Path | None, epochs: int, backend: str, device: str,
             gpu: int | None, slurm: dict[str, Any], start_over: bool = False) -> ExtendPlan:
        """``trainer.plan_extend`` with the dialog's options and this registry's jobs (so a live or stopped
        extension in the new folder is recognised); raises ``ValueError`` for bad input."""
        options = SlurmOptions.from_cli(slurm.get("partition") or None, slurm.get("time") or None,
                                        slurm.get("gres"), slurm.get("account") or None,
                                        slurm.get("extra") or None)
        return plan_extend(run_dir, epochs=epochs, backend=backend, device=device, gpu=gpu, slurm=options,
                           root=root, jobs=self._reconciled(), start_over=start_over)

    def submit(self, plan: ExtendPlan, requested_by: str) -> Job:
        """Submit and force the next ``jobs()`` to re-read, so the new job shows at once."""
        backend = self._factory(plan.backend) if self._factory is not None else None
        job = submit(plan, registry=self.registry, requested_by=requested_by, backend=backend)
        self._last_refresh = -math.inf
        return job

    def submit_step(self, plan: StepPlan, requested_by: str) -> Job:
        """Submit a next-step job (train a fold, validate, find the best configuration), like :meth:`submit`."""
        backend = self._factory(plan.backend) if self._factory is not None else None
        job = submit_step(plan, registry=self.registry, requested_by=requested_by, backend=backend)
        self._last_refresh = -math.inf
        return job

    def cancel(self, job_id: str, requested_by: str) -> Job:
        job = self.registry.cancel(job_id, requested_by, backends=self._backends())
        self._last_refresh = -math.inf
        return job

    def jobs_by_run(self) -> dict[str, list[Job]]:
        """Jobs keyed by the run they extend and by the run they create (for the overview's job column)."""
        out: dict[str, list[Job]] = {}
        for job in self.jobs():
            out.setdefault(job.parent_run_id, []).append(job)
            if job.new_run_id and job.new_run_id != job.parent_run_id:  # a validation writes into its own run
                out.setdefault(job.new_run_id, []).append(job)
        return out


_ROLES = {JobKind.TRAIN_FOLD: "trains this run", JobKind.VALIDATE: "validates this run",
          JobKind.FIND_BEST: "compares this run's configuration", JobKind.DEMO: "writes this demo run"}


def job_role(job: Job, run_id: str) -> str:
    """What a job does to the run ``run_id``, in a few words: "extends this run", "validates this run", …"""
    if job.kind is JobKind.EXTEND:
        return "extends this run" if job.parent_run_id == run_id else "created this run"
    return _ROLES.get(job.kind, f"{job.kind.value.replace('_', ' ')} job on this run")
