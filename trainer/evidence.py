"""What nnwatch's own jobs tell the monitor: liveness and the evidence of how each one ended.

The monitor never reads the job registry; this module turns a :class:`~trainer.jobs.Job` into a
:class:`monitor.stops.JobEvidence` (its output's tail, exit code and signal, SLURM's final state, who
cancelled it), and :class:`JobLiveness` answers the watcher's per-run question "is its job alive?" from
the newest job that trains into that run folder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.stops import JobEvidence
from monitor.tail import tail_text
from trainer.jobs import Job
from trainer.runner import EXIT_FILE
from trainer.states import JobState

__all__ = ["JobLiveness", "job_evidence"]


def _signal(job: Job) -> str | None:
    """The signal that ended a local job, from the runner's exit record."""
    try:
        record = json.loads((Path(job.job_dir) / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    value = record.get("signal") if isinstance(record, dict) else None
    return str(value) if value else None


def _source(job: Job) -> str:
    if job.backend == "slurm" and job.backend_job_id:
        return f"SLURM job {job.backend_job_id} (nnwatch job {job.job_id})"
    return f"{job.backend} job {job.job_id}"


def job_evidence(job: Job) -> JobEvidence:
    """The job's liveness and, once it ended, everything it left behind that can say why."""
    source = _source(job)
    if job.state.active:
        return JobEvidence(alive=True, source=source)
    alive = None if job.state is JobState.SUCCEEDED else False  # a success: the run's files decide
    return JobEvidence(alive=alive, source=source, output=tail_text(job.log_path) or "",
                       output_path=job.log_path,
                       exit_code=job.exit_code, signal=_signal(job) if job.backend != "slurm" else None,
                       scheduler_state=job.scheduler_state, cancelled_by=job.cancel_requested_by,
                       reason=job.reason)


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(path))


class JobLiveness:
    """``run_id -> JobEvidence | None`` for a results root, as the watcher's liveness callback.

    ``jobs`` is a (cheap, throttled) source of every job, newest first; it is asked at most every
    ``min_interval_s``. The evidence of an ended job is read once and kept (an ended job never changes).
    """

    def __init__(self, jobs: Callable[[], Sequence[Job]], root: str | os.PathLike[str], *,
                 min_interval_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._jobs = jobs
        self.root = Path(root).absolute()
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._by_path: dict[str, Job] = {}
        self._read_at = -float("inf")
        self._ended: dict[tuple[str, str], JobEvidence] = {}

    def _index(self) -> dict[str, Job]:
        now = self._clock()
        if now - self._read_at >= self.min_interval_s:
            self._read_at = now
            by_path: dict[str, Job] = {}
            for job in self._jobs():  # newest first: the first job per run folder is the one that counts
                by_path.setdefault(_key(job.new_run_path), job)
            self._by_path = by_path
        return self._by_path

    def __call__(self, run_id: str) -> JobEvidence | None:
        with self._lock:
            job = self._index().get(_key(self.root / run_id))
            if job is None:
                return None
            if job.state.active:
                return JobEvidence(alive=True, source=_source(job))
            key = (job.job_id, job.state.value)
            if key not in self._ended:
                self._ended[key] = job_evidence(job)
            return self._ended[key]
