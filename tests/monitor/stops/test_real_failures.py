"""A real nnU-Net CPU training whose loss goes NaN (a trainer variant injects it) and which is then killed,
classified from its run folder alone: no job record, no console output."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from nnunet_tiny import train_command
from stop_failures import NAN_TRAINER, fold_dir, install_nan_trainer, logged_epochs, wait_until

from monitor import load_run
from monitor.runs import RunStatus
from monitor.runs.status import assess
from monitor.stops import StopCause, Strength, diagnose, with_stop_cause

pytestmark = pytest.mark.nnunet


def test_a_run_whose_loss_goes_nan(tiny_nnunet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    install_nan_trainer()
    results = tmp_path / "results"
    env = {**tiny_nnunet.env, "nnUNet_results": str(results), "NNWATCH_TINY_EPOCHS": "40"}
    run_dir = fold_dir(results, 0, NAN_TRAINER)
    with open(tmp_path / "console.txt", "w") as console:
        process = subprocess.Popen(train_command(0, NAN_TRAINER), env=env, stdout=console,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "train_loss nan" in logged_epochs(run_dir) or process.poll() is not None, 600,
                   "a NaN training loss in the log")
        assert process.poll() is None, (tmp_path / "console.txt").read_text()[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the training and its data-augmentation workers
        process.wait()
    reader = load_run(run_dir, results)
    inputs = reader.status_inputs()
    later = assess(replace(inputs, now=(inputs.last_update or 0) + 4 * 3600))  # nobody restarted it
    summary = with_stop_cause(reader.summary(assessment=later), reader.location, reader.curves())
    assert summary.status is RunStatus.CRASHED and summary.stop_cause == "nan_loss"
    assert "train_loss nan" in (summary.stop_evidence or "")
    found = diagnose(reader.location, reader.curves())
    assert found.cause is StopCause.NAN_LOSS and found.strength is Strength.MEDIUM
    assert found.source.startswith("training log training_log_") and "#1612" in found.advice
