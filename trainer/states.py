"""The one set of job states, shared by every backend, the registry, the CLI and the dashboard."""

from __future__ import annotations

from enum import Enum

__all__ = ["ACTIVE_STATES", "JobState"]


class JobState(str, Enum):
    """Where a job is in its life. Backends translate their own vocabulary into these five values."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Queued or running: at most one such job may exist per parent run and epoch count."""
        return self in ACTIVE_STATES

    def __str__(self) -> str:
        return self.value


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
