"""The versioned event buffer behind ``changes_since``: slices, overflow, JSON shape."""

from __future__ import annotations

import math

import pytest

from monitor.watch.events import EventLog, iso_time


def test_since_returns_the_events_after_a_version_in_order() -> None:
    log = EventLog(capacity=10)
    for i in range(4):
        log.append("epoch", "run", {"epoch": i}, 1_700_000_000.0 + i)
    changes = log.since(1)
    assert changes.version == 4 and not changes.full_refresh_needed
    assert [e.data["epoch"] for e in changes.events or ()] == [1, 2, 3]
    assert [e.version for e in changes.events or ()] == [2, 3, 4]
    assert log.since(4).events == ()


def test_a_version_that_fell_off_the_buffer_needs_a_full_refresh() -> None:
    log = EventLog(capacity=3)
    for i in range(5):
        log.append("epoch", "run", {"epoch": i}, 0.0)
    assert log.since(1).events is None and log.since(1).full_refresh_needed
    assert [e.version for e in log.since(2).events or ()] == [3, 4, 5]
    assert log.since(99).events is None  # a version from another watcher's life
    assert log.since(-1).events is None


def test_events_are_read_only_and_serialise_flat() -> None:
    log = EventLog()
    event = log.append("status", "D/T__P__2d/fold_0", {"status": "stalled", "previous": "running",
                                                       "problems": ("a",), "run_id": "ignored"}, 0.0)
    with pytest.raises(TypeError):
        event.data["status"] = "x"  # type: ignore[index]
    as_dict = event.to_dict()
    assert as_dict == {"event": "status", "run_id": "D/T__P__2d/fold_0", "time": "1970-01-01T00:00:00.000+00:00",
                       "version": 1, "status": "stalled", "previous": "running", "problems": ["a"]}
    with pytest.raises(ValueError, match="unknown event kind"):
        log.append("nonsense", "r", {}, 0.0)
    assert iso_time(None) is None and iso_time(math.pi) == "1970-01-01T00:00:03.141+00:00"  # truncated, not rounded
