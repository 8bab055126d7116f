"""An extension already in the new run's folder: a live one is never offered for moving, a finished one is
named, and a stopped one (cancelled, failed, crashed) can be started over by moving it aside — with the
real job registry and real local jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest_trainer import FAKE_DATASET, FakeNnunet, python_argv, wait_for, wait_for_state, with_argv
from paths import REPO

from monitor.synth import CurveSpec, RunSpec, write_run
from trainer import JobRegistry, JobState, PreflightError, plan_extend, submit

CURVE = CurveSpec((0.8,), timescale=0.3, noise=0.01, epoch_time_s=60.0, seed=3)


def _target(plan) -> str:  # type: ignore[no-untyped-def]
    return next(check for check in plan.checks if check.name == "target_free").message


def _child(tree: FakeNnunet, **spec: object) -> Path:
    run = write_run(tree.results, RunSpec(FAKE_DATASET, "nnUNetTrainer_2000epochs", "2d", 0, 2000, CURVE,
                                          **spec))  # type: ignore[arg-type]
    return run.folder


def _starts_training(folder: Path) -> tuple[str, ...]:
    """A real process that creates the new run's folder with a log, as nnU-Net does, then keeps running."""
    code = (f"import pathlib, time; p = pathlib.Path({str(folder)!r}); p.mkdir(parents=True); "
            "(p / 'training_log_2024_1_1_00_00_00.txt').write_text('Epoch 0\\n'); "
            "time.sleep(300)")
    return python_argv(code)


def test_a_live_job_blocks_and_a_cancelled_one_can_be_started_over(fake_nnunet: FakeNnunet,
                                                                   job_registry: JobRegistry) -> None:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    job = submit(with_argv(plan, _starts_training(plan.new_run_dir)), registry=job_registry, requested_by="alice")
    wait_for(lambda: (plan.new_run_dir / "training_log_2024_1_1_00_00_00.txt").exists(), 30,
             "the job to create its run folder")

    live = plan_extend(fake_nnunet.run_dir, device="cpu", jobs=job_registry.refresh(), start_over=True)
    message = _target(live)
    assert not live.ok and not live.can_start_over and live.aside is None
    assert f"already training in {plan.new_run_dir}" in message and job.job_id in message
    assert "delete" not in message and "move" not in message
    assert "choose a different number of epochs" in message

    job_registry.cancel(job.job_id, "alice", grace_s=2.0)
    stopped = plan_extend(fake_nnunet.run_dir, device="cpu", jobs=job_registry.refresh())
    assert not stopped.ok and stopped.can_start_over and stopped.aside is not None
    assert stopped.aside.parent == plan.new_run_dir.parent and stopped.aside.name.startswith("fold_0.stopped_")
    assert f"job {job.job_id} cancelled" in _target(stopped) and str(stopped.aside) in _target(stopped)
    assert "nothing is deleted" in _target(stopped)
    with pytest.raises(PreflightError, match="start over"):
        submit(stopped, registry=job_registry, requested_by="alice")
    assert (plan.new_run_dir / "training_log_2024_1_1_00_00_00.txt").exists()

    again = plan_extend(fake_nnunet.run_dir, device="cpu", jobs=job_registry.refresh(), start_over=True)
    assert again.ok and again.start_over and again.aside is not None, again.problems
    assert again.to_dict()["aside"] == str(again.aside)
    second = submit(with_argv(again, python_argv("print('second attempt')")), registry=job_registry,
                    requested_by="alice")
    assert second.job_id != job.job_id
    assert (again.aside / "training_log_2024_1_1_00_00_00.txt").read_text() == "Epoch 0\n"
    assert not plan.new_run_dir.exists(), "the new folder is nnU-Net's to create"
    assert wait_for_state(job_registry, second.job_id, {JobState.SUCCEEDED}).state is JobState.SUCCEEDED


def test_extensions_started_outside_nnwatch_are_recognised_by_their_folder(fake_nnunet: FakeNnunet) -> None:
    folder = _child(fake_nnunet, epochs_done=709, state="running")
    running = plan_extend(fake_nnunet.run_dir, device="cpu", start_over=True)
    assert not running.ok and not running.can_start_over
    assert "started outside nnwatch, is training" in _target(running) and "709/2000 epochs" in _target(running)
    assert "delete" not in _target(running)

    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    _child(fake_nnunet)
    finished = plan_extend(fake_nnunet.run_dir, device="cpu", start_over=True)
    assert not finished.ok and not finished.can_start_over
    assert "extension finished (2000/2000 epochs" in _target(finished)
    other = plan_extend(fake_nnunet.run_dir, epochs=3000, device="cpu")
    assert _target(other).endswith("is free"), "another epoch count is always open"


def test_a_crashed_extension_outside_nnwatch_can_be_started_over(fake_nnunet: FakeNnunet) -> None:
    folder = _child(fake_nnunet, epochs_done=120, state="crashed")
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.can_start_over and "120/2000 epochs, crashed" in _target(plan)
    assert folder.exists()


def test_cli_offers_start_over_and_moves_the_attempt_aside(fake_nnunet: FakeNnunet, tmp_path: Path) -> None:
    folder = _child(fake_nnunet, epochs_done=50, state="crashed")
    db = tmp_path / "cli-jobs.sqlite3"
    argv = [sys.executable, "-m", "app.cli", "extend", str(fake_nnunet.run_dir), "--device", "cpu", "--jobs-db",
            str(db)]
    dry = subprocess.run([*argv, "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 1 and "add --start-over to move it aside to" in dry.stderr
    assert folder.exists()
    over = subprocess.run([*argv, "--dry-run", "--start-over"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert over.returncode == 0, over.stdout + over.stderr
    assert "start over:  the earlier attempt moves to" in over.stdout and folder.exists(), "a dry run moves nothing"
    assert JobRegistry(db).list_jobs() == []
