"""The local backend with real detached processes: exit codes, cancel, outside kills, PID reuse, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest_trainer import FakeNnunet, python_argv, refreshed, wait_for, wait_for_state, with_argv
from paths import REPO

from trainer import ExtendPlan, JobRegistry, JobState, plan_extend, submit
from trainer.backends import BackendError, LaunchRequest
from trainer.local import LocalBackend, group_members
from trainer.runner import process_identity


@pytest.fixture
def cpu_plan(fake_nnunet: FakeNnunet) -> ExtendPlan:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    return plan


def test_a_successful_job_is_recorded_with_its_log(cpu_plan: ExtendPlan, job_registry: JobRegistry) -> None:
    plan = with_argv(cpu_plan, python_argv("import os; print('training', os.environ['nnUNet_results'])"))
    job = submit(plan, registry=job_registry, requested_by="alice")
    assert job.requested_by == "alice" and job.pid is not None and job.backend_job_id == str(job.pid)
    done = wait_for_state(job_registry, job.job_id, {JobState.SUCCEEDED, JobState.FAILED})
    assert done.state is JobState.SUCCEEDED and done.exit_code == 0 and done.finished_at
    assert f"training {plan.env['nnUNet_results']}" in Path(done.log_path).read_text()
    summary = done.to_dict()
    for key in ("job_id", "state", "argv", "new_run_id", "backend", "parent_run_id", "epochs", "backend_job_id",
                "requested_by", "created_at", "log_path", "reason", "exit_code"):
        assert key in summary
    assert summary["state"] == "succeeded" and summary["argv"] == list(plan.argv)


def test_a_failing_job_keeps_its_exit_code_and_last_log_line(cpu_plan: ExtendPlan,
                                                             job_registry: JobRegistry) -> None:
    plan = with_argv(cpu_plan, python_argv("raise SystemExit('CUDA out of memory (pretend)')"))
    job = submit(plan, registry=job_registry, requested_by="bob")
    done = wait_for_state(job_registry, job.job_id, {JobState.SUCCEEDED, JobState.FAILED})
    assert done.state is JobState.FAILED and done.exit_code == 1
    assert "exited with code 1: CUDA out of memory (pretend)" in (done.reason or "")


def test_a_missing_program_fails_with_a_readable_reason(cpu_plan: ExtendPlan, job_registry: JobRegistry) -> None:
    job = submit(with_argv(cpu_plan, ("/nonexistent/nnUNetv2_train",)), registry=job_registry, requested_by="c")
    done = wait_for_state(job_registry, job.job_id, {JobState.FAILED})
    assert done.exit_code == 127 and "could not start '/nonexistent/nnUNetv2_train'" in (done.reason or "")


def test_cancel_stops_the_whole_process_group_even_when_sigterm_is_ignored(
        cpu_plan: ExtendPlan, job_registry: JobRegistry) -> None:
    stubborn = textwrap.dedent("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])  # like a DA worker
        print('re' + 'ady', flush=True)  # the argv (echoed in the log) must not contain the marker
        time.sleep(300)
    """)
    job = submit(with_argv(cpu_plan, python_argv(stubborn)), registry=job_registry, requested_by="alice")
    wait_for(lambda: "ready" in Path(job.log_path).read_text().splitlines(), 30, "the job to start")
    assert job.pid is not None and len(group_members(job.pid)) >= 3  # runner, job, its worker
    started = time.monotonic()
    cancelled = job_registry.cancel(job.job_id, "carol", grace_s=1.0)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by carol"
    assert time.monotonic() - started < 10
    assert group_members(job.pid) == []
    assert job_registry.refresh()[0].state is JobState.CANCELLED  # reconciling does not reopen it


def test_sigterm_from_outside_nnwatch_is_reconciled_as_cancelled(cpu_plan: ExtendPlan,
                                                                 job_registry: JobRegistry) -> None:
    job = submit(with_argv(cpu_plan, python_argv("import time; time.sleep(300)")), registry=job_registry,
                 requested_by="alice")
    assert job.pid is not None
    os.killpg(job.pid, signal.SIGTERM)
    done = wait_for_state(job_registry, job.job_id, {JobState.CANCELLED, JobState.FAILED})
    assert done.state is JobState.CANCELLED and done.reason == "stopped by SIGTERM outside nnwatch"


def test_a_killed_process_group_shows_as_failed_with_a_reason(cpu_plan: ExtendPlan,
                                                             job_registry: JobRegistry) -> None:
    job = submit(with_argv(cpu_plan, python_argv("import time; time.sleep(300)")), registry=job_registry,
                 requested_by="alice")
    assert job.pid is not None
    os.killpg(job.pid, signal.SIGKILL)  # like the OOM killer: the runner cannot record anything
    done = wait_for_state(job_registry, job.job_id, {JobState.CANCELLED, JobState.FAILED})
    assert done.state is JobState.FAILED
    assert "ended without recording an exit code" in (done.reason or "")


