"""The SQLite registry: one active extend per run and length, under threads and processes."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from conftest_trainer import FakeNnunet, python_argv, with_argv
from paths import REPO

from trainer import ExtendPlan, Job, JobNotFoundError, JobRegistry, JobState, default_db_path, plan_extend, submit

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


def test_jobs_created_within_one_second_are_listed_newest_first(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite3")
    ids = [f"{k:012x}" for k in (0xF00, 0xA00, 0xC00, 0x100)]  # recorded in this order, not sorted by id
    for k, job_id in enumerate(ids):
        run = f"D/T__P__2d/fold_{k}"
        registry.create(Job(job_id=job_id, state=JobState.QUEUED, parent_run_id=run, parent_path=str(tmp_path / run),
                            new_run_id=run, new_run_path=str(tmp_path / "new" / run), new_trainer="T_2000epochs",
                            epochs=2000, backend="local", device="cpu", requested_by="alice",
                            created_at="2026-12-07T01:00:00+00:00", argv=("nnUNetv2_train",), env={},
                            job_dir=str(tmp_path / job_id), log_path=str(tmp_path / job_id / "job.log")))
    older = replace(registry.get(ids[0]), job_id="0" * 12, created_at="2026-12-07T00:59:59+00:00",
                    parent_path=str(tmp_path / "older"), new_run_path=str(tmp_path / "new" / "older"))
    assert registry.create(older)[1]
    assert [job.job_id for job in registry.list_jobs()] == [*reversed(ids), "0" * 12]


def _marked(plan: ExtendPlan, tmp_path: Path) -> tuple[ExtendPlan, str]:
    """The plan with a training that sleeps and carries a marker unique to this test in its argv."""
    marker = f"nnwatch-launch-count-{tmp_path.name}-{os.getpid()}"
    return with_argv(plan, (*SLEEP, marker)), marker


def _launches(marker: str) -> set[int]:
    """The process groups on this machine running an argv that carries ``marker``: one per launch.

    The local backend's runner daemon leads its own process group and has the training's argv in its own
    command line, so a launch counts from the moment the backend returns, before the training starts.
    """
    needle = marker.encode()
    groups = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if needle in Path(entry.path, "cmdline").read_bytes().split(b"\0"):
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue  # ended meanwhile
    return groups


def _stop(groups: set[int]) -> None:
    """SIGKILL launches that no registry row knows (a test failing on extra launches leaves none behind)."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def test_sixteen_simultaneous_extends_make_one_job_and_launch_one_training(
        sleep_plan: ExtendPlan, job_registry: JobRegistry, tmp_path: Path) -> None:
    plan, marker = _marked(sleep_plan, tmp_path)
    barrier = threading.Barrier(16)

    def click(index: int) -> str:
        barrier.wait()
        return submit(plan, registry=job_registry, requested_by=f"session{index}").job_id

    try:
        with ThreadPoolExecutor(16) as pool:
            ids = set(pool.map(click, range(16)))
        launches = _launches(marker)
        assert len(ids) == 1 and len(job_registry.list_jobs()) == 1
        assert [path.name for path in job_registry.jobs_dir.iterdir()] == list(ids)
        job = job_registry.get(ids.pop())
        assert launches == {job.pid}, f"{len(launches)} trainings started for one job"
    finally:
        _stop(_launches(marker))


def _forked_submit(plan: ExtendPlan, db: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    job = submit(plan, registry=JobRegistry(db), requested_by="proc")
    results.put(job.job_id)  # type: ignore[attr-defined]


def test_many_processes_extending_one_run_make_exactly_one_job_and_launch_one_training(
        sleep_plan: ExtendPlan, job_registry: JobRegistry, tmp_path: Path) -> None:
    plan, marker = _marked(sleep_plan, tmp_path)
    context = multiprocessing.get_context("fork")  # the plan (and nnU-Net's imports) are inherited
    barrier = context.Barrier(8)
    results = context.Queue()
    processes = [context.Process(target=_forked_submit, args=(plan, str(job_registry.path), barrier, results))
                 for _ in range(8)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0
        ids = {results.get(timeout=5) for _ in processes}
        assert len(ids) == 1 and len(job_registry.list_jobs()) == 1
        assert len(list(job_registry.jobs_dir.iterdir())) == 1
        assert _launches(marker) == {job_registry.get(ids.pop()).pid}
    finally:
        _stop(_launches(marker))


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
