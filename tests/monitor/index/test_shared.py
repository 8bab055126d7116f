"""Two nnwatch processes on one index: one writes while the other reads, and the reader is never blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from index_support import fresh_rows, new_run, plain, settle
from paths import REPO

from monitor.index import RunIndex, indexed_scan_rows
from monitor.runs import discover_runs

_HOLD_WRITE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE runs SET updated = updated + 1")
print("holding", flush=True)
sys.stdin.readline()  # until the test says so
db.execute("COMMIT")
"""

_SCAN_LOOP = """
import sys
from pathlib import Path
from monitor.index import RunIndex, indexed_scan_rows
index = RunIndex(Path(sys.argv[1]))
for _ in range(int(sys.argv[3])):
    rows, _ = indexed_scan_rows([Path(sys.argv[2])], index, workers=1, verdicts=True)
print(len(rows), flush=True)
"""


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, stdout=subprocess.PIPE,
                            **kwargs)  # type: ignore[call-overload]


def test_a_reader_is_not_blocked_while_another_process_writes(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for n in range(3):
        new_run(root, n, 30)
    settle(root)
    path = tmp_path / "index.sqlite3"
    index = RunIndex(path)
    expected, _ = indexed_scan_rows([root], index, workers=1, verdicts=True)
    writer = _python(_HOLD_WRITE, str(path), stdin=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "holding"
        started = time.monotonic()
        rows, _ = indexed_scan_rows([root], RunIndex(path), workers=1, verdicts=True)
        location = discover_runs(root)[0]
        assert index.load_state(location) is not None
        assert time.monotonic() - started < 5.0  # the writer holds its lock far longer than this test waits
        assert plain(rows) == plain(expected)
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()


def test_two_processes_scanning_and_writing_one_index_agree(tmp_path: Path) -> None:
    root = tmp_path / "results"
    runs = [new_run(root, n, 20) for n in range(4)]
    settle(root)
    path = tmp_path / "index.sqlite3"
    other = _python(_SCAN_LOOP, str(path), str(root), "15")
    try:
        index = RunIndex(path)
        for step in range(6):
            runs[step % 4].history(3)
            settle(root)
            rows, _ = indexed_scan_rows([root], index, workers=1, verdicts=True)
            assert plain(rows) == plain(fresh_rows(root))
        assert other.stdout is not None
        assert other.wait(timeout=120) == 0
        assert other.stdout.read().strip() == "4"
        final, _ = indexed_scan_rows([root], RunIndex(path), workers=1, verdicts=True)
        assert plain(final) == plain(fresh_rows(root))
        assert not index.notes
    finally:
        other.kill()