def test_a_reused_pid_is_neither_trusted_nor_signalled(cpu_plan: ExtendPlan, job_registry: JobRegistry) -> None:
    """A job whose pid now belongs to another process (here: this test) is over, and cancel spares it."""
    job = submit(with_argv(cpu_plan, python_argv("pass")), registry=job_registry, requested_by="alice")
    wait_for_state(job_registry, job.job_id, {JobState.SUCCEEDED})
    me = process_identity(os.getpid())
    assert me is not None
    impostor = job.evolve(pid=os.getpid(), pid_start_ticks=me.start_ticks - 1, boot_id=me.boot_id,
                          state=JobState.RUNNING, job_dir=str(Path(job.job_dir).parent / "gone"))
    backend = LocalBackend()
    observation = backend.poll([impostor])[impostor.job_id]
    assert observation.state is JobState.FAILED
    backend.cancel(impostor, grace_s=0.1)  # must not SIGTERM this very test process
    assert process_identity(os.getpid()) == me


def test_a_job_whose_launcher_died_before_recording_it_is_adopted(cpu_plan: ExtendPlan,
                                                                 job_registry: JobRegistry) -> None:
    from trainer.submit import _new_job

    job, created = job_registry.create(_new_job(with_argv(cpu_plan, python_argv("import time; time.sleep(1)")),
                                                job_registry, "dave"))
    assert created
    # The launcher starts the process and dies before record_launch(): only runner.json knows the pid.
    LocalBackend().launch(LaunchRequest(job.job_id, Path(job.job_dir), Path(job.log_path), job.argv, job.env))
    adopted = refreshed(job_registry, job.job_id)
    assert adopted.pid is not None and adopted.state in (JobState.RUNNING, JobState.SUCCEEDED)
    assert wait_for_state(job_registry, job.job_id, {JobState.SUCCEEDED}).exit_code == 0


def test_a_job_whose_launcher_died_before_launching_is_marked_failed(cpu_plan: ExtendPlan,
                                                                    job_registry: JobRegistry) -> None:
    from trainer.submit import _new_job

    stale = _new_job(cpu_plan, job_registry, "erin").evolve(created_at="2020-01-01T00:00:00+00:00")
    job_registry.create(stale)
    job = refreshed(job_registry, stale.job_id)
    assert job.state is JobState.FAILED and "launcher stopped before the job was started" in (job.reason or "")


LAUNCHER = textwrap.dedent("""
    import dataclasses, sys, time
    from trainer import JobRegistry, plan_extend, submit
    plan = plan_extend(sys.argv[1], device="cpu")
    plan = dataclasses.replace(plan, argv=(sys.executable, "-c", "import time; time.sleep(4); raise SystemExit(5)"))
    job = submit(plan, registry=JobRegistry(sys.argv[2]), requested_by="launcher")
    print(job.job_id, flush=True)
    time.sleep(600)
""")


def test_killing_the_launcher_leaves_the_job_running_and_tracked_to_its_end(
        fake_nnunet: FakeNnunet, tmp_path: Path) -> None:
    db = tmp_path / "restart" / "jobs.sqlite3"
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(fake_nnunet.run_dir), str(db)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        job_id = launcher.stdout.readline().strip()
    finally:
        launcher.kill()
        launcher.wait()
    registry = JobRegistry(db)  # a fresh registry object, as after a restart of the dashboard
    job = registry.get(job_id)
    assert job.state is JobState.RUNNING and job.pid is not None
    assert process_identity(job.pid) is not None, "the job died with its launcher"
    done = wait_for_state(registry, job_id, {JobState.SUCCEEDED, JobState.FAILED}, timeout=60)
    assert done.state is JobState.FAILED and done.exit_code == 5  # recovered although nobody waited on it


def test_a_local_job_of_another_host_is_neither_judged_nor_signalled(cpu_plan: ExtendPlan,
                                                                    job_registry: JobRegistry) -> None:
    """A registry shared between workstations: a pid from another machine means nothing here."""
    job = submit(with_argv(cpu_plan, python_argv("import time; time.sleep(120)")), registry=job_registry,
                 requested_by="alice")
    foreign = job.evolve(host="another-workstation")
    backend = LocalBackend()
    assert backend.poll([foreign]) == {}
    with pytest.raises(BackendError, match="runs on another-workstation"):
        backend.cancel(foreign, grace_s=0.1)
    assert job.pid is not None and process_identity(job.pid) is not None
