"""The watcher's event stream: immutable events with contiguous version numbers in a bounded buffer.

"What changed since version v" is a slice of the buffer. It is bounded (a UI that went away must not grow
memory forever); a caller whose ``v`` fell off its end must take a full snapshot (``Changes.events is None``).

Kinds and their ``data``:

* ``run_added``: the summary row (``moved_from`` for a renamed run); ``run_updated``: the new summary row when
  neither an epoch nor the status changed (a checkpoint read, a final validation Dice, a shorter log);
* ``epoch``: one new epoch: ``epoch, mean_fg_dice, ema_fg_dice, lr, train_loss, val_loss, dice_1..dice_K,
  epoch_time_s, epoch_end`` (ISO 8601, UTC);
* ``status``: ``status``, ``previous``, ``reason``, ``eta_s``, ``eta``, ``dead_dice``;
* ``run_removed``: ``reason`` (and ``moved_to`` for a renamed run).
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["EVENT_KINDS", "Changes", "EventLog", "WatchEvent", "iso_time"]

EVENT_KINDS = ("run_added", "epoch", "status", "run_updated", "run_removed")


def iso_time(timestamp: float | None) -> str | None:
    """Seconds since the epoch → ISO 8601 in UTC with milliseconds (``2024-03-09T07:05:01.123+00:00``)."""
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class WatchEvent:
    """One change; ``data`` is read-only and shared, never mutated after the event is made."""

    version: int
    kind: str
    run_id: str
    time: float  # when the watcher noticed it (seconds since the epoch)
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines shape: ``{"event", "run_id", "time", "version", **data}``."""
        out: dict[str, Any] = {"event": self.kind, "run_id": self.run_id, "time": iso_time(self.time),
                               "version": self.version}
        for key, value in self.data.items():
            out.setdefault(key, list(value) if isinstance(value, tuple) else value)
        return out


class Changes(NamedTuple):
    """``(version, events)``; ``events`` is None when ``since`` is too old: take a full snapshot."""

    version: int
    events: tuple[WatchEvent, ...] | None

    @property
    def full_refresh_needed(self) -> bool:
        return self.events is None


class EventLog:
    """Bounded, versioned event buffer. Not locked itself: the watcher calls it under its state lock."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._events: deque[WatchEvent] = deque(maxlen=capacity)
        self.version = 0

    def append(self, kind: str, run_id: str, data: Mapping[str, Any], time: float) -> WatchEvent:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        self.version += 1
        event = WatchEvent(self.version, kind, run_id, time, MappingProxyType(dict(data)))
        self._events.append(event)
        return event

    def since(self, version: int) -> Changes:
        """Events after ``version``, oldest first; None when some of them were already dropped."""
        if version == self.version:
            return Changes(self.version, ())
        if version > self.version or version < 0:
            return Changes(self.version, None)
        oldest = self._events[0].version if self._events else self.version + 1
        if version < oldest - 1:
            return Changes(self.version, None)
        start = version - (oldest - 1)
        return Changes(self.version, tuple(self._events[i] for i in range(start, len(self._events))))
