"""The SLURM backend against a real single-node cluster started by the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest_trainer import (
    FakeNnunet,
    SlurmTimeLimitJob,
    python_argv,
    refreshed,
    wait_for,
    wait_for_state,
    with_argv,
)
from slurm_cluster import SlurmCluster

from trainer import ExtendPlan, JobRegistry, JobState, SlurmOptions, plan_extend, submit
from trainer.backends import LaunchRequest
from trainer.slurm import SlurmBackend, slurm_job_name
from trainer.submit import _new_job

pytestmark = pytest.mark.slurm

SLEEP = python_argv("import time; time.sleep(120)")
TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster, slurm_time_limit_job: SlurmTimeLimitJob,
            monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    del slurm_time_limit_job  # submitted with the first test here: its minute passes while these tests run
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    return slurm_cluster


def slurm_plan(fake_nnunet: FakeNnunet, argv: tuple[str, ...], epochs: int = 2000) -> ExtendPlan:
    plan = plan_extend(fake_nnunet.run_dir, epochs=epochs, backend="slurm", device="cpu",
                       slurm=SlurmOptions(partition="debug", time="00:10:00"))
    assert plan.ok, plan.problems
    return with_argv(plan, argv)


def scheduler_state(cluster: SlurmCluster, slurm_id: str) -> str:
    out = cluster.run("scontrol", "show", "job", "-o", slurm_id, check=False).stdout
    return next((field.split("=", 1)[1] for field in out.split() if field.startswith("JobState=")), "")


def test_submit_observe_running_and_cancel(cluster: SlurmCluster, fake_nnunet: FakeNnunet,
                                           job_registry: JobRegistry) -> None:
    job = submit(slurm_plan(fake_nnunet, SLEEP), registry=job_registry, requested_by="alice")
    assert job.backend == "slurm" and job.backend_job_id and job.state in (JobState.QUEUED, JobState.RUNNING)
    script = (Path(job.job_dir) / "job.sbatch").read_text()
    assert "#SBATCH --partition=debug" in script and f"#SBATCH --output={job.log_path}" in script
    assert "--gres" not in script  # --device cpu asks for no GPU
    assert f"export nnUNet_results={fake_nnunet.results}" in script
    running = wait_for_state(job_registry, job.job_id, {JobState.RUNNING}, timeout=60)
    queue = cluster.run("squeue", "--noheader", "--format=%i %j").stdout
    assert f"{running.backend_job_id} {slurm_job_name(job.job_id)}" in queue
    wait_for(lambda: "[nnwatch] job" in Path(job.log_path).read_text(), 30, "the job's log")
    cancelled = job_registry.cancel(job.job_id, "alice")
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by alice"
    wait_for(lambda: scheduler_state(cluster, job.backend_job_id or "") == "CANCELLED", 30, "SLURM to cancel")
    assert refreshed(job_registry, job.job_id).state is JobState.CANCELLED


def test_a_job_scancelled_outside_nnwatch_is_reconciled_as_cancelled(
        cluster: SlurmCluster, fake_nnunet: FakeNnunet, job_registry: JobRegistry) -> None:
    job = submit(slurm_plan(fake_nnunet, SLEEP), registry=job_registry, requested_by="alice")
    wait_for_state(job_registry, job.job_id, {JobState.RUNNING}, timeout=60)
    cluster.run("scancel", job.backend_job_id or "")
    done = wait_for_state(job_registry, job.job_id, TERMINAL, timeout=60)
    assert done.state is JobState.CANCELLED and (done.reason or "").startswith("cancelled in SLURM")


def test_exit_codes_come_back_from_slurm(cluster: SlurmCluster, fake_nnunet: FakeNnunet,
                                        job_registry: JobRegistry) -> None:
    ok = submit(slurm_plan(fake_nnunet, python_argv("print('trained')"), epochs=2000), registry=job_registry,
                requested_by="alice")
    bad = submit(slurm_plan(fake_nnunet, python_argv("raise SystemExit(3)"), epochs=3000), registry=job_registry,
                 requested_by="alice")
    assert ok.job_id != bad.job_id  # different lengths are different extends
    assert wait_for_state(job_registry, ok.job_id, TERMINAL, timeout=90).state is JobState.SUCCEEDED
    failed = wait_for_state(job_registry, bad.job_id, TERMINAL, timeout=90)
    assert failed.state is JobState.FAILED and failed.exit_code == 3
    assert "trained" in Path(ok.log_path).read_text()


def test_a_failed_poll_keeps_the_last_known_state(cluster: SlurmCluster, fake_nnunet: FakeNnunet,
                                                 job_registry: JobRegistry, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit(slurm_plan(fake_nnunet, SLEEP), registry=job_registry, requested_by="alice")
    wait_for_state(job_registry, job.job_id, {JobState.RUNNING}, timeout=60)
    broken = tmp_path / "bin"
    broken.mkdir()
    squeue = broken / "squeue"  # what squeue prints while the controller is down
    squeue.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
    squeue.chmod(0o755)
    with monkeypatch.context() as patch:
        patch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
        assert refreshed(job_registry, job.job_id).state is JobState.RUNNING
    assert job_registry.cancel(job.job_id, "alice").state is JobState.CANCELLED


def test_a_job_submitted_by_a_launcher_that_died_is_found_by_name(
        cluster: SlurmCluster, fake_nnunet: FakeNnunet, job_registry: JobRegistry) -> None:
    job, created = job_registry.create(_new_job(slurm_plan(fake_nnunet, SLEEP), job_registry, "dave"))
    assert created
    slurm_id = SlurmBackend().launch(LaunchRequest(job.job_id, Path(job.job_dir), Path(job.log_path), job.argv,
                                                   job.env, SlurmOptions(gres=""))).backend_job_id
    adopted = refreshed(job_registry, job.job_id)
    assert adopted.backend_job_id == slurm_id and adopted.state in (JobState.QUEUED, JobState.RUNNING)
    assert job_registry.cancel(job.job_id, "dave").state is JobState.CANCELLED
