"""``nnwatch analyze`` says why a run stopped early (text and JSON)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app.cli import main
from monitor.synth import FakeRun, log_line, make_run_dir


def test_analyze_reports_the_stop_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = FakeRun(make_run_dir(tmp_path, labels=["liver"]), planned_epochs=1000, epoch_s=60.0)
    run.start_session()
    run.history(40)
    run._append(log_line(run.clock, "train_loss", "nan"), log_line(run.clock, "val_loss", "nan"))
    assert run.log_path is not None
    stamp = time.time() - 6 * 3600  # silent for hours: crashed
    os.utime(run.log_path, (stamp, stamp))
    assert main(["analyze", str(run.folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stop_cause"] == "nan_loss" and result["stop_evidence"].endswith("val_loss nan")
    assert main(["analyze", str(tmp_path)]) == 0
    assert "stopped because of NaN or inf loss: " in capsys.readouterr().out


def test_analyze_says_plainly_when_the_cause_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = FakeRun(make_run_dir(tmp_path, labels=["liver"]), planned_epochs=1000, epoch_s=60.0)
    run.start_session()
    run.history(40)
    assert run.log_path is not None
    stamp = time.time() - 6 * 3600
    os.utime(run.log_path, (stamp, stamp))
    assert main(["analyze", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    last = run.log_path.read_text().strip().splitlines()[-1].strip()
    assert f"stopped, cause unknown; the log ends: {last}" in out and "because of unknown" not in out
