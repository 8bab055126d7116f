"""The run index: one SQLite file in nnwatch's state folder that lets a restart skip reading unchanged runs.

Per run it keeps the files' signatures, the reader's resume state (offsets, parser state, the
parsed rows as Arrow), the summary row, the status inputs and the verdict. It is a cache: deleting it loses
only time. WAL journaling lets one process write while others read, never blocked; writes come in batches.
A different version stamp (the index schema, the reading and analysing rules, the summary's fields) or a
damaged file (a truncated or garbage file) makes it start empty, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from monitor.analyze import VerdictRow
from monitor.index.codec import CodecError, decode_inputs, decode_state, decode_summary
from monitor.runs import SUMMARY_COLUMNS, FileSignature, ReaderState, RunLocation, RunSummary
from monitor.runs.status import StatusInputs
from monitor.state import state_dir

__all__ = ["INDEX_FILE", "IndexInfo", "IndexRecord", "IndexedRun", "RunIndex", "StoredRuns", "default_index_path",
           "version_stamp"]

log = logging.getLogger("nnwatch.index")

INDEX_FILE = "index.sqlite3"
_SCHEMA = 2
#: Packages whose source decides what a run's files mean: a change to any of them rebuilds the index.
_RULE_PACKAGES = ("logs", "runs", "checkpoints", "analyze")

_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    root TEXT NOT NULL,
    run_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    summary TEXT NOT NULL,
    inputs TEXT NOT NULL,
    verdict TEXT,
    state TEXT NOT NULL,
    arrays BLOB NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (root, run_id)
)"""
_DDL = f"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n{_RUNS_DDL};"


def default_index_path() -> Path:
    return state_dir() / INDEX_FILE


