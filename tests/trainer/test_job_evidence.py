"""What trainer hands the stop-cause classifier: SLURM's final state kept with the job (older registries gain
the column), a job's evidence from its folder, and the per-run liveness the dashboard gives the watcher."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from trainer import Job, JobLiveness, JobRegistry, JobState, job_evidence
from trainer.backends import Observation
from trainer.slurm_text import SchedulerRecord, final_state_text, parse_sacct, parse_scontrol_jobs


def _job(tmp_path: Path, job_id: str, run: str, state: JobState, **changes: object) -> Job:
    job_dir = tmp_path / "jobs" / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    job = Job(job_id=job_id, state=state, parent_run_id="D/T__P__2d/fold_0", parent_path=str(tmp_path / "parent"),
              new_run_id=run, new_run_path=str(tmp_path / "results" / run), new_trainer="T_2000epochs", epochs=2000,
              backend="local", device="cpu", requested_by="alice", created_at="2026-12-07T01:00:00+00:00",
              argv=("nnUNetv2_train",), env={}, job_dir=str(job_dir), log_path=str(job_dir / "job.log"))
    return replace(job, **changes)  # type: ignore[arg-type]


def test_final_state_text_keeps_who_cancelled() -> None:
    sacct = parse_sacct("42|nnwatch-x|CANCELLED by 1000|0:15\n43|nnwatch-y|TIMEOUT|0:0\n44|z|OUT_OF_MEMORY+|0:125\n")
    assert [final_state_text(sacct[k]) for k in ("42", "43", "44")] == ["CANCELLED by 1000", "TIMEOUT",
                                                                        "OUT_OF_MEMORY"]
    scontrol = parse_scontrol_jobs("JobId=7 JobName=nnwatch-a JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n")
    assert final_state_text(scontrol["7"]) == "TIMEOUT"
    assert final_state_text(SchedulerRecord("8", "NODE_FAIL")) == "NODE_FAIL"


def test_an_older_registry_gains_the_scheduler_state_column(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    registry = JobRegistry(path)
    with sqlite3.connect(path) as db:  # the registry as a release with job kinds but no scheduler state wrote it
        db.execute("ALTER TABLE jobs DROP COLUMN scheduler_state")
        db.execute("PRAGMA user_version = 2")
    job = _job(tmp_path, "a1", "D/T_2000epochs__P__2d/fold_0", JobState.RUNNING)
    row = {k: v for k, v in job.to_row().items() if k != "scheduler_state"}
    with sqlite3.connect(path) as db:
        db.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    registry = JobRegistry(path)
    assert registry.get("a1").scheduler_state is None
    changed = registry.record_observation(registry.get("a1"), Observation(JobState.FAILED, reason="SLURM TIMEOUT",
                                                                          scheduler_state="TIMEOUT"))
    assert changed and registry.get("a1").scheduler_state == "TIMEOUT"


def test_job_evidence_of_a_local_job_killed_with_sigkill(tmp_path: Path) -> None:
    job = _job(tmp_path, "b2", "D/T__P__2d/fold_0", JobState.FAILED, exit_code=137)
    Path(job.log_path).write_text("2026-12-07 01:00:00.000000: Epoch 3\n")
    (Path(job.job_dir) / "exit.json").write_text(json.dumps({"exit_code": 137, "signal": "SIGKILL"}))
    evidence = job_evidence(job)
    assert evidence.alive is False and evidence.signal == "SIGKILL" and evidence.exit_code == 137
    assert "Epoch 3" in evidence.output and evidence.output_path == job.log_path
    assert evidence.source == "local job b2"
    running = job_evidence(replace(job, state=JobState.RUNNING))
    assert running.alive is True and running.output == ""
    assert job_evidence(replace(job, state=JobState.SUCCEEDED)).alive is None  # the run's files decide


def test_liveness_uses_the_newest_job_of_each_run_and_asks_the_source_sparingly(tmp_path: Path) -> None:
    run = "D/T_2000epochs__P__2d/fold_0"
    older = _job(tmp_path, "c3", run, JobState.FAILED, created_at="2026-12-07T01:00:00+00:00")
    newer = _job(tmp_path, "c4", run, JobState.RUNNING, created_at="2026-12-07T02:00:00+00:00")
    jobs = [newer, older]
    calls = []
    now = [0.0]

    def source() -> list[Job]:
        calls.append(now[0])
        return list(jobs)

    liveness = JobLiveness(source, tmp_path / "results", min_interval_s=2.0, clock=lambda: now[0])
    answer = liveness(run)
    assert answer is not None and answer.alive is True
    assert liveness("D/other__P__2d/fold_1") is None
    assert len(calls) == 1  # one read serves every run until the interval passes
    jobs[0] = replace(newer, state=JobState.CANCELLED, cancel_requested_by="bob")
    now[0] = 2.5
    answer = liveness(run)
    assert answer is not None and answer.alive is False and answer.cancelled_by == "bob"
    assert len(calls) == 2
