"""Local jobs started by one process and run by another: the hand-off backend and the worker that runs them.

Why: the processes of a container all die when it stops. The local backend starts a training as a detached
process group, but detached inside the container that launched it, so a dashboard that launched it would
take days of training down with a restart. The two roles are therefore split over two processes (in
docker/compose.yaml, two containers) that share only the registry folder:

* the launching side uses :class:`HandoffBackend` as its ``local`` backend (``NNWATCH_BACKEND_FACTORY=
  trainer.handoff:backend_factory`` for the dashboard): ``launch`` leaves the job ``queued`` with the
  backend id :data:`HANDOFF_ID`, ``poll`` has no news, ``cancel`` lets the registry record the cancel.
  ``slurm`` stays the ordinary SLURM backend.
* ``nnwatch worker`` runs :class:`Worker` in a loop: it starts handed-off jobs with the ordinary
  :class:`~trainer.local.LocalBackend`, reconciles the local jobs of its host and stops jobs cancelled in
  the registry whose process still runs. Its rows are those of a job started by ``nnwatch extend`` on
  that host, so ``nnwatch jobs`` there works as usual.

A handed-off job has a backend id, so the registry never fails it for a missing launcher: while no worker
runs it stays queued. The worker's heartbeat file beside the registry is what ``nnwatch worker --check``
(a container health check) reads.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.backends import Backend, BackendError, Launched, LaunchRequest, Observation
from trainer.jobs import Job
from trainer.local import LocalBackend, recorded_identity
from trainer.registry import JobRegistry
from trainer.runner import RUNNER_FILE, process_identity
from trainer.selection import get_backend
from trainer.states import ACTIVE_STATES, JobState

__all__ = [
    "CLAIM_FILE",
    "HANDOFF_ID",
    "HandoffBackend",
    "Worker",
    "backend_factory",
    "check_heartbeat",
    "heartbeat_path",
    "run_worker",
]

HANDOFF_ID = "handoff"
CLAIM_FILE = "worker.claim"
# A claimed job that still has no runner.json after this long lost its worker while being started.
CLAIM_TIMEOUT_S = 120.0


class HandoffBackend(Backend):
    """A ``local`` backend that records the job for a worker instead of starting it."""

    name = "local"

    def launch(self, request: LaunchRequest) -> Launched:
        """Leave the job queued with the hand-off marker; a worker starts it on its next pass."""
        del request  # everything the worker needs (argv, env, job folder) is in the registry row
        return Launched(backend_job_id=HANDOFF_ID, state=JobState.QUEUED)

    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        """No news: the worker's processes are not visible here; the worker writes their states."""
        del jobs
        return {}

    def cancel(self, job: Job, grace_s: float) -> Observation:
        """Let the registry mark the job cancelled; the worker signals the process group on its next pass."""
        del job, grace_s
        return Observation(JobState.CANCELLED)


def backend_factory(name: str) -> Backend:
    """``NNWATCH_BACKEND_FACTORY`` target: hand local jobs off, keep the other backends as they are."""
    return HandoffBackend() if name == HandoffBackend.name else get_backend(name)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_path(registry_path: Path, host: str) -> Path:
    """Where the worker of ``host`` says it is alive: beside the registry, one file per host."""
    return registry_path.parent / f"worker-{host}.json"