def version_stamp() -> str:
    """The index schema, the summary's and status inputs' field names, and a hash of the rule sources."""
    digest = hashlib.sha256(f"schema {_SCHEMA}\n".encode())
    digest.update(",".join(SUMMARY_COLUMNS).encode())
    digest.update(",".join(f.name for f in fields(StatusInputs)).encode())
    monitor_dir = Path(__file__).resolve().parents[1]
    for package in _RULE_PACKAGES:
        for source in sorted((monitor_dir / package).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class IndexRecord:
    """One run's row, encoded (workers build it, the writer stores it)."""

    root: str
    run_id: str
    signature: FileSignature
    summary: str
    inputs: str
    verdict: VerdictRow | None
    state: str
    arrays: bytes


@dataclass(frozen=True)
class IndexedRun:
    """A stored run without its arrays: enough for a run table row."""

    run_id: str
    signature: FileSignature
    summary: RunSummary
    inputs: StatusInputs
    verdict: VerdictRow | None  # the analyzer's, for the run status it names


@dataclass(frozen=True)
class IndexInfo:
    path: Path
    exists: bool
    size_bytes: int
    runs: int
    roots: tuple[str, ...]
    created: float | None
    updated: float | None
    version: str | None
    current: bool  # written by these rules (else the next use starts it again)


def _signature(text: str) -> FileSignature:
    return tuple((str(n), int(s), int(m), int(i)) for n, s, m, i in json.loads(text))


class RunIndex:
    """The index file; thread-safe (one connection behind a lock), several processes may share the file."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 warn: Callable[[str], object] | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.notes: list[str] = []  # warnings for the UI (a damaged or outdated index started again)
        self._warn = warn
        self._lock = threading.RLock()
        self._stamp = version_stamp()
        self._db = self._open()

    # -- opening, corruption, versions ----------------------------------------------------------------
    def _note(self, message: str) -> None:
        log.warning("%s", message)
        self.notes.append(message)
        if self._warn is not None:
            self._warn(message)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            db.executescript(_DDL)
            stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if stored.get("version") != self._stamp:
                if stored.get("version") is not None:
                    self._note(f"run index {self.path} was written by other reading rules; rebuilding it")
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("DROP TABLE runs")  # its columns may be another schema's
                    db.execute(_RUNS_DDL)
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (self._stamp,))
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (repr(time.time()),))
            return db
        except sqlite3.DatabaseError as exc:
            self._note(f"run index {self.path} is damaged ({exc}); rebuilding it")
            self._delete_files()
            db = self._connect()
            db.executescript(_DDL)
            with db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (self._stamp,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (repr(time.time()),))
            return db

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    def _damaged(self, exc: sqlite3.DatabaseError) -> None:
        """A query failed on a damaged file: start a fresh index (callers then read the runs' files)."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._note(f"run index {self.path} is damaged ({exc}); rebuilding it")
            self._delete_files()
            self._db = self._open()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def clear(self) -> None:
        """Forget every run (``nnwatch index --rebuild`` then reads them again)."""
        with self._lock:
            self._db.execute("DELETE FROM runs")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (repr(time.time()),))

    # -- reading -------------------------------------------------------------------------------------
    def _query(self, sql: str, args: Sequence[object]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                self._damaged(exc)
                return []

    def lookup(self, location: RunLocation, signature: FileSignature) -> IndexedRun | None:
        """The stored run when its files still have ``signature`` (None: read it from its files)."""
        rows = self._query(f"SELECT {_ROW_COLUMNS} FROM runs WHERE root = ? AND run_id = ?",
                           (self._root(location), location.run_id))
        return _decode_row(location.run_id, rows[0], signature) if rows else None

    def stored_runs(self, root: str | os.PathLike[str]) -> StoredRuns:
        """Every run stored under ``root``, read in one query (a start looks each run up in it instead of asking
        SQLite once per run); rows are decoded only when looked up."""
        root_text = os.path.abspath(root).rstrip(os.sep) or os.sep
        rows = self._query(f"SELECT {_ROW_COLUMNS} FROM runs WHERE root = ?", (root_text,))
        return StoredRuns({str(row[0]): row for row in rows})

    def load_state(self, location: RunLocation) -> ReaderState | None:
        """The reader state stored for this run (whatever its files say now), None when absent or unreadable."""
        rows = self._query("SELECT state, arrays FROM runs WHERE root = ? AND run_id = ?",
                           (self._root(location), location.run_id))
        if rows:
            try:
                return decode_state(str(rows[0][0]), bytes(rows[0][1]))
            except CodecError as exc:
                log.warning("%s: %s; reading the run's files", location.run_id, exc)
        return None

    def info(self) -> IndexInfo:
        rows = self._query("SELECT COUNT(*), MAX(updated) FROM runs", ())
        roots = tuple(str(r[0]) for r in self._query("SELECT DISTINCT root FROM runs ORDER BY root", ()))
        meta = dict(self._query("SELECT key, value FROM meta", ()))
        size = sum(os.path.getsize(f"{self.path}{s}") for s in ("", "-wal") if os.path.exists(f"{self.path}{s}"))
        count, updated = rows[0] if rows else (0, None)
        created = meta.get("created")
        return IndexInfo(self.path, self.path.exists(), size, int(count or 0), roots,
                         float(created) if created else None,
                         float(updated) if updated else None,
                         str(meta.get("version")), meta.get("version") == self._stamp)

    # -- writing ---------------------------------------------------------------------------------------
    @staticmethod
    def _root(location: RunLocation) -> str:
        path = os.path.abspath(location.path)
        return path[: len(path) - len(location.run_id)].rstrip(os.sep) or os.sep

    def save(self, records: Iterable[IndexRecord]) -> int:
        """Store records in one transaction (one writer at a time; readers go on meanwhile)."""
        now = time.time()
        rows = [(r.root, r.run_id, json.dumps(r.signature), r.summary, r.inputs,
                 _verdict_text(r.verdict), r.state, r.arrays, now) for r in records]
        if not rows:
            return 0
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?)", rows)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    log.warning("run index busy; %d runs not saved this time", len(rows))
                    return 0
                self._damaged(exc)
                return 0
        return len(rows)

    def forget(self, root: str | os.PathLike[str], keep: Iterable[str]) -> int:
        """Drop the rows of runs under ``root`` that are no longer there."""
        root_text = os.fspath(Path(root).absolute()).rstrip(os.sep) or os.sep
        keep_set = set(keep)
        stored = {str(r[0]) for r in self._query("SELECT run_id FROM runs WHERE root = ?", (root_text,))}
        gone = sorted(stored - keep_set)
        if gone:
            with self._lock, self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM runs WHERE root = ? AND run_id = ?", [(root_text, g) for g in gone])
        return len(gone)


#: What a lookup reads: everything before the arrays (a column after the blob would make SQLite walk it).
_ROW_COLUMNS = "run_id, signature, summary, inputs, verdict"


def _decode_row(run_id: str, row: Sequence[Any], signature: FileSignature | None) -> IndexedRun | None:
    """A stored row as an :class:`IndexedRun` when its files still have ``signature`` (None: as stored)."""
    _, sig, summary, inputs, verdict = row
    try:
        if signature is None:
            signature = _signature(str(sig))
        elif str(sig) != json.dumps(signature) and _signature(str(sig)) != signature:
            return None
        return IndexedRun(run_id, signature, decode_summary(str(summary)), decode_inputs(str(inputs)),
                          _verdict(verdict))
    except (CodecError, ValueError, TypeError) as exc:
        log.warning("%s: index row unreadable (%s); reading the run's files", run_id, exc)
        return None


@dataclass(frozen=True)
class StoredRuns:
    """The rows of one root as read by :meth:`RunIndex.stored_runs`."""

    rows: dict[str, Sequence[Any]]  # run_id -> the row's columns

    def lookup(self, run_id: str, signature: FileSignature) -> IndexedRun | None:
        """As :meth:`RunIndex.lookup`, from the rows read at once."""
        row = self.rows.get(run_id)
        return None if row is None else _decode_row(run_id, row, signature)

    def last_known(self) -> list[IndexedRun]:
        """Every run as last stored, whatever its files say now, sorted by ``run_id``."""
        decoded = (_decode_row(run_id, row, None) for run_id, row in sorted(self.rows.items()))
        return [stored for stored in decoded if stored is not None]


def _verdict_text(verdict: VerdictRow | None) -> str | None:
    return None if verdict is None else json.dumps(asdict(verdict))


def _verdict(text: object) -> VerdictRow | None:
    return None if text is None else VerdictRow(**json.loads(str(text)))

