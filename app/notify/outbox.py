"""The outbox: one SQLite file in nnwatch's state folder that makes every notification exactly-once and durable.

An event is recorded once under its key (``INSERT OR IGNORE``; the primary key decides between processes,
so ``nnwatch serve`` and ``nnwatch notify`` on the same state folder never both record it), together with one
delivery per target URL. Deliveries stay ``pending`` until a channel accepts them; a failed send is retried
with exponential backoff, across restarts, so nothing is lost while a channel is down. A sender claims its
deliveries for a while before sending, so two senders never send the same message; one that dies mid-send
leaves the claim to expire and the delivery is sent again (the one case of a possible duplicate).

The first time a results root is seen, its present state is recorded as a baseline without sending
anything: starting nnwatch on a tree with 500 finished runs sends nothing; what happens afterwards, and
what happened while nnwatch was not running, is sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from app.notify.events import EventKind, Notification
from monitor.state import state_dir

__all__ = ["Batch", "Delivery", "HistoryRow", "Outbox", "default_outbox_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    key TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    baseline INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL REFERENCES events (key),
    url TEXT NOT NULL,
    rule TEXT NOT NULL,
    attach INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    claimed_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    UNIQUE (event_key, url)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state, next_try);
CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, primed_at REAL NOT NULL);
"""


def default_outbox_path() -> Path:
    """``notifications.sqlite3`` in nnwatch's state folder."""
    return state_dir() / "notifications.sqlite3"


@dataclass(frozen=True)
class Delivery:
    """One notification to one URL."""

    id: int
    url: str
    rule: str
    attach: bool
    attempts: int
    notification: Notification


@dataclass(frozen=True)
class Batch:
    """The pending deliveries to one URL that go out as one message (quiet grouping)."""

    url: str
    deliveries: tuple[Delivery, ...]

    @property
    def ids(self) -> list[int]:
        return [delivery.id for delivery in self.deliveries]


@dataclass(frozen=True)
class HistoryRow:
    """A delivery as the settings page and ``nnwatch notify --history`` show it."""

    created_at: float
    sent_at: float | None
    event: str
    run_id: str
    url: str
    rule: str
    state: str
    attempts: int
    last_error: str | None


def _notification(payload: str) -> Notification:
    data = json.loads(payload)
    data["event"] = EventKind(data["event"])
    return Notification(**data)


class Outbox:
    """The outbox file; a short-lived connection per operation, safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, claim_s: float = 120.0) -> None:
        self.path = Path(path).absolute() if path is not None else default_outbox_path()
        self.claim_s = claim_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)  # URLs in it may carry secrets

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        try:
            yield db
        finally:
            db.close()

    # -- baseline ------------------------------------------------------------------------------------
    def is_primed(self, root: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM roots WHERE root = ?", (root,)).fetchone() is not None

    def mark_primed(self, root: str, now: float | None = None) -> None:
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO roots (root, primed_at) VALUES (?, ?)", (root, now or time.time()))

    # -- recording -----------------------------------------------------------------------------------
    def known(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are already recorded (sent, pending or baseline)."""
        found: set[str] = set()
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ", ".join("?" * len(chunk))
                found.update(row[0] for row in db.execute(f"SELECT key FROM events WHERE key IN ({marks})", chunk))
        return found

    def record(self, notification: Notification, targets: Sequence[tuple[str, str, bool]], *,
               baseline: bool = False, now: float | None = None) -> bool:
        """Record an event and its deliveries ``(rule name, url, attach)``; False when it was recorded before."""
        return self.record_many([(notification, targets)], baseline=baseline, now=now)[0]

    def record_many(self, items: Sequence[tuple[Notification, Sequence[tuple[str, str, bool]]]], *,
                    baseline: bool = False, now: float | None = None) -> list[bool]:
        """Record several events in one transaction, so a sender sees all of them or none (one message)."""
        now = time.time() if now is None else now
        new: list[bool] = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for notification, targets in items:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO events (key, event, run_id, created_at, baseline, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (notification.key, notification.event.value, notification.run_id, now, int(baseline),
                         json.dumps({**asdict(notification), "event": notification.event.value})))
                    new.append(cursor.rowcount == 1)
                    if new[-1] and not baseline:
                        db.executemany(
                            "INSERT OR IGNORE INTO deliveries (event_key, url, rule, attach, state, created_at, "
                            "next_try) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                            [(notification.key, url, rule, int(attach), now, now) for rule, url, attach in targets])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new

    # -- sending -------------------------------------------------------------------------------------
    def claim_due(self, quiet_s: float, now: float | None = None) -> list[Batch]:
        """Claim what should go out now, one batch per URL.

        A URL's pending deliveries leave together once the oldest of them has waited ``quiet_s`` (the
        grouping window) and none is waiting for a retry.
        """
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT d.id, d.url, d.rule, d.attach, d.attempts, d.created_at, d.next_try, e.payload "
                    "FROM deliveries d JOIN events e ON e.key = d.event_key "
                    "WHERE d.state = 'pending' AND d.claimed_until <= ? ORDER BY d.id", (now,)).fetchall()
                by_url: dict[str, list[tuple]] = {}
                for row in rows:
                    by_url.setdefault(row[1], []).append(row)
                batches = []
                for url, group in by_url.items():
                    if min(row[5] for row in group) + quiet_s > now or max(row[6] for row in group) > now:
                        continue
                    deliveries = tuple(Delivery(row[0], url, row[2], bool(row[3]), row[4], _notification(row[7]))
                                       for row in group)
                    batches.append(Batch(url, deliveries))
                    db.executemany("UPDATE deliveries SET claimed_until = ? WHERE id = ?",
                                   [(now + self.claim_s, d.id) for d in deliveries])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return batches

    def mark_sent(self, ids: Sequence[int], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._connect() as db:
            db.executemany("UPDATE deliveries SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
                           "claimed_until = 0, last_error = NULL WHERE id = ?", [(now, i) for i in ids])

    def mark_failed(self, ids: Sequence[int], error: str, *, retry_max_s: float = 300.0,
                    now: float | None = None) -> float:
        """Count a failed try and schedule the next one (1, 2, 4 … s, at most ``retry_max_s``); its delay."""
        now = time.time() if now is None else now
        with self._connect() as db:
            attempts = max((db.execute("SELECT attempts FROM deliveries WHERE id = ?", (i,)).fetchone() or (0,))[0]
                           for i in ids) + 1 if ids else 1
            delay = min(retry_max_s, 2.0 ** (attempts - 1))
            db.executemany("UPDATE deliveries SET attempts = ?, next_try = ?, claimed_until = 0, last_error = ? "
                           "WHERE id = ?", [(attempts, now + delay, error[:2000], i) for i in ids])
        return delay

    # -- reading -------------------------------------------------------------------------------------
    def history(self, limit: int = 100) -> list[HistoryRow]:
        """The newest deliveries first (sent, and pending with their last error)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT d.created_at, d.sent_at, e.event, e.run_id, d.url, d.rule, d.state, d.attempts, "
                "d.last_error FROM deliveries d JOIN events e ON e.key = d.event_key "
                "ORDER BY COALESCE(d.sent_at, d.created_at) DESC, d.id DESC LIMIT ?", (limit,)).fetchall()
        return [HistoryRow(*row) for row in rows]

    def pending_for(self, key: str) -> int:
        """Deliveries of one event still waiting to be sent."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM deliveries WHERE event_key = ? AND state = 'pending'",
                                  (key,)).fetchone()[0])

    def pending(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0])
