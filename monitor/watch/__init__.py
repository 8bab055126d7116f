"""A live results root: one watcher that keeps every run's frames current and records what changed."""

from monitor.watch.events import EVENT_KINDS, WatchEvent
from monitor.watch.watcher import Liveness, ResultsWatcher, RunSnapshot, WatchSnapshot

__all__ = ["EVENT_KINDS", "Liveness", "ResultsWatcher", "RunSnapshot", "WatchEvent", "WatchSnapshot"]
