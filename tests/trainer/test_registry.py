"""The SQLite registry: one active extend per run and length, under threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest_trainer import FakeNnunet, python_argv, with_argv
from paths import REPO

from trainer import ExtendPlan, JobNotFoundError, JobRegistry, JobState, default_db_path, plan_extend, submit

SLEEP = python_argv("import time; time.sleep(120)")


@pytest.fixture
def sleep_plan(fake_nnunet: FakeNnunet) -> ExtendPlan:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    return with_argv(plan, SLEEP)


def test_registry_file_location_and_wal_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNWATCH_JOBS_DB", str(tmp_path / "custom" / "registry.db"))
    assert default_db_path() == tmp_path / "custom" / "registry.db"
    registry = JobRegistry()
    assert registry.path == tmp_path / "custom" / "registry.db" and registry.path.exists()
    with sqlite3.connect(registry.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(JobNotFoundError):
        registry.get("0123456789ab")


def test_double_submit_returns_the_same_job_and_a_finished_one_allows_a_new(
        sleep_plan: ExtendPlan, job_registry: JobRegistry) -> None:
    first = submit(sleep_plan, registry=job_registry, requested_by="alice")
    second = submit(sleep_plan, registry=job_registry, requested_by="bob")
    assert second.job_id == first.job_id and second.requested_by == "alice"
    job_registry.cancel(first.job_id, "alice", grace_s=2)
    third = submit(sleep_plan, registry=job_registry, requested_by="bob")
    assert third.job_id != first.job_id and third.state is JobState.RUNNING
    assert [job.job_id for job in job_registry.list_jobs({JobState.RUNNING})] == [third.job_id]


def test_many_threads_extending_one_run_make_exactly_one_job(sleep_plan: ExtendPlan,
                                                            job_registry: JobRegistry) -> None:
    barrier = threading.Barrier(16)

    def click(index: int) -> str:
        barrier.wait()
        return submit(sleep_plan, registry=job_registry, requested_by=f"session{index}").job_id

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(click, range(16)))
    assert len(ids) == 1
    assert len(job_registry.list_jobs()) == 1
    assert [path.name for path in job_registry.jobs_dir.iterdir()] == list(ids), "a loser launched something"


def _forked_submit(plan: ExtendPlan, db: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    job = submit(plan, registry=JobRegistry(db), requested_by="proc")
    results.put(job.job_id)  # type: ignore[attr-defined]


def test_many_processes_extending_one_run_make_exactly_one_job(sleep_plan: ExtendPlan,
                                                              job_registry: JobRegistry) -> None:
    context = multiprocessing.get_context("fork")  # the plan (and nnU-Net's imports) are inherited
    barrier = context.Barrier(8)
    results = context.Queue()
    processes = [context.Process(target=_forked_submit, args=(sleep_plan, str(job_registry.path), barrier, results))
                 for _ in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    ids = {results.get(timeout=5) for _ in processes}
    assert len(ids) == 1 and len(job_registry.list_jobs()) == 1
    assert len(list(job_registry.jobs_dir.iterdir())) == 1


def test_simultaneous_cli_extends_make_one_job(fake_nnunet: FakeNnunet, tmp_path: Path) -> None:
    """Two terminals (or a double click) running ``nnwatch extend`` for the same run at once."""
    db = tmp_path / "cli" / "jobs.sqlite3"
    argv = [sys.executable, "-m", "app.cli", "extend", str(fake_nnunet.run_dir), "--device", "cpu",
            "--json", "--jobs-db", str(db)]
    processes = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    outputs = [process.communicate(timeout=300) for process in processes]
    jobs = [json.loads(stdout) for stdout, _ in outputs]
    assert len({job["job_id"] for job in jobs}) == 1, [stderr for _, stderr in outputs]
    assert {"job_id", "state", "argv", "new_run_id", "backend"} <= set(jobs[0])
    registry = JobRegistry(db)
    assert len(registry.list_jobs()) == 1
    registry.cancel(jobs[0]["job_id"], "test", grace_s=2)  # the fake dataset cannot train anyway
