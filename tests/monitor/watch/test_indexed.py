"""A watcher restarted on a run index: unchanged runs come from it unread, their curves only when asked, and
what changes afterwards is read from the saved offsets."""

from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from index_support import fresh_rows, new_run, plain, settle

from monitor.checkpoints import reader as checkpoint_reader
from monitor.index import RunIndex, indexed_scan_rows
from monitor.logs import LogParser
from monitor.runs import load_run
from monitor.watch import ResultsWatcher


def _summaries(watcher: ResultsWatcher) -> dict[str, object]:
    return {run_id: snap.summary for run_id, snap in watcher.snapshot().runs.items()}


def test_a_restart_takes_unchanged_runs_from_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "results"
    runs = [new_run(root, n, 30 + 10 * n) for n in range(4)]
    runs[0].finish()
    settle(root)
    path = tmp_path / "index.sqlite3"
    with ResultsWatcher(root, index=RunIndex(path)) as first:
        before = _summaries(first)
        frames = {run_id: snap.frame() for run_id, snap in first.snapshot().runs.items()}
    # stop() saved every run; a new process opens the index
    feeds = [0]
    original = LogParser.feed

    def counting(self: LogParser, data: bytes, **kwargs: bool) -> object:
        feeds[0] += 1
        return original(self, data, **kwargs)

    monkeypatch.setattr(LogParser, "feed", counting)
    progress: list[tuple[int, int]] = []
    index = RunIndex(path)
    second = ResultsWatcher(root, index=index, progress=lambda done, total: progress.append((done, total)))
    with second:
        snapshot = second.snapshot()
        assert feeds[0] == 0
        assert gc.isenabled()  # paused only while the stored runs were built
        assert progress[-1] == (4, 4)
        assert _summaries(second) == before
        assert all(snap.loaded is None for snap in snapshot.runs.values())  # nothing in memory yet
        for run_id, snap in snapshot.runs.items():
            assert snap.frame().equals(frames[run_id])  # loaded on demand, from the index
        assert feeds[0] == 0

        version = second.version
        runs[2].history(3)
        deadline = time.monotonic() + 10
        epochs: list[int] = []
        while time.monotonic() < deadline and len(epochs) < 3:
            changes = second.changes_since(version, timeout=1.0)
            version = changes.version
            epochs += [event.data["epoch"] for event in changes.events or () if event.kind == "epoch"]
        assert epochs == [50, 51, 52]
        assert feeds[0] == 1  # only the appended bytes were parsed
        run_id = runs[2].folder.relative_to(root).as_posix()
        assert second.run(run_id).frame().equals(load_run(runs[2].folder, root).frame())  # type: ignore[union-attr]


def test_settled_runs_give_their_curves_back_once_saved(tmp_path: Path) -> None:
    root = tmp_path / "results"
    runs = [new_run(root, n, 20) for n in range(3)]
    for run in runs:
        run.finish()
    settle(root)
    index = RunIndex(tmp_path / "index.sqlite3")
    with ResultsWatcher(root, index=index, tick_s=0.1) as watcher:
        assert all(snap.loaded is not None for snap in watcher.snapshot().runs.values())  # a cold start read them
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and index.info().runs < 3:
            time.sleep(0.1)
        while time.monotonic() < deadline and any(s.loaded is not None for s in watcher.snapshot().runs.values()):
            time.sleep(0.1)
        snapshot = watcher.snapshot()
        assert index.info().runs == 3
        assert all(snap.loaded is None for snap in snapshot.runs.values())
        for run in runs:
            run_id = run.folder.relative_to(root).as_posix()
            assert snapshot.runs[run_id].frame().equals(load_run(run.folder, root).frame())


def test_a_restart_shows_the_stored_runs_first_then_what_changed_while_stopped(tmp_path: Path) -> None:
    """Every stored run is published before any file is looked at; the check that follows brings a run that grew,
    removes one deleted and adds one created while nnwatch was not running, ending where a fresh read ends."""
    root = tmp_path / "results"
    runs = [new_run(root, n, 20) for n in range(3)]
    settle(root)
    path = tmp_path / "index.sqlite3"
    with ResultsWatcher(root, index=RunIndex(path)):
        pass  # stop() saved every run
    ids = [run.folder.relative_to(root).as_posix() for run in runs]
    runs[0].history(5)  # grew while stopped
    shutil.rmtree(runs[1].folder)  # deleted while stopped
    added = new_run(root, 3, 7)  # created while stopped
    settle(root)
    watcher = ResultsWatcher(root, index=RunIndex(path))
    assert watcher.indexed is not None
    preloaded: dict[str, int] = {}

    def as_stored(count: int) -> None:  # the moment a page may draw the runs: nothing checked yet
        preloaded.update({run_id: snap.summary.epochs_completed for run_id, snap in watcher.snapshot().runs.items()})

    watcher.indexed.on_preloaded = as_stored
    with watcher:
        assert preloaded == {ids[0]: 20, ids[1]: 20, ids[2]: 20}
        shown = {run_id: snap.summary.epochs_completed for run_id, snap in watcher.snapshot().runs.items()}
        assert shown == {ids[0]: 25, ids[2]: 20, added.folder.relative_to(root).as_posix(): 7}
        assert watcher.run(ids[0]).frame().equals(load_run(runs[0].folder, root).frame())  # type: ignore[union-attr]


def test_a_scan_after_the_dashboard_reads_nothing_and_shows_what_it_showed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher and the scan read checkpoints alike, so the rows the dashboard stored serve ``nnwatch scan``:
    runs with checkpoints are not read again, and a broken checkpoint is a problem in both views."""
    root = tmp_path / "results"
    runs = [new_run(root, n, 30) for n in range(3)]
    runs[0].finish()
    (runs[0].folder / "checkpoint_final.pth").write_bytes(runs[0].checkpoint_bytes())
    (runs[1].folder / "checkpoint_latest.pth").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    settle(root)
    path = tmp_path / "index.sqlite3"
    with ResultsWatcher(root, index=RunIndex(path)) as watcher:
        shown = {run_id: snap.summary.row() for run_id, snap in watcher.snapshot().runs.items()}

    reads = [0]
    for owner, name in ((LogParser, "feed"), (checkpoint_reader, "read_checkpoint_curves")):
        original = getattr(owner, name)

        def counting(*args: object, _original: Any = original, **kwargs: object) -> object:
            reads[0] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counting)
    rows, _ = indexed_scan_rows([root], RunIndex(path), workers=1)
    assert reads[0] == 0
    assert {row["run_id"]: row for row in rows} == shown
    broken = shown[runs[1].folder.relative_to(root).as_posix()]
    assert any(problem.startswith("checkpoint_latest.pth") for problem in broken["problems"])
    monkeypatch.undo()
    assert plain(rows) == plain(fresh_rows(root, verdicts=False))  # a read of the files gives the same rows
