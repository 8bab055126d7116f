"""A first start on an empty run index: the runs are read in worker processes into the index, then published
from it unread, as a restart publishes them; a worker that dies costs no run."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from index_support import mixed_tree

from monitor.index import RunIndex
from monitor.runs import RunSummary
from monitor.watch import ResultsWatcher

_N_RUNS = 40


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cold") / "results"
    mixed_tree(root, _N_RUNS)
    return root


def _summaries(watcher: ResultsWatcher) -> dict[str, RunSummary]:
    """Every run's summary, less the ETA (it moves with the clock between two reads)."""
    return {run_id: replace(snap.summary, eta_s=None, eta=None) for run_id, snap in watcher.snapshot().runs.items()}


@pytest.fixture(scope="module")
def plain_read(tree: Path) -> dict[str, RunSummary]:
    with ResultsWatcher(tree) as watcher:
        return _summaries(watcher)


def test_a_cold_start_reads_in_workers_and_publishes_from_the_index(tree: Path, tmp_path: Path,
                                                                    plain_read: dict[str, RunSummary]) -> None:
    progress: list[tuple[int, int]] = []
    index = RunIndex(tmp_path / "index.sqlite3")
    with ResultsWatcher(tree, index=index, progress=lambda done, total: progress.append((done, total))) as watcher:
        assert index.info().runs == _N_RUNS  # stored by the workers' reads, before the watcher saved anything
        assert _summaries(watcher) == plain_read
        # nothing of any run in memory: curves and verdicts come from the index, as after a restart
        assert all(snap.loaded is None and snap.stored_verdict is not None for snap in watcher.snapshot().runs.values())
    done = [d for d, _ in progress]
    assert {total for _, total in progress} == {_N_RUNS}
    assert done == sorted(done) and done[-1] == _N_RUNS
    assert len(set(done)) > 2  # it moved while the workers read, not only at the end


def test_a_worker_that_dies_costs_no_run(tree: Path, tmp_path: Path, plain_read: dict[str, RunSummary],
                                         caplog: pytest.LogCaptureFixture) -> None:
    progress: list[int] = []

    def kill_the_workers(done: int, total: int) -> None:
        if not progress:  # the first chunk is back: the others are still being read
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        progress.append(done)

    with caplog.at_level(logging.ERROR, logger="nnwatch.watch"), \
            ResultsWatcher(tree, index=RunIndex(tmp_path / "index.sqlite3"), progress=kill_the_workers) as watcher:
        assert _summaries(watcher) == plain_read
    assert "reading the rest in this one" in caplog.text
    assert progress == sorted(progress) and progress[-1] == _N_RUNS
