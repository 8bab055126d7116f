"""Local training that survives dashboard restarts: the dashboard hands jobs off, a ``trainer`` container runs them.

Why: a container's processes all die when it stops. nnwatch's local backend starts ``nnUNetv2_train`` as a
detached process group, but detached inside the *dashboard's* container, so ``docker compose restart
dashboard`` (an upgrade, a crash, a changed setting) would kill multi-day trainings. docker/compose.yaml
therefore runs two containers of the same image sharing the registry folder, and this module (installed
into the image's venv) connects them through the registry alone:

* the dashboard sets ``NNWATCH_BACKEND_FACTORY=nnwatch_worker:backend_factory``; its ``local`` backend is
  then :class:`HandoffBackend`: ``launch`` leaves the job ``queued`` and marks it handed off
  (``backend_job_id = "handoff"``), ``poll`` has no news (the worker reconciles), ``cancel`` lets the
  registry record the cancel (the worker stops the process). ``slurm`` stays trainer's own backend.
* the ``trainer`` service runs ``python -m nnwatch_worker``, a loop that starts handed-off jobs with
  trainer's own :class:`~trainer.local.LocalBackend` (runner daemon, ``runner.json``/``exit.json``, pid +
  start time + boot id), reconciles the local jobs of its host (a fixed ``hostname:``) and stops jobs
  cancelled in the registry whose process still runs. Its rows look exactly like those of a job started
  by ``nnwatch extend`` on that host, so ``docker compose exec trainer nnwatch jobs`` works as usual.

Only trainer's public pieces are used; nothing in trainer/ knows about this. A worker that is down leaves
handed-off jobs queued (the registry never fails a job that has a backend id); the heartbeat file it
writes beside the registry is what ``python -m nnwatch_worker --check`` (the service's health check) reads.
"""

from __future__ import annotations

import argparse
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

from trainer.backends import Backend, BackendError, Launched, LaunchRequest, Observation, get_backend
from trainer.jobs import Job
from trainer.local import LocalBackend, recorded_identity
from trainer.registry import JobRegistry
from trainer.runner import RUNNER_FILE, process_identity
from trainer.states import ACTIVE_STATES, JobState

__all__ = ["HANDOFF_ID", "HandoffBackend", "Worker", "backend_factory", "heartbeat_path", "main"]

HANDOFF_ID = "handoff"
CLAIM_FILE = "worker.claim"
# A claimed job without runner.json after this long lost its worker mid-launch (launches take < 1 s).
CLAIM_TIMEOUT_S = 120.0


class HandoffBackend(Backend):
    """The dashboard's ``local`` backend: record the job for the trainer service instead of starting it."""

    name = "local"

    def launch(self, request: LaunchRequest) -> Launched:
        """Leave the job queued with the handoff marker; the worker starts it within its interval."""
        del request  # everything the worker needs (argv, env, job folder) is in the registry row
        return Launched(backend_job_id=HANDOFF_ID, state=JobState.QUEUED)

    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        """No news: this container cannot see the trainer's processes; the worker writes their states."""
        del jobs
        return {}

    def cancel(self, job: Job, grace_s: float) -> Observation:
        """Let the registry mark the job cancelled; the worker signals the process group on its next pass."""
        del job, grace_s
        return Observation(JobState.CANCELLED)


def backend_factory(name: str) -> Backend:
    """``NNWATCH_BACKEND_FACTORY`` target: hand local jobs off, keep SLURM as it is."""
    return HandoffBackend() if name == "local" else get_backend(name)


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
            # Cancelled while we were starting it: stop what we just started (as trainer.submit does).
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


def _reap_orphans() -> None:
    """As PID 1 (no ``init: true``), collect the runner daemons that were re-parented to us."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def check_heartbeat(registry: JobRegistry, host: str, max_age_s: float) -> int:
    """Health check: 0 when this host's worker wrote its heartbeat within ``max_age_s``."""
    record = _read_json(heartbeat_path(registry.path, host))
    age = None if record is None else time.time() - float(record.get("at", 0))
    if age is None or age > max_age_s:
        print(f"unhealthy: no worker heartbeat from {host} in {max_age_s:.0f} s", file=sys.stderr)
        return 1
    return 0


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker loop until SIGTERM/SIGINT (``--once``: one pass; ``--check``: the health check)."""
    parser = argparse.ArgumentParser(prog="python -m nnwatch_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-db", help="job registry (default: $NNWATCH_JOBS_DB)")
    parser.add_argument("--interval", type=float, default=_float_env("NNWATCH_WORKER_INTERVAL_S", 2.0),
                        help="seconds between passes (default 2, $NNWATCH_WORKER_INTERVAL_S)")
    parser.add_argument("--grace", type=float, default=_float_env("NNWATCH_CANCEL_GRACE_S", 10.0),
                        help="seconds between SIGTERM and SIGKILL when stopping a job (default 10)")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--check", action="store_true", help="exit 0 when this host's worker is alive")
    args = parser.parse_args(argv)
    registry = JobRegistry(args.jobs_db)
    worker = Worker(registry, grace_s=args.grace)
    if args.check:
        return check_heartbeat(registry, worker.host, max(30.0, 5 * args.interval))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"nnwatch worker on {worker.host}: registry {registry.path}, every {args.interval:g} s", flush=True)
    while not stop.is_set():
        try:
            for event in worker.step():
                print(event, flush=True)
            worker.write_heartbeat()
        except Exception:  # a locked database or a full disk must not end the service; say why, try again
            traceback.print_exc()
        if os.getpid() == 1:
            _reap_orphans()
        if args.once:
            break
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
