"""Awaiting a watcher's events with a deadline, so the watch tests never sleep for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.watch.events import WatchEvent
from monitor.watch.watcher import ResultsWatcher

__all__ = ["EventRecorder"]


class EventRecorder:
    """Collects a watcher's events and awaits conditions with a deadline (no fixed sleeps in tests)."""

    def __init__(self, watcher: ResultsWatcher, since: int = 0) -> None:
        self.watcher = watcher
        self.version = since
        self.events: list[WatchEvent] = []

    def poll(self, timeout: float = 0.0) -> list[WatchEvent]:
        changes = self.watcher.changes_since(self.version, timeout=timeout)
        if changes.events is None:
            raise AssertionError(f"event buffer overflow: version {self.version} is gone")
        self.events.extend(changes.events)
        self.version = changes.version
        return list(changes.events)

    def of(self, kind: str, run_id: str | None = None, after: int = 0) -> list[WatchEvent]:
        return [e for e in self.events
                if e.kind == kind and (run_id is None or e.run_id == run_id) and e.version > after]

    def wait_for(self, predicate: Callable[[WatchEvent], bool], *, timeout: float = 10.0, after: int = 0,
                 what: str = "an event") -> WatchEvent:
        """The first recorded event after version ``after`` that satisfies ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for event in self.events[checked:]:
                if event.version > after and predicate(event):
                    return event
            checked = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e.kind, e.run_id, dict(e.data).get("epoch", dict(e.data).get("status")))
                        for e in self.events if e.version > after]
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; saw {seen}")
            self.poll(timeout=min(remaining, 0.5))

    def wait_until(self, condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "a condition") -> None:
        """Wait (recording events meanwhile) until ``condition()`` holds, then record the events published up to
        the state it saw (the watcher publishes them with that state)."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.poll(timeout=min(remaining, 0.1))
        self.poll()

