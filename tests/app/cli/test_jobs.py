"""`nnwatch extend` and the next-step commands as a user reads them: checks by their names, the job they started."""

from __future__ import annotations

import json

import pytest
from conftest_trainer import FakeNnunet

from app.cli.common import EXIT_FAILED, EXIT_OK, report_job
from app.cli.main import main
from trainer import Job, JobKind, JobState


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_dry_run_prints_each_check_by_its_human_name(fake_nnunet: FakeNnunet,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, shown = _run(capsys, "extend", str(fake_nnunet.run_dir), "--device", "cpu", "--dry-run", "--json")
    checks = json.loads(shown)["checks"]
    assert code == 0 and checks
    code, text = _run(capsys, "extend", str(fake_nnunet.run_dir), "--device", "cpu", "--dry-run")
    assert code == 0 and text.endswith("dry run: nothing was changed\n")
    lines = [line.strip() for line in text.splitlines() if line.startswith("  [")]
    assert len(lines) == len(checks)
    for line, check in zip(lines, checks):
        mark = "ok  " if check["ok"] else ("FAIL" if check["blocking"] else "warn")
        assert line == f"[{mark}] {check['title']}: {check['message']}".strip()
    assert "[ok  ] Folder for the new run:" in text


def _job(kind: JobKind, state: JobState, reason: str | None = None) -> Job:
    return Job(job_id="0123456789ab", state=state, kind=kind, parent_run_id="D/a__p__2d/fold_0",
               parent_path="/r/D/a__p__2d/fold_0", new_run_id="D/a_2000epochs__p__2d/fold_0",
               new_run_path="/r/D/a_2000epochs__p__2d/fold_0", new_trainer="a_2000epochs", epochs=2000,
               backend="local", device="cpu", requested_by="ann", created_at="2026-01-01T00:00:00+00:00",
               argv=("nnUNetv2_train", "D", "2d", "0"), env={}, job_dir="/s/jobs/0123456789ab",
               log_path="/s/jobs/0123456789ab/job.log", reason=reason)


def test_extend_and_the_next_steps_report_a_job_with_one_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_job(_job(JobKind.EXTEND, JobState.RUNNING), as_json=False,
                      notes=["earlier attempt moved to: /r/x.stopped"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "job 0123456789ab: running (local) → D/a_2000epochs__p__2d/fold_0", "log: /s/jobs/0123456789ab/job.log",
        "earlier attempt moved to: /r/x.stopped"]
    failed = _job(JobKind.TRAIN_FOLD, JobState.FAILED, "launch failed: no runner")
    assert report_job(failed, as_json=False) == EXIT_FAILED
    assert capsys.readouterr().out.splitlines() == [
        "job 0123456789ab: train_fold failed (local) → D/a_2000epochs__p__2d/fold_0",
        "log: /s/jobs/0123456789ab/job.log", "reason: launch failed: no runner"]
    assert report_job(failed, as_json=True) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(failed.to_dict()))
