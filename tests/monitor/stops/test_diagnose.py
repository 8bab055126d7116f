"""The classifier over a real run folder (written by ``monitor.synth``), job evidence and the lab's scheduler
output folder; and the summary's ``stop_cause`` / ``stop_evidence`` in scan, the watcher and the report."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

import monitor.stops.folder as folder_module
from monitor import load_run, scan
from monitor.run_table import scan_rows
from monitor.runs import RunStatus
from monitor.stops import (
    SCHEDULER_OUTPUTS_ENV,
    JobEvidence,
    StopCause,
    Strength,
    diagnose,
    with_stop_cause,
)
from monitor.synth import FakeRun, log_line, make_run_dir
from monitor.watch import ResultsWatcher

FIXTURES = Path(__file__).parent / "fixtures"


def _run(root: Path, epochs: int = 8, fold: int = 0, age_s: float = 0.0) -> FakeRun:
    run = FakeRun(make_run_dir(root, fold=fold, labels=["liver", "tumour"]), planned_epochs=100, epoch_s=60.0)
    run.start_session()
    run.history(epochs)
    if age_s:
        assert run.log_path is not None
        stamp = time.time() - age_s
        os.utime(run.log_path, (stamp, stamp))
    return run


def _crashed_summary(run: FakeRun):  # type: ignore[no-untyped-def]
    reader = load_run(run.folder)
    inputs = reader.status_inputs(now=(reader.last_update() or 0) + 10 * 3600)
    from monitor.runs.status import assess

    summary = reader.summary(assessment=assess(inputs))
    assert summary.status is RunStatus.CRASHED
    return reader, summary


def test_nothing_known_gives_unknown_with_the_last_log_lines(tmp_path: Path) -> None:
    run = _run(tmp_path)
    found = diagnose(load_run(run.folder).location)
    assert found.cause is StopCause.UNKNOWN and found.strength is Strength.WEAK
    assert "Epoch time" in found.evidence and found.source.startswith("last lines of training log training_log_")
    assert len(found.evidence.splitlines()) <= 8


def test_nan_losses_in_the_training_log(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run._append(log_line(run.clock, "Epoch", 8), log_line(run.clock, "train_loss", "nan"),
                log_line(run.clock, "val_loss", "nan"), log_line(run.clock, "Pseudo dice", [0.0, 0.0]))
    found = diagnose(load_run(run.folder).location)
    assert found.cause is StopCause.NAN_LOSS and found.strength is Strength.MEDIUM
    assert found.evidence.splitlines()[-2:] == [line.strip() for line in (
        log_line(run.clock, "train_loss", "nan"), log_line(run.clock, "val_loss", "nan"))]


_ORPHAN_TRACEBACK = """Process SpawnProcess-3:
Traceback (most recent call last):
  File "/usr/lib/python3.11/multiprocessing/process.py", line 314, in _bootstrap
    self.run()
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 250, in recv
    buf = self._recv_bytes()
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 395, in _recv
    chunk = read(handle, remaining)
