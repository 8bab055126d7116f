"""The run index: a restart reads from it exactly what it would have read from the files, and a damaged,
deleted or outdated index costs only time."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
from pathlib import Path

import pytest
from index_support import fresh_rows, new_run, plain, replace_log, settle, truncate_log

from monitor.index import RunIndex, indexed_scan_rows
from monitor.logs import LogParser
from monitor.run_table import scan_rows
from monitor.runs import RunReader, discover_runs, load_run


def _scan(root: Path, index: RunIndex, **kwargs: object) -> list[dict[str, object]]:
    settle(root)
    rows, _ = indexed_scan_rows([root], index, workers=1, verdicts=True, **kwargs)  # type: ignore[arg-type]
    return rows


def _count_feeds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = LogParser.feed

    def counting(self: LogParser, data: bytes, **kwargs: bool) -> object:
        calls[0] += 1
        return original(self, data, **kwargs)

    monkeypatch.setattr(LogParser, "feed", counting)
    return calls


def test_unchanged_runs_come_from_the_index_without_parsing(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "results"
    runs = [new_run(root, n, 40 + 10 * n) for n in range(4)]
    runs[1].finish()
    index = RunIndex(tmp_path / "index.sqlite3")
    first = _scan(root, index)
    assert plain(first) == plain(fresh_rows(root))
    index.close()

    feeds = _count_feeds(monkeypatch)
    again = _scan(root, RunIndex(tmp_path / "index.sqlite3"))  # a restart: a new process would open it so
    assert feeds[0] == 0
    assert plain(again) == plain(first)

    runs[2].history(7)  # a grown log is read from its saved offset: one feed of the new bytes only
    grown = _scan(root, RunIndex(tmp_path / "index.sqlite3"))
    assert feeds[0] == 1
    assert plain(grown) == plain(fresh_rows(root))
    assert {r["fold"]: r["epochs_completed"] for r in grown} == {"0": 40, "1": 50, "2": 67, "3": 70}


def test_a_resumed_reader_continues_like_one_that_never_stopped(tmp_path: Path) -> None:
    root = tmp_path / "results"
    run = new_run(root, 0, 30)
    index = RunIndex(tmp_path / "index.sqlite3")
    _scan(root, index)
    location = discover_runs(root)[0]
    run.history(5)
    run.begin_epoch()  # an epoch half written: held back, then completed
    state = index.load_state(location)
    assert state is not None and state.logs[0].offset > 0
    resumed = RunReader.resume(location, state)
    resumed.refresh()
    run.end_epoch()
    resumed.refresh()
    fresh = load_run(location.path, root)
    assert resumed.frame().equals(fresh.frame())
    assert resumed.summary() == fresh.summary()


def test_a_resumed_run_whose_new_log_has_no_epoch_yet_is_stored_and_continued(tmp_path: Path) -> None:
    root = tmp_path / "results"
    run = new_run(root, 0, 30)
    run.start_session(at_epoch=30)  # nnU-Net resumed: a second log holding its header only
    first = _scan(root, RunIndex(tmp_path / "index.sqlite3"))
    assert plain(first) == plain(fresh_rows(root))
    assert plain(_scan(root, RunIndex(tmp_path / "index.sqlite3"))) == plain(first)
    run.history(3)
    grown = _scan(root, RunIndex(tmp_path / "index.sqlite3"))
    assert plain(grown) == plain(fresh_rows(root))
    assert grown[0]["epochs_completed"] == 33


@pytest.mark.parametrize("seed", range(24))
def test_random_appends_replacements_deletions_and_restarts_match_a_fresh_read(tmp_path: Path, seed: int) -> None:
    """Property: whatever happened to the logs and checkpoints between restarts, the index gives what the files
    say."""
    rng = random.Random(seed)
    root = tmp_path / "results"
    runs = {n: new_run(root, n, rng.randrange(0, 60), seed=seed) for n in range(4)}
    next_fold = 4
    path = tmp_path / "index.sqlite3"
    index = RunIndex(path)
    for _step in range(14):
        action = rng.choice(["append", "append", "half", "replace", "truncate", "delete", "add", "finish",
                             "resume", "restart", "restart", "checkpoint", "checkpoint", "break checkpoint",
                             "drop checkpoint"])
        live = [n for n, r in runs.items() if r.folder.exists()]
        n = rng.choice(live) if live else None
        if action == "add" or n is None:
            runs[next_fold] = new_run(root, next_fold, rng.randrange(0, 40), seed=seed)
            next_fold += 1
        elif action == "append":
            runs[n].history(rng.randrange(1, 20))
        elif action == "half":
            runs[n].begin_epoch()
            runs[n].end_epoch() if rng.random() < 0.5 else None
        elif action == "replace":
            replace_log(runs[n], rng.randrange(0, max(1, runs[n].next_epoch)))
        elif action == "truncate":
            truncate_log(runs[n], rng.random())
        elif action == "delete":
            import shutil

            shutil.rmtree(runs[n].folder)
        elif action == "finish":
            runs[n].finish()
        elif action == "resume":  # a new training log, as nnU-Net starts one on every resume
            runs[n].start_session(at_epoch=runs[n].next_epoch)
        elif action == "restart":
            index.close()
            index = RunIndex(path)
        elif action == "checkpoint":  # nnU-Net's latest or best, of some epochs so far (stale after a replace)
            name = rng.choice(["checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth"])
            (runs[n].folder / name).write_bytes(runs[n].checkpoint_bytes(rng.randrange(0, runs[n].next_epoch + 1)))
        elif action == "break checkpoint":
            (runs[n].folder / "checkpoint_latest.pth").write_bytes(b"PK\x03\x04" + rng.randbytes(3000))
        elif action == "drop checkpoint":
            for checkpoint in runs[n].folder.glob("*.pth"):
                checkpoint.unlink()
        assert plain(_scan(root, index)) == plain(fresh_rows(root)), f"after {action} at step {_step}"
        for location in discover_runs(root):
            state = index.load_state(location)
            assert state is not None
            resumed = RunReader.resume(location, state)
            assert resumed.frame().equals(load_run(location.path, root).frame())


def test_a_finished_log_cut_inside_an_epoch_then_appended_to_reads_as_a_fresh_read(tmp_path: Path) -> None:
    """The cut removed "Training done.": the last epoch's lines are held back again, so the line the next append
    completes (garbled) is read where a fresh read reads it."""
    root = tmp_path / "results"
    run = new_run(root, 0, 30)
    run.finish()
    index = RunIndex(tmp_path / "index.sqlite3")
    _scan(root, index)
    assert run.log_path is not None
    data = run.log_path.read_bytes()
    os.truncate(run.log_path, data.rindex(b"Pseudo dice [") + 16)
    _scan(root, index)
    run.history(3)
    rows = _scan(root, index)
    assert plain(rows) == plain(fresh_rows(root))
    assert rows[0]["problems"] == [f"{run.log_path.name}: 1 garbled 'Pseudo dice' line(s) skipped"]


def test_a_garbage_index_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "results"
    for n in range(3):
        new_run(root, n, 25)
    path = tmp_path / "index.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="nnwatch.index"):
        index = RunIndex(path)
    assert any("damaged" in note for note in index.notes)
    assert "damaged" in caplog.text
    assert plain(_scan(root, index)) == plain(fresh_rows(root))
    assert index.info().runs == 3


def test_a_truncated_index_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for n in range(6):
        new_run(root, n, 120)
    path = tmp_path / "index.sqlite3"
    index = RunIndex(path)
    expected = _scan(root, index)
    index.close()
    with sqlite3.connect(path) as db:  # fold the WAL into the main file, then cut that file short
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 3)
    reopened = RunIndex(path)
    assert plain(_scan(root, reopened)) == plain(expected)
    assert any("damaged" in note for note in reopened.notes)
    assert reopened.info().runs == 6


def test_a_deleted_index_costs_only_time(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for n in range(3):
        new_run(root, n, 30)
    path = tmp_path / "index.sqlite3"
    index = RunIndex(path)
    expected = _scan(root, index)
    index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    index = RunIndex(path)
    assert index.info().runs == 0
    assert plain(_scan(root, index)) == plain(expected)
    assert index.info().runs == 3


def test_other_reading_rules_rebuild_the_index(tmp_path: Path) -> None:
    root = tmp_path / "results"
    new_run(root, 0, 30)
    path = tmp_path / "index.sqlite3"
    index = RunIndex(path)
    _scan(root, index)
    index.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'older rules' WHERE key = 'version'")
    reopened = RunIndex(path)
    assert reopened.info().runs == 0
    assert any("other reading rules" in note for note in reopened.notes)


def test_an_index_of_an_older_schema_is_rebuilt_in_the_current_one(tmp_path: Path) -> None:
    """An upgrade whose rows have other columns: rebuilt as outdated (not reported as damaged), and every run is
    stored again by the first scan."""
    root = tmp_path / "results"
    for n in range(3):
        new_run(root, n, 20)
    path = tmp_path / "index.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('version', 'an older schema');
            CREATE TABLE runs (root TEXT, run_id TEXT, mode TEXT, signature TEXT, summary TEXT, inputs TEXT,
                               verdict TEXT, state TEXT, arrays BLOB, updated REAL, PRIMARY KEY (root, run_id, mode));
        """)
    index = RunIndex(path)
    assert _scan(root, index) == fresh_rows(root)
    assert index.info().runs == 3
    assert [note for note in index.notes if "damaged" in note] == []
    assert any("other reading rules" in note for note in index.notes)


