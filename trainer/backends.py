"""The one small interface every backend implements (submitit-style): launch, poll a batch, cancel.

A backend knows how to start an argv somewhere and how to read back what became of it; it keeps no state
of its own. The registry owns the job records and calls these hooks, so a job handle survives the process
that created it, and adding a backend means implementing three methods. This module holds only the
interface: the concrete backends import it, and :mod:`trainer.selection` maps names to them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from trainer.slurm_text import SlurmOptions
from trainer.states import JobState

if TYPE_CHECKING:
    from trainer.jobs import Job

__all__ = ["Backend", "BackendError", "LaunchRequest", "Launched", "Observation"]


class BackendError(RuntimeError):
    """A launch, poll or cancel that did not work; a failed poll keeps each job's last known state."""


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a backend needs to start one job; argv is a list and never goes through a shell."""

    job_id: str
    job_dir: Path
    log_path: Path
    argv: tuple[str, ...]
    env: Mapping[str, str]  # set on top of the launcher's environment
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    description: str | None = None  # what the job does, for a batch script's comment (None: an extend)


@dataclass(frozen=True)
class Launched:
    """What identifies a started job later: a scheduler id, or a pid with its start time and host."""

    backend_job_id: str
    state: JobState = JobState.RUNNING
    pid: int | None = None
    pid_start_ticks: int | None = None
    boot_id: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Observation:
    """A backend's view of one job. ``launched`` is set when a job is adopted after its launcher died."""

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    launched: Launched | None = None
    scheduler_state: str | None = None  # the scheduler's final word (SLURM: TIMEOUT, "CANCELLED by 1000", …)


class Backend(ABC):
    """Start jobs, report on many at once, stop one."""

    name: ClassVar[str]
    # How long a job may stay queued without a backend id before its launcher is presumed dead.
    launch_grace_s: ClassVar[float] = 120.0

    @abstractmethod
    def launch(self, request: LaunchRequest) -> Launched:
        """Start the job; raise :class:`BackendError` with a readable message when that fails."""

    @abstractmethod
    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        """Observe all ``jobs`` with as few commands as possible; jobs left out have no news.

        Raise :class:`BackendError` when the backend cannot be asked at all (the registry then keeps
        every job's last known state).
        """

    @abstractmethod
    def cancel(self, job: Job, grace_s: float) -> Observation:
        """Stop the job and return its final observation."""
