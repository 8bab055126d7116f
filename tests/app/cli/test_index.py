"""`nnwatch index` and `nnwatch scan` through the run index, as a user runs them (real subprocesses)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from index_support import new_run, settle
from paths import REPO

NNWATCH = [sys.executable, "-m", "app.cli"]


def nnwatch(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NNWATCH_STATE": str(state), "PYTHONPATH": str(REPO)}
    env.pop("nnUNet_results", None)
    return subprocess.run([*NNWATCH, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=180)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    runs = [new_run(root, n, 30 + 20 * n) for n in range(3)]
    runs[0].finish()
    settle(root)
    return root


def test_index_info_rebuild_and_a_scan_identical_to_a_fresh_read(tree: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    none_yet = nnwatch("index", "--info", state=state)
    assert none_yet.returncode == 0 and "no run index yet" in none_yet.stdout
    fresh = nnwatch("scan", str(tree), "--format", "json", state=state)
    assert fresh.returncode == 0, fresh.stderr
    assert not (state / "index.sqlite3").exists()  # a scan does not create an index by itself

    built = nnwatch("index", "--rebuild", str(tree), state=state)
    assert built.returncode == 0, built.stderr
    assert "indexed 3 runs" in built.stdout
    info = json.loads(nnwatch("index", "--info", "--json", state=state).stdout)
    assert info["runs"] == 3 and info["size_bytes"] > 0 and info["roots"] == [str(tree)]
    assert 0 <= info["age_s"] < 120 and info["current"]
    text = nnwatch("index", "--info", state=state).stdout
    assert "runs:     3" in text and "MiB" in text

    indexed = nnwatch("scan", str(tree), "--format", "json", state=state)
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout == fresh.stdout
    assert "reading runs" not in indexed.stderr  # nothing to read: every run came from the index
    plain = nnwatch("scan", str(tree), "--format", "json", "--no-index", state=state)
    assert plain.stdout == fresh.stdout
    csv_indexed = nnwatch("scan", str(tree), "--format", "csv", state=state)
    csv_plain = nnwatch("scan", str(tree), "--format", "csv", "--no-index", state=state)
    assert csv_indexed.stdout == csv_plain.stdout


def test_scan_with_a_damaged_index_warns_and_still_answers(tree: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    expected = nnwatch("scan", str(tree), "--format", "json", state=state).stdout
    state.mkdir()
    (state / "index.sqlite3").write_bytes(b"\x00garbage" * 512)
    done = nnwatch("scan", str(tree), "--format", "json", state=state)
    assert done.returncode == 0, done.stderr
    assert "damaged" in done.stderr and "rebuilding" in done.stderr
    assert done.stdout == expected
    assert json.loads(nnwatch("index", "--info", "--json", state=state).stdout)["runs"] == 3


def test_several_roots(tree: Path, tmp_path: Path) -> None:
    """Every root's runs, each row naming its root: one run id can be in two roots (an old copy on another disk)."""
    other = tmp_path / "old_results"
    new_run(other, 7, 12)
    new_run(other, 0, 12)  # the first root's fold 0 again, shorter
    settle(other)
    state = tmp_path / "state"
    rows = json.loads(nnwatch("scan", str(tree), "--root", str(other), "--format", "json", state=state).stdout)
    assert [(r["root"], r["fold"], r["epochs_completed"]) for r in rows] == [
        (str(tree), "0", 30), (str(tree), "1", 50), (str(tree), "2", 70), (str(other), "0", 12), (str(other), "7", 12)]
    table = nnwatch("scan", str(tree), "--root", str(other), state=state).stdout.splitlines()
    assert table[0].split()[:2] == ["root", "run"]
    assert [line.split()[0] for line in table[1:]] == ["results"] * 3 + ["old_results"] * 2
    csv = pd.read_csv(io.StringIO(nnwatch("scan", str(tree), "--root", str(other), "--format", "csv",
                                          state=state).stdout))
    assert csv["root"].tolist() == [r["root"] for r in rows] and csv["run_id"].tolist() == [r["run_id"] for r in rows]
    single = json.loads(nnwatch("scan", str(tree), "--format", "json", state=state).stdout)
    assert "root" not in single[0]  # one root: the rows as they always were
    nnwatch("index", "--rebuild", "--root", str(tree), "--root", str(other), state=state)
    again = json.loads(nnwatch("scan", "--root", str(tree), "--root", str(other), "--format", "json",
                               state=state).stdout)
    assert again == rows
    missing = nnwatch("scan", "--root", str(tmp_path / "nope"), state=state)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_watch_follows_several_roots(tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "old_results"
    run = new_run(other, 7, 12)
    settle(other)
    env = {**os.environ, "NNWATCH_STATE": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([*NNWATCH, "watch", "--root", str(tree), "--root", str(other), "--jsonl"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        events = [json.loads(process.stdout.readline()) for _ in range(4)]
        assert [(e["event"], e["root"], e["fold"]) for e in events] == [
            ("run_added", str(tree), "0"), ("run_added", str(tree), "1"), ("run_added", str(tree), "2"),
            ("run_added", str(other), "7")]
        run.history(1)
        epoch = json.loads(process.stdout.readline())  # blocks until the watcher reports it
        assert (epoch["event"], epoch["root"], epoch["epoch"]) == ("epoch", str(other), 12)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_progress_shows_only_for_a_read_that_takes_a_while() -> None:
    """A quick read prints nothing; a slow one its count at most every 2 s (off a terminal) and where it ended."""
    from app.cli.index import StderrProgress

    def lines(ticks: list[tuple[float, int]]) -> list[str]:
        clock = iter([0.0, *(t for t, _ in ticks)])
        stream = io.StringIO()
        progress = StderrProgress(stream=stream, clock=lambda: next(clock))
        for _, done in ticks:
            progress(done, 100)
        return stream.getvalue().splitlines()

    assert lines([(0.1, 10), (0.5, 60), (0.9, 100)]) == []
    assert lines([(0.5, 10), (1.2, 20), (2.0, 30), (3.5, 60), (4.0, 100)]) == [
        "reading runs: 20/100 (1 s)", "reading runs: 60/100 (4 s)", "reading runs: 100/100 (4 s)"]