def test_runs_that_are_gone_leave_the_index(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "results"
    runs = [new_run(root, n, 20) for n in range(3)]
    index = RunIndex(tmp_path / "index.sqlite3")
    _scan(root, index)
    shutil.rmtree(runs[1].folder)
    assert [r["fold"] for r in _scan(root, index)] == ["0", "2"]
    assert index.info().runs == 2


def test_a_checkpoint_being_written_is_not_a_problem_yet_and_not_stored(tmp_path: Path) -> None:
    """A scan during nnU-Net's save, as the dashboard: the run is shown from its logs without a problem and left out
    of the index; once the file has stayed cut short for minutes, it is reported and stored."""
    root = tmp_path / "results"
    run = new_run(root, 0, 60)
    settle(root)
    whole = run.checkpoint_bytes(50)
    checkpoint = run.folder / "checkpoint_latest.pth"
    checkpoint.write_bytes(whole[: len(whole) // 2])  # written now: the save goes on
    index = RunIndex(tmp_path / "index.sqlite3")
    rows, _ = indexed_scan_rows([root], index, workers=1)
    plain_rows, _ = scan_rows(root, workers=1)
    assert [r["problems"] for r in rows] == [r["problems"] for r in plain_rows] == [[]]
    assert rows[0]["epochs_completed"] == 60
    assert index.info().runs == 0

    os.utime(checkpoint, (1.7e9, 1.7e9))  # still cut short long after: the save failed
    rows, _ = indexed_scan_rows([root], index, workers=1)
    plain_rows, _ = scan_rows(root, workers=1)
    assert rows == plain_rows
    assert rows[0]["problems"] == ["checkpoint_latest.pth: incomplete (still being written?)"]
    assert index.info().runs == 1
