"""Real failures of nnwatch's own jobs, classified from the job folder, the runner's exit record and the
scheduler alone: a real nnU-Net training whose preprocessed data is corrupted mid-run, a real training killed
with SIGKILL, a real SLURM job that hits a 1-minute time limit. The watcher, given the registry as liveness,
marks each run crashed at once, with its cause."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest_trainer import SlurmTimeLimitJob, wait_for_state
from nnunet_tiny import DATASET_NAME
from slurm_cluster import SlurmCluster
from stop_failures import (
    children,
    fold_dir,
    job_env,
    kill_group,
    private_preprocessed,
    started_epoch,
    training_job,
    wait_until,
)

from monitor import load_run
from monitor.runs import RunStatus, parse_run_path
from monitor.stops import StopCause, Strength, diagnose
from monitor.watch import ResultsWatcher
from trainer import Job, JobLiveness, JobRegistry, JobState, job_evidence


@dataclass(frozen=True)
class FailedJobs:
    registry: JobRegistry
    results: Path
    corrupt: Job
    killed: Job


@pytest.fixture(scope="module")
def failed_jobs(tiny_nnunet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailedJobs]:  # type: ignore[no-untyped-def]
    """Two real trainings as nnwatch local jobs, side by side: fold 0's preprocessed copy is overwritten after
    its first epoch, fold 1's training process is killed with SIGKILL after its first epoch."""
    base = tmp_path_factory.mktemp("stopped_jobs")
    results = base / "results"
    registry = JobRegistry(base / "jobs" / "jobs.sqlite3")
    damaged = private_preprocessed(tiny_nnunet, base / "preprocessed_damaged")
    intact = private_preprocessed(tiny_nnunet, base / "preprocessed_intact")
    corrupt = training_job(registry, job_env(tiny_nnunet, damaged, results, 40), results, 0, 40)
    killed = training_job(registry, job_env(tiny_nnunet, intact, results, 40), results, 1, 41)
    try:
        for fold in (0, 1):
            wait_until(lambda f=fold: started_epoch(fold_dir(results, f), 1), 600,
                       f"fold {fold} to finish its first epoch")
        for case in (damaged / DATASET_NAME / "nnUNetPlans_2d").glob("*.b2nd"):
            case.write_bytes(b"\0not a blosc2 file" * 4)
        trainings = children(killed.pid or -1)
        assert trainings, "the runner has no training child"
        for pid in trainings:
            os.kill(pid, signal.SIGKILL)
        for job in (corrupt, killed):
            wait_for_state(registry, job.job_id, {JobState.FAILED, JobState.SUCCEEDED}, timeout=300)
        yield FailedJobs(registry, results, registry.get(corrupt.job_id), registry.get(killed.job_id))
    finally:
        for job in (corrupt, killed):
            kill_group(job.pid or -1)


@pytest.mark.nnunet
def test_corrupt_preprocessed_data_mid_run(failed_jobs: FailedJobs) -> None:
    job = failed_jobs.corrupt
    assert job.state is JobState.FAILED
    run = fold_dir(failed_jobs.results, 0)
    reader = load_run(run, failed_jobs.results)
    found = diagnose(reader.location, reader.curves(), job=job_evidence(job))
    assert found.cause is StopCause.DATA_MISSING_OR_CORRUPT and found.strength is Strength.STRONG
    assert found.source == f"job output {job.log_path}"
    assert ".b2nd" in found.evidence and "no longer alive" in found.evidence.splitlines()[-1]
    assert "nnUNetv2_plan_and_preprocess" in found.advice


@pytest.mark.nnunet
def test_a_training_killed_with_sigkill(failed_jobs: FailedJobs) -> None:
    job = failed_jobs.killed
    assert job.state is JobState.FAILED and job.exit_code == 137
    evidence = job_evidence(job)
    assert evidence.alive is False and evidence.signal == "SIGKILL"
    reader = load_run(fold_dir(failed_jobs.results, 1), failed_jobs.results)
    found = diagnose(reader.location, reader.curves(), job=evidence)
    assert found.cause is StopCause.HOST_OOM and "SIGKILL" in found.evidence and "exit code 137" in found.evidence


@pytest.mark.nnunet
def test_the_watcher_marks_both_runs_crashed_at_once(failed_jobs: FailedJobs) -> None:
    liveness = JobLiveness(failed_jobs.registry.list_jobs, failed_jobs.results)
    with ResultsWatcher(failed_jobs.results, liveness=liveness) as watcher:
        runs = {snapshot.location.fold: snapshot.summary for snapshot in watcher.snapshot().runs.values()}
    # Their logs were written seconds ago: by the files alone both would still be "running" for minutes.
    assert runs["0"].status is RunStatus.CRASHED and runs["0"].stop_cause == "data_missing_or_corrupt"
    assert runs["1"].status is RunStatus.CRASHED and runs["1"].stop_cause == "host_oom"
    assert "b2nd" in (runs["0"].stop_evidence or "") and "SIGKILL" in (runs["1"].stop_evidence or "")


@pytest.mark.slurm
def test_a_slurm_job_that_hits_its_time_limit(slurm_cluster: SlurmCluster, slurm_time_limit_job: SlurmTimeLimitJob,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The job (a log line, then sleep) was submitted with a 1-minute limit when the first SLURM test started.
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    job_registry, plan, job = slurm_time_limit_job.registry, slurm_time_limit_job.plan, slurm_time_limit_job.job
    results, run_dir = slurm_time_limit_job.tree.results, slurm_time_limit_job.plan.new_run_dir
    done = wait_for_state(job_registry, job.job_id, {JobState.FAILED, JobState.SUCCEEDED, JobState.CANCELLED},
                          timeout=240)
    assert done.state is JobState.FAILED and done.scheduler_state == "TIMEOUT", done
    location = parse_run_path(run_dir, run_dir.relative_to(results).as_posix())
    assert location is not None
    wait_until(lambda: "DUE TO TIME LIMIT" in Path(done.log_path).read_text(), 30, "slurmstepd's time-limit line")
    found = diagnose(location, job=job_evidence(done))
    assert found.cause is StopCause.TIME_LIMIT and found.strength is Strength.STRONG
    assert "state TIMEOUT" in found.evidence and "DUE TO TIME LIMIT" in found.evidence
    liveness = JobLiveness(job_registry.list_jobs, results)
    with ResultsWatcher(results, liveness=liveness) as watcher:
        summary = watcher.run(plan.new_run_id)
        assert summary is not None
        assert summary.summary.status is RunStatus.CRASHED and summary.summary.stop_cause == "time_limit"