ConnectionResetError: [Errno 104] Connection reset by peer
"""


def test_job_evidence_is_stronger_than_the_folder_and_most_specific_wins(tmp_path: Path) -> None:
    location = load_run(_run(tmp_path).folder).location
    oom = (FIXTURES / "cuda_oom.txt").read_text()
    timeout = JobEvidence(alive=False, source="SLURM job 7", output=oom, scheduler_state="TIMEOUT", exit_code=0)
    assert diagnose(location, job=timeout).cause is StopCause.TIME_LIMIT
    failed = JobEvidence(alive=False, source="SLURM job 8", output=oom, output_path="/x/job.log",
                         scheduler_state="FAILED", exit_code=1)
    found = diagnose(location, job=failed)
    assert found.cause is StopCause.CUDA_OOM and found.source == "job output /x/job.log"
    killed = JobEvidence(alive=False, source="local job ab12", output="2024-01-01: Epoch 3\n", exit_code=137,
                         signal="SIGKILL")
    found = diagnose(location, job=killed)
    assert found.cause is StopCause.HOST_OOM and "SIGKILL" in found.evidence and found.strength is Strength.MEDIUM
    # The workers of a killed training print their broken pipe to it afterwards: a consequence, not the cause.
    orphans = "2024-01-01: Epoch 3\n" + _ORPHAN_TRACEBACK
    found = diagnose(location, job=replace(killed, output=orphans))
    assert found.cause is StopCause.HOST_OOM and "SIGKILL" in found.evidence
    found = diagnose(location, job=JobEvidence(alive=False, source="local job ab12", output=orphans, exit_code=1))
    assert found.cause is StopCause.EXCEPTION and "ConnectionResetError" in found.summary  # not killed: the error
    by_alice = JobEvidence(alive=False, source="local job ab12", exit_code=143, signal="SIGTERM", cancelled_by="alice")
    found = diagnose(location, job=by_alice)
    assert found.cause is StopCause.CANCELLED and found.summary == "cancelled by alice"
    by_uid = JobEvidence(alive=False, source="SLURM job 9", scheduler_state="CANCELLED by 1000")
    assert diagnose(location, job=by_uid).summary == "cancelled in the scheduler by 1000"
    alive = JobEvidence(alive=True, source="local job ab12", output=oom)
    assert diagnose(location, job=alive).cause is StopCause.UNKNOWN  # a live job's output says nothing yet


def test_a_full_disk_and_a_truncated_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path)
    (run.folder / "checkpoint_latest.pth").write_bytes(b"PK\x03\x04 half a zip")
    full = shutil._ntuple_diskusage(500 * 1024**3, 500 * 1024**3 - 2**20, 2**20)  # type: ignore[attr-defined]
    monkeypatch.setattr(folder_module.shutil, "disk_usage", lambda _path: full)
    found = diagnose(load_run(run.folder).location)
    assert found.cause is StopCause.DISK_FULL and "1 MB free of 500.0 GB" in found.evidence
    assert any("checkpoint_latest.pth is truncated" in note for note in found.notes)


def test_dead_dice_and_an_exploded_epoch_time_are_noted(tmp_path: Path) -> None:
    run = FakeRun(make_run_dir(tmp_path, labels=["a"]), planned_epochs=100, epoch_s=60.0)
    run.curves.dice[:] = 0.0
    run.curves.epoch_time_s[11] = 900.0
    run.start_session()
    run.history(12)
    reader = load_run(run.folder)
    found = diagnose(reader.location, reader.curves())
    assert any("pseudo Dice was 0" in note for note in found.notes)
    assert any("15.0× the median" in note for note in found.notes)


def test_the_summary_carries_cause_and_evidence_only_for_stopped_runs(tmp_path: Path) -> None:
    run = _run(tmp_path)
    reader, crashed = _crashed_summary(run)
    job = JobEvidence(alive=False, source="local job 1", output=(FIXTURES / "workers_died.txt").read_text())
    filled = with_stop_cause(crashed, reader.location, reader.curves(), job=job)
    assert filled.stop_cause == "workers_died" and "region_labels" in (filled.stop_evidence or "")
    assert filled.row()["stop_cause"] == "workers_died"
    running = reader.summary()
    assert running.status is RunStatus.RUNNING
    assert with_stop_cause(running, reader.location, job=job).stop_cause is None
    assert with_stop_cause(filled.assessed(reader.assess()), reader.location).stop_cause is None


def test_scan_json_has_stop_cause_and_evidence(tmp_path: Path) -> None:
    _run(tmp_path, fold=0, age_s=6 * 3600)  # silent for hours: crashed
    live = _run(tmp_path, fold=1)
    live.begin_epoch()
    rows, _problems = scan_rows(tmp_path)
    crashed, running = sorted(rows, key=lambda row: row["fold"])
    assert crashed["status"] == "crashed" and crashed["stop_cause"] == "unknown"
    assert "Epoch time" in crashed["stop_evidence"]
    assert running["status"] == "running" and running["stop_cause"] is None and running["stop_evidence"] is None
    assert '"stop_cause": null' in json.dumps(running)
    assert list(scan(tmp_path).columns[-2:]) == ["stop_cause", "stop_evidence"]


def test_a_lab_scheduler_output_that_mentions_the_fold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path / "results", age_s=6 * 3600)
    outputs = tmp_path / "slurm_logs"
    outputs.mkdir()
    (outputs / "slurm-100.out").write_text("another run\n" + (FIXTURES / "workers_died.txt").read_text())
    (outputs / "slurm-101.out").write_text(f"+ cd {run.folder}\n" + (FIXTURES / "cuda_oom.txt").read_text())
    monkeypatch.setenv(SCHEDULER_OUTPUTS_ENV, str(outputs))
    row = scan(tmp_path / "results").iloc[0]
    assert row["stop_cause"] == "cuda_oom" and "OutOfMemoryError" in row["stop_evidence"]


def test_the_watcher_marks_a_run_whose_job_died_at_once_with_its_cause(tmp_path: Path) -> None:
    _run(tmp_path)  # written just now: by its files alone it is running
    verdicts: dict[str, JobEvidence | bool | None] = {}

    def liveness(run_id: str) -> JobEvidence | bool | None:
        return verdicts.get(run_id)

    with ResultsWatcher(tmp_path, liveness=liveness, tick_s=0.05) as watcher:
        run_id = next(iter(watcher.snapshot().runs))
        assert watcher.run(run_id).summary.status is RunStatus.RUNNING  # type: ignore[union-attr]
        version = watcher.version
        verdicts[run_id] = JobEvidence(alive=False, source="SLURM job 5", scheduler_state="TIMEOUT",
                                       output="slurmstepd: error: *** JOB 5 ON n1 CANCELLED AT 2026-12-07T03:00:00 "
                                              "DUE TO TIME LIMIT ***\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            changes = watcher.changes_since(version, timeout=1.0)
            version = changes.version
            status = [e for e in changes.events if e.kind == "status" and e.run_id == run_id]
            if status:
                break
        else:
            raise AssertionError("no status event after the job was reported dead")
        event = status[-1].data
        assert event["status"] == "crashed" and event["stop_cause"] == "time_limit"
        summary = watcher.run(run_id).summary  # type: ignore[union-attr]
        assert summary.status is RunStatus.CRASHED and summary.stop_cause == "time_limit"
        assert "DUE TO TIME LIMIT" in (summary.stop_evidence or "")


def test_the_run_report_says_why(tmp_path: Path) -> None:
    run = _run(tmp_path, epochs=40, age_s=6 * 3600)
    run._append(log_line(run.clock, "train_loss", "nan"), log_line(run.clock, "val_loss", "nan"))
    stamp = time.time() - 6 * 3600
    assert run.log_path is not None
    os.utime(run.log_path, (stamp, stamp))
    from monitor.report.data import load_run_data
    from monitor.report.run import run_footer_lines, run_subtitle

    data = load_run_data(run.folder)
    assert "crashed after epoch 39 (NaN or inf loss)" in run_subtitle(data)
    assert run_footer_lines(data)[-1].startswith("Stopped because of NaN or inf loss: ")
