"""The live watcher on real files in tmp_path, with inotify and with polling (every scenario runs on both).

Each test changes the tree the way nnU-Net or a user would and awaits the watcher's events with a deadline
(:class:`event_recorder.EventRecorder`); nothing sleeps for a fixed time.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from event_recorder import EventRecorder

import monitor.runs.cursor
from monitor.runs.status import RunStatus
from monitor.synth import CurveSpec, FakeRun, make_run_dir
from monitor.watch.events import WatchEvent
from monitor.watch.watcher import ResultsWatcher

Start = Callable[..., tuple[ResultsWatcher, EventRecorder]]


@pytest.fixture(params=[pytest.param(None, id="inotify"), pytest.param(0.2, id="polling")])
def start(request: pytest.FixtureRequest) -> Iterator[Start]:
    """Start a watcher on a root (inotify, or polling every 0.2 s) and stop it after the test."""
    watchers: list[ResultsWatcher] = []

    def _start(root: Path, **options: Any) -> tuple[ResultsWatcher, EventRecorder]:
        options.setdefault("tick_s", 0.1)
        watcher = ResultsWatcher(root, poll=request.param, **options).start()
        watchers.append(watcher)
        assert watcher.observer.kind == ("inotify" if request.param is None else "polling"), watcher.observer
        recorder = EventRecorder(watcher)
        recorder.poll()
        return watcher, recorder

    yield _start
    for watcher in watchers:
        watcher.stop()
        assert watcher._thread is not None and not watcher._thread.is_alive()


def run_id(root: Path, run: FakeRun) -> str:
    return run.folder.relative_to(root).as_posix()


def new_run(root: Path, epochs: int, dataset: str = "Dataset001_Liver", fold: int = 0, **options: Any) -> FakeRun:
    run = FakeRun(make_run_dir(root, dataset, fold=fold), **options)
    run.start_session()
    run.history(epochs)
    return run


def is_(kind: str, rid: str, **data: Any) -> Callable[[WatchEvent], bool]:
    return lambda e: e.kind == kind and e.run_id == rid and all(e.data.get(k) == v for k, v in data.items())


def epochs_of(recorder: EventRecorder, rid: str, after: int = 0) -> list[int]:
    return [e.data["epoch"] for e in recorder.of("epoch", rid, after)]


def test_existing_runs_are_added_once_without_their_past_epochs(tmp_path: Path, start: Start) -> None:
    runs = [new_run(tmp_path, 5, fold=0), new_run(tmp_path, 3, fold=1)]
    watcher, recorder = start(tmp_path)
    added = recorder.of("run_added")
    assert sorted(e.run_id for e in added) == sorted(run_id(tmp_path, r) for r in runs)
    assert {e.run_id: e.data["epochs_completed"] for e in added} == {
        run_id(tmp_path, runs[0]): 5, run_id(tmp_path, runs[1]): 3}
    assert recorder.of("epoch") == []
    row = added[0].data
    for key in ("status", "eta_s", "eta", "dead_dice", "planned_epochs", "last_ema_fg_dice"):
        assert key in row
    assert row["status"] == "running" and row["eta_s"] > 0 and row["dead_dice"] is False
    assert watcher.snapshot().version == recorder.version == 2


def test_appended_epochs_arrive_in_order_and_a_partial_epoch_waits(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 5, epoch_s=50.0, planned_epochs=100)
    other = new_run(tmp_path, 2, dataset="Dataset002_Heart")
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    mark = recorder.version
    run.begin_epoch()  # "Epoch 5" and its learning rate: the epoch is not complete yet
    other.epoch()  # a sentinel: once its epoch is seen, the partial one was looked at too
    recorder.wait_for(is_("epoch", run_id(tmp_path, other)), after=mark, what="the sentinel epoch")
    assert epochs_of(recorder, rid, mark) == []
    run.end_epoch()
    event = recorder.wait_for(is_("epoch", rid), after=mark, what="epoch 5")
    data = event.data
    assert data["epoch"] == 5 and data["epoch_time_s"] == 50.0
    assert data["train_loss"] == run.train_loss(5) and data["lr"] == run.lr(5)
    assert [data["dice_1"], data["dice_2"]] == run.dice(5)
    assert data["mean_fg_dice"] == pytest.approx(sum(run.dice(5)) / 2)
    snapshot = watcher.run(rid)
    assert snapshot is not None
    assert data["ema_fg_dice"] == pytest.approx(float(snapshot.curves.ema_fg_dice[-1]))
    assert data["epoch_end"].startswith("2024-03-09T")
    run.epoch()
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=7), after=mark, what="epoch 7")
    assert epochs_of(recorder, rid, mark) == [5, 6, 7]
    summary = watcher.run(rid).summary  # type: ignore[union-attr]
    assert (summary.epochs_completed, summary.last_epoch) == (8, 7)


def test_training_done_gives_a_finished_status_event(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 4)
    _, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    run.finish(final_dice=0.81)
    event = recorder.wait_for(is_("status", rid, status="finished"), what="finished")
    assert event.data["previous"] == "running" and event.data["eta_s"] is None


def test_folders_created_with_their_log_already_written(tmp_path: Path, start: Start) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    watcher, recorder = start(root)
    # Moved in complete: one run_added with everything, no epoch events for its past.
    moved = new_run(outside, 4, dataset="Dataset002_In")
    os.rename(outside / "Dataset002_In", root / "Dataset002_In")
    moved_id = "Dataset002_In/" + moved.folder.relative_to(outside / "Dataset002_In").as_posix()
    event = recorder.wait_for(is_("run_added", moved_id), what="the moved-in run")
    assert event.data["epochs_completed"] == 4 and recorder.of("epoch", moved_id) == []
    # Created in place and written at once (watchdog may report only `created` for the first writes).
    fast = new_run(root, 3, dataset="Dataset003_Fast")
    fast_id = run_id(root, fast)

    def fast_complete() -> bool:
        snapshot = watcher.run(fast_id)
        return snapshot is not None and snapshot.summary.epochs_completed == 3

    recorder.wait_until(fast_complete, what="the new run's three epochs")
    assert len(recorder.of("run_added", fast_id)) == 1


def test_deleted_run_disappears_and_renamed_run_reappears(tmp_path: Path, start: Start) -> None:
    gone = new_run(tmp_path, 3, dataset="Dataset001_A")
    renamed = new_run(tmp_path, 3, dataset="Dataset002_B")
    watcher, recorder = start(tmp_path)
    gone_id, old_id = run_id(tmp_path, gone), run_id(tmp_path, renamed)
    shutil.rmtree(tmp_path / "Dataset001_A")
    recorder.wait_for(is_("run_removed", gone_id), what="the deleted run's removal")
    assert watcher.run(gone_id) is None
    os.rename(tmp_path / "Dataset002_B", tmp_path / "Dataset009_Renamed")
    new_id = old_id.replace("Dataset002_B", "Dataset009_Renamed")
    removed = recorder.wait_for(is_("run_removed", old_id), what="the renamed run's old id")
    assert removed.data.get("moved_to") == new_id
    added = recorder.wait_for(is_("run_added", new_id), what="the renamed run's new id")
    assert added.data["epochs_completed"] == 3 and added.data.get("moved_from") == old_id
    assert set(watcher.snapshot().runs) == {new_id}
    renamed.folder = tmp_path / new_id
    renamed.log_path = renamed.folder / renamed.log_path.name  # type: ignore[union-attr]
    renamed.epoch()
    recorder.wait_for(is_("epoch", new_id, epoch=3), what="an epoch under the new id")


def test_log_replaced_by_a_shorter_one(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 10)
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    mark = recorder.version
    scratch = FakeRun(tmp_path / "scratch")  # same clock, same values: its 4 epochs equal the first 4
    scratch.start_session()
    scratch.history(4)
    assert scratch.log_path is not None and run.log_path is not None
    os.replace(scratch.log_path, run.log_path)  # a new inode under the same name

    def shortened() -> bool:
        snapshot = watcher.run(rid)
        return snapshot is not None and snapshot.summary.epochs_completed == 4

    recorder.wait_until(shortened, what="the shorter log")
    problems = " | ".join(watcher.run(rid).summary.problems)  # type: ignore[union-attr]
    assert "replaced or truncated" in problems
    recorder.wait_for(is_("run_updated", rid), after=mark, what="run_updated")
    assert epochs_of(recorder, rid, mark) == []  # its epochs are not new


def test_resumed_run_in_a_new_log_file(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 10)
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    mark = recorder.version
    run.clock += dt.timedelta(hours=1)
    run.start_session(at_epoch=7)  # nnU-Net resumed from a checkpoint at epoch 7, in a new log file
    run.epoch()
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=8), after=mark, what="the resumed epoch 8")
    assert epochs_of(recorder, rid, mark) == [7, 8]
    summary = watcher.run(rid).summary  # type: ignore[union-attr]
    assert (summary.last_epoch, summary.epochs_completed, summary.log_files) == (8, 9, 2)


def test_half_written_checkpoint_is_retried_not_reported(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 6)
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    data = run.checkpoint_bytes(6)
    half = len(data) // 2
    path = run.folder / "checkpoint_latest.pth"
    path.write_bytes(data[:half])  # torch.save in progress
    mark = recorder.version
    run.epoch()  # a refresh while the checkpoint is half written
    recorder.wait_for(is_("epoch", rid, epoch=6), after=mark, what="epoch 6")
    snapshot = watcher.run(rid)
    assert snapshot is not None
    assert not [p for p in snapshot.summary.problems if "checkpoint" in p]
    assert "checkpoint_latest.pth" not in set(snapshot.curves.source)
    with open(path, "r+b") as handle:  # the save completes, in place
        handle.seek(half)
        handle.write(data[half:])

    def merged() -> bool:
        current = watcher.run(rid)
        return current is not None and "checkpoint_latest.pth" in set(current.curves.source)

    recorder.wait_until(merged, what="the completed checkpoint's curves")
    current = watcher.run(rid)
    assert current is not None and not [p for p in current.summary.problems if "checkpoint" in p]
    assert current.summary.epochs_completed == 7


def test_oserror_on_refresh_keeps_state_and_retries(tmp_path: Path, start: Start,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(tmp_path, 5)
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    failures: list[int] = []
    real_open = builtins.open

    def flaky_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if "training_log" in str(path) and not failures:
            snapshot = watcher.run(rid)  # what readers see while the mount is failing
            failures.append(snapshot.summary.epochs_completed if snapshot else -1)
            raise OSError(errno.EIO, "Input/output error (simulated flaky mount)")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(monitor.runs.cursor, "open", flaky_open, raising=False)
    mark = recorder.version
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=5), after=mark, what="epoch 5 after the retry")
    assert failures == [5]  # it failed once, with the last known state (5 epochs) still published
    assert recorder.of("run_removed") == []
    assert not [p for p in watcher.run(rid).summary.problems if "unreadable" in p]  # type: ignore[union-attr]


def test_timer_turns_running_into_stalled_then_crashed(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 5, epoch_s=100.0)
    offset = [0.0]
    _, recorder = start(tmp_path, clock=lambda: time.time() + offset[0])
    rid = run_id(tmp_path, run)
    assert recorder.of("run_added")[0].data["status"] == "running"
    offset[0] = 400.0  # > max(300 s floor, 3 × 100 s): no file event, only the clock moved
    stalled = recorder.wait_for(is_("status", rid, status="stalled"), what="stalled")
    assert stalled.data["previous"] == "running"
    offset[0] = 2000.0  # > max(1800 s floor, 10 × 100 s)
    recorder.wait_for(is_("status", rid, status="crashed", previous="stalled"), what="crashed")
    offset[0] = 0.0
    run.epoch()  # it was alive after all
    recorder.wait_for(is_("status", rid, status="running", previous="crashed"), what="running again")


def test_a_run_found_later_stalls_on_its_own_schedule(tmp_path: Path, start: Start) -> None:
    slow = new_run(tmp_path, 5, epoch_s=1000.0)  # stalls after 3000 s of silence
    offset = [0.0]
    _, recorder = start(tmp_path, clock=lambda: time.time() + offset[0])
    recorder.wait_until(lambda: recorder.of("run_added"), what="the first run")
    fast = new_run(tmp_path, 5, dataset="Dataset002_Fast", epoch_s=100.0)  # after 300 s, sooner than the first
    fast_id = run_id(tmp_path, fast)
    recorder.wait_for(is_("run_added", fast_id), what="the run found later")
    offset[0] = 400.0
    recorder.wait_for(is_("status", fast_id, status="stalled"), what="the later run stalled")
    assert recorder.of("status", run_id(tmp_path, slow)) == []


def test_liveness_knowledge_marks_a_dead_job_crashed(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 5)
    alive = {"now": True}
    _, recorder = start(tmp_path, liveness=lambda _run_id: alive["now"])
    rid = run_id(tmp_path, run)
    alive["now"] = False
    event = recorder.wait_for(is_("status", rid, status="crashed"), what="crashed by liveness")
    assert "no longer alive" in event.data["reason"]
    alive["now"] = True
    recorder.wait_for(is_("status", rid, status="running"), what="running again")


def test_run_symlinked_in_from_outside_is_polled(tmp_path: Path, start: Start) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    run = new_run(outside, 3, dataset="Dataset005_Linked")
    (root / "Dataset005_Linked").symlink_to(outside / "Dataset005_Linked", target_is_directory=True)
    _, recorder = start(root)
    rid = "Dataset005_Linked/" + run.folder.relative_to(outside / "Dataset005_Linked").as_posix()
    assert [e.run_id for e in recorder.of("run_added")] == [rid]
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=3), timeout=15, what="an epoch in the symlinked run")


def test_snapshots_are_immutable_and_match_changes_since(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 5)
    watcher, recorder = start(tmp_path)
    rid = run_id(tmp_path, run)
    before = watcher.snapshot()
    snapshot = before.runs[rid]
    with pytest.raises(ValueError, match="read-only"):
        snapshot.curves.epoch[0] = 99
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.summary.status = RunStatus.CRASHED  # type: ignore[misc]
    row = snapshot.summary.row()
    row["problems"].append("mine")  # a private copy
    assert "mine" not in snapshot.summary.problems and type(row["status"]) is str
    assert list(snapshot.frame()["epoch"]) == [0, 1, 2, 3, 4]
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=5), what="epoch 5")
    assert len(before.runs[rid].curves) == 5 and before.runs[rid].summary.epochs_completed == 5
    changes = watcher.changes_since(before.version)
    assert changes.events is not None and [e.kind for e in changes.events] == ["epoch"]
    assert changes.version == watcher.snapshot().version
    assert np.array_equal(watcher.run(rid).curves.epoch, np.arange(6))  # type: ignore[union-attr]


def test_dead_dice_is_flagged_in_the_summary(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 12, spec=CurveSpec((0.0, 0.0), noise=0.0))
    _, recorder = start(tmp_path)
    row = recorder.wait_for(is_("run_added", run_id(tmp_path, run)), what="run_added").data
    assert row["dead_dice"] is True
    assert any("#2318" in p for p in row["problems"])


def test_lost_events_are_recovered_by_the_periodic_reconcile(tmp_path: Path, start: Start) -> None:
    run = new_run(tmp_path, 3)
    watcher, recorder = start(tmp_path, reconcile_s=0.3)
    watcher._on_fs_event = lambda event: None  # type: ignore[method-assign]  # every file event is lost
    rid = run_id(tmp_path, run)
    run.epoch()
    recorder.wait_for(is_("epoch", rid, epoch=3), what="the epoch, found without its event")
    late = new_run(tmp_path, 2, dataset="Dataset004_Late")
    recorder.wait_for(is_("run_added", run_id(tmp_path, late)), what="the run, found without its event")
    shutil.rmtree(run.folder)
    recorder.wait_for(is_("run_removed", rid), what="the removal, found without its event")
