"""The demo job for real: a detached process started, tracked and cancelled through the job registry and the local
backend, writing a synthetic training into the demo tree, and never into any other results tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_trainer import wait_for, wait_for_state
from paths import REPO

from app.demo import DEMO_MARKER, build_demo_tree
from app.demo_job import DEMO_JOB_RUN, plan_demo_job
from monitor.runs import load_run
from monitor.synth import CurveSpec, RunSpec, write_run
from trainer import JobKind, JobLiveness, JobRegistry, JobState, PreflightError, submit_step
from trainer.local import group_members


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, JobRegistry]]:
    """A demo tree (no live trainer thread) and its job registry; any demo job left running is cancelled."""
    root, _ = build_demo_tree(tmp_path / "demo", live=False)
    registry = JobRegistry(tmp_path / "demo" / "jobs.sqlite3")
    yield root, registry
    for job in registry.list_jobs({JobState.QUEUED, JobState.RUNNING}):
        registry.cancel(job.job_id, "test-teardown", grace_s=2.0)


def _epochs(root: Path) -> int:
    folder = root / DEMO_JOB_RUN
    return len(load_run(folder).frame()) if folder.is_dir() else 0


def _logs(root: Path) -> list[Path]:
    return sorted((root / DEMO_JOB_RUN).glob("training_log_*.txt"))


def test_the_demo_job_runs_is_cancelled_and_starts_again(demo: tuple[Path, JobRegistry]) -> None:
    root, registry = demo
    plan = plan_demo_job(root, epochs=300, epoch_s=0.1)
    assert plan.ok and plan.argv[:3] == (sys.executable, "-m", "app.demo_job")
    job = submit_step(plan, registry=registry, requested_by="ann")
    assert job.kind is JobKind.DEMO and job.state is JobState.RUNNING and job.requested_by == "ann"
    assert job.pid is not None and group_members(job.pid), "a real process runs"
    assert submit_step(plan, registry=registry, requested_by="bob").job_id == job.job_id, "one demo job at a time"
    assert len(registry.list_jobs()) == 4  # the demo's three ended jobs, and this one

    wait_for(lambda: _epochs(root) >= 3, 60, "three epochs in the demo run's log")
    run = load_run(root / DEMO_JOB_RUN)
    assert run.status() == "running" and run.planned_epochs()[0] == 300
    assert JobLiveness(registry.list_jobs, root)(DEMO_JOB_RUN).alive is True  # type: ignore[union-attr]

    cancelled = registry.cancel(job.job_id, "ann", grace_s=5.0)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by ann"
    assert cancelled.cancel_requested_by == "ann" and cancelled.finished_at
    assert group_members(job.pid) == [], "the process and its runner are gone"
    assert "nnwatch demo job: stopped during epoch" in Path(job.log_path).read_text()
    evidence = JobLiveness(registry.list_jobs, root)(DEMO_JOB_RUN)
    assert evidence is not None and evidence.alive is False and evidence.cancelled_by == "ann"
    stopped_at = _epochs(root)
    assert 3 <= stopped_at < 300

    again = submit_step(plan, registry=registry, requested_by="ann")
    assert again.job_id != job.job_id and again.state is JobState.RUNNING

    def _restarted() -> bool:  # a new start trains from epoch 0 in a new log, which replaces the old epochs
        sources = set(load_run(root / DEMO_JOB_RUN).frame()["source"])
        return len(_logs(root)) == 2 and sources == {f"log:{_logs(root)[-1].name}"}

    wait_for(_restarted, 60, "the new start's first epochs")
    assert load_run(root / DEMO_JOB_RUN).frame()["epoch"].iloc[0] == 0
    assert registry.cancel(again.job_id, "ann", grace_s=5.0).state is JobState.CANCELLED


def test_a_demo_job_that_reaches_the_end_of_its_schedule_succeeds(demo: tuple[Path, JobRegistry]) -> None:
    root, registry = demo
    job = submit_step(plan_demo_job(root, epochs=4, epoch_s=0.05), registry=registry, requested_by="ann")
    done = wait_for_state(registry, job.job_id, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
    assert done.state is JobState.SUCCEEDED and done.exit_code == 0
    run = load_run(root / DEMO_JOB_RUN)
    assert len(run.frame()) == 4 and run.status() == "finished"
    assert (root / DEMO_JOB_RUN / "validation" / "summary.json").is_file()


def test_the_demo_job_never_writes_into_a_real_results_tree(tmp_path: Path) -> None:
    real = tmp_path / "lab" / "nnUNet_results"
    write_run(real, RunSpec("Dataset001_Heart", "nnUNetTrainer", "2d", 0, 100, CurveSpec(seed=1)))
    before = sorted(path.relative_to(real) for path in real.rglob("*"))
    registry = JobRegistry(tmp_path / "jobs.sqlite3")
    plan = plan_demo_job(real)
    assert not plan.ok and plan.argv == ()
    assert "not a demo tree written by nnwatch" in plan.problems[0]
    with pytest.raises(PreflightError, match="never writes into a real results tree"):
        submit_step(plan, registry=registry, requested_by="ann")
    assert registry.list_jobs() == []

    # A marker copied beside a real tree still names the demo's folder, not this one.
    demo_root, _ = build_demo_tree(tmp_path / "demo", live=False)
    (real.parent / DEMO_MARKER).write_bytes((demo_root.parent / DEMO_MARKER).read_bytes())
    assert not plan_demo_job(real).ok
    # The process refuses on its own too, whoever starts it.
    refused = subprocess.run([sys.executable, "-m", "app.demo_job", "--root", str(real), "--epochs", "3",
                              "--epoch-seconds", "0.01"], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert refused.returncode == 2 and "refusing" in refused.stderr
    assert sorted(path.relative_to(real) for path in real.rglob("*")) == before
    with pytest.raises(ValueError, match="1 to"):
        plan_demo_job(demo_root, epochs=0)


def test_a_new_demo_start_stops_a_demo_job_left_running(demo: tuple[Path, JobRegistry]) -> None:
    root, registry = demo
    job = submit_step(plan_demo_job(root, epochs=300, epoch_s=0.1), registry=registry, requested_by="ann")
    assert job.pid is not None and group_members(job.pid)
    build_demo_tree(root.parent, live=False)  # the next ``nnwatch serve`` rewrites the tree
    assert group_members(job.pid) == []
    assert not (root / DEMO_JOB_RUN).exists()
