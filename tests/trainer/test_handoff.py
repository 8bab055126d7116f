"""The hand-off between a dashboard and the trainer service, with real detached processes on this machine.

The launching side submits with :func:`trainer.handoff.backend_factory` (what ``NNWATCH_BACKEND_FACTORY``
selects in docker/compose.yaml); the other side is :class:`trainer.handoff.Worker` over the same registry,
and ``nnwatch worker`` for its loop and its health check.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest_trainer import FakeNnunet, python_argv, wait_for, with_argv
from paths import REPO

from trainer import ExtendPlan, Job, JobRegistry, JobState, plan_extend, submit
from trainer import handoff as handoff_module
from trainer.backends import Backend
from trainer.handoff import CLAIM_FILE, HANDOFF_ID, Worker, backend_factory, check_heartbeat, heartbeat_path
from trainer.local import LocalBackend, group_members, recorded_identity
from trainer.runner import EXIT_FILE, RUNNER_FILE, process_identity
from trainer.slurm import SlurmBackend


@dataclass
class Handoff:
    """Both sides over one registry: the launcher's backends (hand-off) and the trainer's worker."""

    registry: JobRegistry
    backends: dict[str, Backend]
    worker: Worker
    plan: ExtendPlan

    def submit(self, code: str) -> str:
        job = submit(with_argv(self.plan, python_argv(code)), registry=self.registry, requested_by="alice",
                     backend=self.backends["local"])
        return job.job_id

    def refresh(self) -> list[Job]:
        """The launcher's reconcile pass."""
        return self.registry.refresh(self.backends)

    def cancel(self, job_id: str, by: str) -> Job:
        return self.registry.cancel(job_id, by, backends=self.backends)


@pytest.fixture
def handoff(fake_nnunet: FakeNnunet, tmp_path: Path) -> Iterator[Handoff]:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    registry = JobRegistry(tmp_path / "state" / "jobs.sqlite3")
    backends = {name: backend_factory(name) for name in ("local", "slurm")}
    yield Handoff(registry=registry, backends=backends, worker=Worker(registry, grace_s=2.0), plan=plan)
    local = LocalBackend()
    for job in registry.list_jobs():  # no test leaves a process behind
        identity = recorded_identity(job)
        if identity is not None and identity.same_process(process_identity(identity.pid)):
            local.cancel(job, 1.0)


def test_the_factory_hands_local_jobs_off_and_keeps_slurm() -> None:
    assert type(backend_factory("local")).__name__ == "HandoffBackend"
    assert isinstance(backend_factory("slurm"), SlurmBackend)


def test_the_dashboard_hands_a_job_off_and_the_worker_runs_it(handoff: Handoff) -> None:
    job_id = handoff.submit("print('training on', __import__('socket').gethostname())")
    job = handoff.registry.get(job_id)
    assert (job.state, job.backend_job_id, job.pid, job.requested_by) == (JobState.QUEUED, HANDOFF_ID, None, "alice")
    assert not (Path(job.job_dir) / RUNNER_FILE).exists(), "the dashboard must not start anything itself"
    assert handoff.refresh()[0].state is JobState.QUEUED  # the dashboard's reconcile: no news
    events = handoff.worker.step()
    started = handoff.registry.get(job_id)
    assert started.pid is not None and started.host == handoff.worker.host and started.backend_job_id != HANDOFF_ID
    assert any("started as pid" in event for event in events)

    def finished() -> bool:
        handoff.worker.step()
        return handoff.registry.get(job_id).state is JobState.SUCCEEDED

    wait_for(finished, 30, "the handed-off job to succeed")
    done = handoff.registry.get(job_id)
    assert done.exit_code == 0 and "training on" in Path(done.log_path).read_text()


def test_a_job_waiting_for_the_worker_is_never_failed_by_the_dashboard(handoff: Handoff) -> None:
    """The registry fails queued jobs without a backend id after a grace period; handed-off jobs have one."""
    job_id = handoff.submit("pass")
    with sqlite3.connect(handoff.registry.path) as db:
        db.execute("UPDATE jobs SET created_at = '2020-01-01T00:00:00+00:00' WHERE job_id = ?", (job_id,))
    assert handoff.refresh()[0].state is JobState.QUEUED


def test_a_cancel_in_the_dashboard_is_carried_out_by_the_worker(handoff: Handoff) -> None:
    job_id = handoff.submit("import time; print('re' + 'ady', flush=True); time.sleep(300)")
    handoff.worker.step()
    running = handoff.registry.get(job_id)
    assert running.state is JobState.RUNNING and running.pid is not None
    wait_for(lambda: "ready" in Path(running.log_path).read_text().splitlines(), 30, "the job to start")
    cancelled = handoff.cancel(job_id, "bob")
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by bob"
    assert group_members(running.pid), "the dashboard cannot signal the trainer's processes; the worker does"
    events = handoff.worker.step()
    assert group_members(running.pid) == [] and any("stopped process group" in event for event in events)
    exit_record = json.loads((Path(running.job_dir) / EXIT_FILE).read_text())
    assert exit_record["terminated_by"] == "SIGTERM"
    assert handoff.registry.get(job_id).state is JobState.CANCELLED


def test_a_job_cancelled_before_the_worker_saw_it_never_starts(handoff: Handoff) -> None:
    job_id = handoff.submit("raise SystemExit('must not run')")
    assert handoff.cancel(job_id, "carol").state is JobState.CANCELLED
    handoff.worker.step()
    job = handoff.registry.get(job_id)
    assert job.state is JobState.CANCELLED and not (Path(job.job_dir) / RUNNER_FILE).exists()


def test_a_claimed_job_is_started_once_and_failed_when_its_worker_died(handoff: Handoff,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers on one registry: the claim file lets one start a job; a stale claim means a dead worker."""
    job_id = handoff.submit("pass")
    job_dir = Path(handoff.registry.get(job_id).job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / CLAIM_FILE).touch()  # another worker claimed it ...
    handoff.worker.step()
    assert handoff.registry.get(job_id).state is JobState.QUEUED and not (job_dir / RUNNER_FILE).exists()
    monkeypatch.setattr(handoff_module, "CLAIM_TIMEOUT_S", 0.0)  # ... and died before starting it
    handoff.worker.step()
    failed = handoff.registry.get(job_id)
    assert failed.state is JobState.FAILED and "trainer service stopped" in (failed.reason or "")


def _nnwatch_worker(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "worker", "--jobs-db", str(db), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_nnwatch_worker_runs_handed_off_jobs_and_its_heartbeat_is_the_health_check(handoff: Handoff) -> None:
    db = handoff.registry.path
    never = _nnwatch_worker(db, "--check")
    assert never.returncode == 1 and "no worker heartbeat" in never.stderr
    job_id = handoff.submit("print('done')")
    once = _nnwatch_worker(db, "--once")
    assert once.returncode == 0 and f"job {job_id}: started as pid" in once.stdout, once.stderr
    assert handoff.registry.get(job_id).pid is not None
    assert heartbeat_path(db, handoff.worker.host).is_file()
    assert _nnwatch_worker(db, "--check").returncode == 0
    assert check_heartbeat(handoff.registry, handoff.worker.host, max_age_s=-1) == 1  # too old
    assert check_heartbeat(handoff.registry, "another-host", max_age_s=60) == 1
