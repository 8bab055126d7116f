"""Work in worker processes: how runs are split, which start method a caller gets, and that a worker started
without fork does not run the parent's main script again (a Streamlit app installs its script as ``__main__``)."""

from __future__ import annotations

import gc
import multiprocessing
import sys
import types
from pathlib import Path

import pytest
from index_support import mixed_tree, plain, settle

from monitor.index import RunIndex, indexed_scan_rows
from monitor.run_table import summarize_runs
from monitor.runs import discover_runs
from monitor.workers import (
    PARALLEL_THRESHOLD,
    chunked,
    collector_paused,
    map_chunks,
    parallel_method,
    worker_count,
)


def test_chunks_interleave_every_item_once_and_stay_small() -> None:
    items = list(range(1000))
    chunks = chunked(items, 2)
    assert sorted(x for chunk in chunks for x in chunk) == items
    assert max(len(chunk) for chunk in chunks) <= 32
    assert chunks[0][:2] == [0, len(chunks)]  # interleaved: long and short runs mix
    assert len(chunked(items[:40], 2)) == 8  # a few chunks per worker for small trees
    assert chunked([], 2) == []


def test_a_pause_of_the_garbage_collector_always_ends_as_it_began() -> None:
    """A collector left off would let memory grow for as long as the server runs."""
    assert gc.isenabled()
    with pytest.raises(OSError), collector_paused():
        assert not gc.isenabled()
        raise OSError("a folder vanished mid-read")
    assert gc.isenabled()
    gc.disable()  # a caller that turned it off itself keeps it off
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_few_runs_or_one_worker_stay_in_this_process() -> None:
    assert parallel_method(PARALLEL_THRESHOLD - 1, 4, "fork") is None
    assert parallel_method(1000, 1, "forkserver") is None
    assert parallel_method(1000, 2, "forkserver") in ("forkserver", "spawn")
    assert worker_count(3) == 3 and worker_count(0) == 1 and 1 <= worker_count() <= 8
    assert list(map_chunks(len, [[1, 2], [3]], workers=4, start_method=None)) == [(0, 2), (1, 1)]


@pytest.mark.parametrize("method", [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()])
def test_workers_do_not_run_the_parents_main_script(method: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "app_script.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    app = types.ModuleType("__main__")  # as Streamlit runs a script: a module of that name with its file
    app.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", app)
    results = dict(map_chunks(len, [[1, 2, 3], [4], [5, 6]], workers=2, start_method=method))
    assert results == {0: 3, 1: 1, 2: 2}
    assert sys.modules["__main__"] is app
    assert not marker.exists()


def test_every_start_method_gives_the_scan_of_one_process(tmp_path: Path) -> None:
    root = tmp_path / "results"
    mixed_tree(root, 30)
    settle(root)
    locations = discover_runs(root)
    alone = [run.row() for run in summarize_runs(locations, workers=1, verdicts=True)]
    methods = [m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]
    for method in methods:
        assert [run.row() for run in summarize_runs(locations, workers=2, verdicts=True, start_method=method)] == alone
    rows, _ = indexed_scan_rows([root], RunIndex(tmp_path / "index.sqlite3"), workers=2, verdicts=True,
                                start_method=methods[-1])
    assert plain(rows) == plain(alone)