class Worker:
    """One pass (:meth:`step`) launches handed-off jobs, stops cancelled ones, reconciles the rest."""

    def __init__(self, registry: JobRegistry, *, backend: LocalBackend | None = None,
                 grace_s: float = 10.0) -> None:
        self.registry = registry
        self.local = backend or LocalBackend()
        self.grace_s = grace_s

    @property
    def host(self) -> str:
        return self.local.host

    def step(self) -> list[str]:
        """Do one pass; return what happened, one line per event, for the service log."""
        events = self._launch_handed_off()
        events += self._stop_cancelled()
        events += self._reconcile()
        return events

    def _launch_handed_off(self) -> list[str]:
        events = []
        for job in self.registry.list_jobs({JobState.QUEUED}):
            if job.backend != "local" or job.backend_job_id != HANDOFF_ID or job.pid is not None:
                continue
            job_dir = Path(job.job_dir)
            job_dir.mkdir(parents=True, exist_ok=True)
            try:  # the claim makes one worker (of several sharing a registry) start the job, once
                os.close(os.open(job_dir / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            request = LaunchRequest(job_id=job.job_id, job_dir=job_dir, log_path=Path(job.log_path),
                                    argv=job.argv, env=job.env)
            try:
                launched = self.local.launch(request)
            except BackendError as exc:
                self.registry.record_observation(job, Observation(JobState.FAILED, reason=f"launch failed: {exc}"))
                events.append(f"job {job.job_id}: launch failed: {exc}")
                continue
            if self.registry.record_launch(job.job_id, launched):
                events.append(f"job {job.job_id}: started as pid {launched.pid} on {launched.host}")
                continue
            # Cancelled while it was being started: stop what was just started (as trainer.submit does).
            stale = self.registry.get(job.job_id).evolve(
                backend_job_id=launched.backend_job_id, pid=launched.pid, pid_start_ticks=launched.pid_start_ticks,
                boot_id=launched.boot_id, host=launched.host)
            self.local.cancel(stale, self.grace_s)
            events.append(f"job {job.job_id}: cancelled while starting; stopped")
        return events

    def _job_host(self, job: Job) -> str | None:
        if job.host is not None:
            return job.host
        record = _read_json(Path(job.job_dir) / RUNNER_FILE)
        return None if record is None else record.get("host")

    def _stop_cancelled(self) -> list[str]:
        events = []
        for job in self.registry.list_jobs({JobState.CANCELLED}):
            if job.backend != "local" or self._job_host(job) != self.host:
                continue
            identity = recorded_identity(job)
            if identity is None or not identity.same_process(process_identity(identity.pid)):
                continue
            self.local.cancel(job, self.grace_s)
            events.append(f"job {job.job_id}: {job.reason or 'cancelled'}; stopped process group {identity.pid}")
        return events

    def _reconcile(self) -> list[str]:
        active = [job for job in self.registry.list_jobs(ACTIVE_STATES) if job.backend == "local"]
        events = []
        now = time.time()
        for job in active:
            claim = Path(job.job_dir) / CLAIM_FILE
            if (job.state is JobState.QUEUED and job.backend_job_id == HANDOFF_ID and claim.exists()
                    and not (Path(job.job_dir) / RUNNER_FILE).exists()
                    and now - claim.stat().st_mtime > CLAIM_TIMEOUT_S):
                self.registry.record_observation(job, Observation(
                    JobState.FAILED, reason="the trainer service stopped while starting the job (nothing runs)"))
                events.append(f"job {job.job_id}: lost while starting")
        observations = self.local.poll(active)
        for job in active:
            observation = observations.get(job.job_id)
            if observation is not None and self.registry.record_observation(job, observation):
                events.append(f"job {job.job_id}: {observation.state.value}"
                              + (f" ({observation.reason})" if observation.reason else ""))
        return events

    def write_heartbeat(self) -> None:
        """Say this worker is alive (atomically: the health check may read it at any time)."""
        path = heartbeat_path(self.registry.path, self.host)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"host": self.host, "pid": os.getpid(), "at": time.time()}) + "\n")
        os.replace(tmp, path)


def check_heartbeat(registry: JobRegistry, host: str, max_age_s: float) -> int:
    """Health check: 0 when the worker of ``host`` wrote its heartbeat within ``max_age_s``, else 1."""
    record = _read_json(heartbeat_path(registry.path, host))
    age = None if record is None else time.time() - float(record.get("at", 0))
    if age is None or age > max_age_s:
        print(f"unhealthy: no worker heartbeat from {host} in {max_age_s:.0f} s", file=sys.stderr)
        return 1
    return 0


def _reap_orphans() -> None:
    """As PID 1 (a container without ``init: true``), collect the runner daemons re-parented to us."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_worker(worker: Worker, *, interval_s: float, once: bool = False) -> int:
    """Run passes every ``interval_s`` until SIGTERM or SIGINT (``once``: a single pass); print the events."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    print(f"nnwatch worker on {worker.host}: registry {worker.registry.path}, every {interval_s:g} s", flush=True)
    try:
        while not stop.is_set():
            try:
                for event in worker.step():
                    print(event, flush=True)
                worker.write_heartbeat()
            except Exception:  # a locked database or a full disk must not end the service; say why, try again
                traceback.print_exc()
            if os.getpid() == 1:
                _reap_orphans()
            if once:
                break
            stop.wait(interval_s)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
