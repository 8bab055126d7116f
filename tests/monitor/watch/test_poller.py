"""Polling a results tree (network file systems): what a poll of an unchanged tree costs, how soon it sees each
kind of change, and changes that race a poll. The watcher is driven step by step here (not started), so every
poll happens exactly where the test says."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.synth import FakeRun, make_run_dir, write_checkpoints
from monitor.watch.events import WatchEvent
from monitor.watch.poller import SWEEP_S
from monitor.watch.watcher import ResultsWatcher

INTERVAL_S = 5.0
SWEEP_POLLS = round(SWEEP_S / INTERVAL_S)
HOUR_AGO = time.time() - 3600


def _run(root: Path, dataset: str, fold: int = 0, epochs: int = 60) -> FakeRun:
    run = FakeRun(make_run_dir(root, dataset, fold=fold))
    run.start_session()
    run.history(epochs)
    write_checkpoints(run, epochs, finished=False)  # checkpoint_best.pth and checkpoint_latest.pth
    return run


def _settle(root: Path) -> None:
    """Date every file and folder an hour back: a tree nothing wrote to lately."""
    for path in [*root.rglob("*"), root]:
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def _watch(root: Path) -> ResultsWatcher:
    """A polling watcher that has read the tree once, as :meth:`ResultsWatcher.start` does, without its thread."""
    watcher = ResultsWatcher(root, poll=INTERVAL_S)
    assert watcher._poller is not None
    watcher._poller.track_tree(watcher.root)
    for location in watcher._discover(os.fspath(watcher.root)):
        watcher._add(location)
    return watcher


def _poll(watcher: ResultsWatcher) -> set[str]:
    """One poll, then the refreshes it asked for, as the worker would run them; the run ids refreshed."""
    watcher._poll()
    due = set(watcher._due)
    watcher._due.clear()
    for run_id in due:
        watcher._refresh(run_id)
    return due


def _events(watcher: ResultsWatcher) -> list[WatchEvent]:
    return list(watcher._published.log.since(0).events or ())


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], dict[str, list[str]]]]:
    """Record the paths of every ``stat`` and folder listing from now on."""
    calls: dict[str, list[str]] = {"stat": [], "list": []}

    def recording(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            calls[name].append(os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    def start() -> dict[str, list[str]]:
        monkeypatch.setattr(os, "stat", recording("stat", os.stat))
        monkeypatch.setattr(os, "scandir", recording("list", os.scandir))
        monkeypatch.setattr(os, "listdir", recording("list", os.listdir))
        return calls

    yield start


def test_an_unchanged_tree_is_polled_without_listing_and_its_checkpoints_by_turns(
        tmp_path: Path, syscalls: Callable[[], dict[str, list[str]]]) -> None:
    runs = [_run(tmp_path, f"Dataset00{d}_Organ", fold) for d in range(1, 4) for fold in range(4)]
    _settle(tmp_path)
    watcher = _watch(tmp_path)
    calls = syscalls()
    for _ in range(SWEEP_POLLS):
        assert _poll(watcher) == set(), "an unchanged run is not read again"
    assert calls["list"] == [], "a poll of an unchanged tree lists no folder"
    stats = calls["stat"]
    for run in runs:
        log = os.fspath(run.log_path)
        assert stats.count(log) == SWEEP_POLLS, "every log is checked at every poll"
        for name in ("checkpoint_best.pth", "checkpoint_latest.pth", "debug.json"):
            assert stats.count(os.fspath(run.folder / name)) == 1, f"{name}: once per sweep"
    folders_above = 1 + 3 + 3  # the root, three datasets, one model folder in each
    others = sum(len(run.signature or ()) - 1 for run in watcher._runs.values())  # all but the one log
    assert len(stats) == SWEEP_POLLS * (folders_above + 2 * len(runs)) + others


def test_a_checkpoint_is_seen_within_the_sweep_and_a_log_at_the_next_poll(tmp_path: Path) -> None:
    quiet, training = _run(tmp_path, "Dataset001_A"), _run(tmp_path, "Dataset002_B")
    _settle(tmp_path)
    watcher = _watch(tmp_path)
    quiet_id, training_id = (run.folder.relative_to(tmp_path).as_posix() for run in (quiet, training))
    checkpoint = quiet.folder / "checkpoint_best.pth"
    checkpoint.write_bytes(quiet.checkpoint_bytes(7))  # nnU-Net rewrites it in place; the log is unchanged
    training.epoch()
    polls = [_poll(watcher) for _ in range(SWEEP_POLLS)]
    assert training_id in polls[0], "a log that grew is read at the next poll"
    assert sum(quiet_id in refreshed for refreshed in polls) == 1, "the checkpoint is read once, within a sweep"
    snapshot = watcher.run(quiet_id)
    assert snapshot is not None and snapshot.summary.epochs_completed == 60
    assert watcher._runs[quiet_id].signature == watcher._note(watcher._runs[quiet_id].snapshot.location)


def test_a_fold_folder_made_in_the_tick_of_a_listing_is_found(tmp_path: Path) -> None:
    """File systems stamp mtimes from a coarse clock: a folder changed twice within one tick, with a listing in
    between, keeps its mtime. A folder listed while its mtime was that fresh is listed again."""
    _run(tmp_path, "Dataset001_A")
    watcher = _watch(tmp_path)  # the model folder was just written: its mtime is fresh
    model = tmp_path / "Dataset001_A" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    mtime = model.stat().st_mtime_ns
    second = _run(tmp_path, "Dataset001_A", fold=1)
    os.utime(model, ns=(mtime, mtime))  # as if fold_1 came in the same tick as the listing
    _poll(watcher)
    assert second.folder.relative_to(tmp_path).as_posix() in watcher._runs


def test_a_folder_renamed_during_a_poll_is_reported_as_moved(tmp_path: Path) -> None:
    _run(tmp_path, "Dataset001_A")
    renamed = _run(tmp_path, "Dataset002_B")
    _settle(tmp_path)
    watcher = _watch(tmp_path)
    old_id = renamed.folder.relative_to(tmp_path).as_posix()
    new_id = old_id.replace("Dataset002_B", "Dataset009_Renamed")
    shutil.rmtree(tmp_path / "Dataset001_A")  # the poll below lists the root ...
    discover = watcher._discover

    def discover_then_rename(path: str) -> list[Any]:
        found = discover(path)
        if (tmp_path / "Dataset002_B").exists():  # ... and the rename lands right after that listing
            os.rename(tmp_path / "Dataset002_B", tmp_path / "Dataset009_Renamed")
        return found

    watcher._discover = discover_then_rename  # type: ignore[method-assign]
    for _ in range(3):
        _poll(watcher)
    removed = [e for e in _events(watcher) if e.kind == "run_removed" and e.run_id == old_id]
    added = [e for e in _events(watcher) if e.kind == "run_added" and e.run_id == new_id]
    assert [dict(e.data) for e in removed] == [{"reason": "moved", "moved_to": new_id}]
    assert len(added) == 1 and added[0].data.get("moved_from") == old_id
    assert set(watcher._runs) == {new_id}
