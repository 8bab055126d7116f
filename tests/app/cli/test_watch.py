"""``nnwatch watch`` as a real subprocess: run_added for existing runs, an epoch as it is written, clean exit."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from paths import REPO

from app.cli.watch import _seconds, format_event
from monitor.synth import FakeRun, make_run_dir

# The installed entry point (``nnwatch``), as a user runs it; ``python -m app.cli`` where it is not installed.
_SCRIPT = Path(sys.executable).parent / "nnwatch"
NNWATCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "app.cli"]


class LineReader:
    """Reads a pipe on a thread so the test can wait for a line with a deadline."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def next(self, timeout: float = 20.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout} s") from None


def _start(root: Path, *extra: str) -> tuple[subprocess.Popen[str], LineReader]:
    process = subprocess.Popen([*NNWATCH, "watch", str(root), *extra], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return process, LineReader(process.stdout)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_watch_jsonl_streams_runs_and_epochs_and_exits_cleanly(tmp_path: Path, stop_signal: int) -> None:
    runs = []
    for fold in (0, 1):
        run = FakeRun(make_run_dir(tmp_path, fold=fold), planned_epochs=50)
        run.start_session()
        run.history(3 + fold)
        runs.append(run)
    process, reader = _start(tmp_path, "--jsonl")
    try:
        added = [json.loads(reader.next()) for _ in runs]
        assert {e["event"] for e in added} == {"run_added"}
        assert {e["run_id"]: e["epochs_completed"] for e in added} == {
            r.folder.relative_to(tmp_path).as_posix(): 3 + i for i, r in enumerate(runs)}
        assert all(e["status"] == "running" and e["time"].endswith("+00:00") for e in added)
        runs[1].epoch()
        event = json.loads(reader.next())
        assert event["event"] == "epoch" and event["run_id"] == added[1]["run_id"]
        for key in ("epoch", "mean_fg_dice", "ema_fg_dice", "lr", "train_loss", "val_loss", "dice_1", "dice_2",
                    "epoch_time_s"):
            assert key in event
        assert event["epoch"] == 4
        process.send_signal(stop_signal)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert "watching" in stderr and "Traceback" not in stderr


def test_watch_without_jsonl_prints_one_line_per_event(tmp_path: Path) -> None:
    run = FakeRun(make_run_dir(tmp_path))
    run.start_session()
    run.history(2)
    process, reader = _start(tmp_path, "--poll", "0.2")
    try:
        line = reader.next()
        assert "run_added" in line and "running" in line and "2/1000 epochs" in line
        started = time.monotonic()
        run.epoch()
        line = reader.next()
        assert "epoch" in line and "epoch 2 " in line
        assert time.monotonic() - started < 5
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_human_format_of_each_event() -> None:
    base = {"run_id": "D/T__P__2d/fold_0", "time": "2024-03-09T07:05:01.000+00:00"}
    assert "running -> stalled  (no log line)" in format_event(
        {**base, "event": "status", "status": "stalled", "previous": "running", "reason": "no log line"})
    assert format_event({**base, "event": "run_removed", "reason": "moved", "moved_to": "E/x/fold_0"}).endswith(
        "moved to E/x/fold_0")
    line = format_event({**base, "event": "epoch", "epoch": 7, "mean_fg_dice": 0.5, "ema_fg_dice": None,
                         "lr": 0.00991, "train_loss": -0.1, "val_loss": float("nan"), "epoch_time_s": 12.0})
    assert line.startswith("2024-03-09 07:05:01 UTC  epoch") and "ema -" in line and "loss -0.1000/-" in line


def test_bad_poll_interval_is_a_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run([*NNWATCH, "watch", str(tmp_path), "--poll", "0"], cwd=REPO,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "--poll" in completed.stderr
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seconds(bad)
    assert _seconds("0.5") == 0.5
    missing = subprocess.run([*NNWATCH, "watch", str(tmp_path / "nope")], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "not found" in missing.stderr
