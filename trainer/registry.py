"""The job registry: one SQLite file (WAL) that is the single source of truth about nnwatch's jobs.

Why SQLite: the CLI, several dashboard sessions and their reconcilers write concurrently, possibly from
several processes; SQLite's locking plus partial unique indexes make "one active extend per parent run and
epoch count" and "one active job writing into a folder" database facts rather than check-then-act races.
The row is inserted *before* anything is launched, so whoever loses the insert launches nothing and gets
the winner's job back.

Every row has a ``kind`` (:class:`~trainer.jobs.JobKind`). A registry file written before kinds existed is
migrated in place when it is opened (the column is added with ``extend`` for every old row, and the
extend index is rebuilt to cover extends only), as is one without ``scheduler_state``; ``PRAGMA user_version``
records the schema version.

Reconciliation (:meth:`JobRegistry.refresh`) asks each backend once for all of its active jobs and writes
back what changed; a backend that cannot be asked leaves its jobs as they were. Updates are guarded by
``state IN ('queued', 'running')`` so a finished job is never reopened by a slower reconciler.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from monitor.state import state_dir
from trainer.backends import Backend, BackendError, Launched, Observation
from trainer.jobs import Job, JobKind, utc_now
from trainer.names import validate_name
from trainer.selection import get_backend
from trainer.states import ACTIVE_STATES, JobState

__all__ = ["SCHEMA_VERSION", "JobNotFoundError", "JobRegistry", "default_db_path"]

_ACTIVE_SQL = "('queued', 'running')"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(state.value) for state in JobState)})),
    parent_run_id TEXT NOT NULL,
    parent_path TEXT NOT NULL,
    new_run_id TEXT NOT NULL,
    new_run_path TEXT NOT NULL,
    new_trainer TEXT NOT NULL,
    epochs INTEGER NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    argv TEXT NOT NULL,
    env TEXT NOT NULL,
    job_dir TEXT NOT NULL,
    log_path TEXT NOT NULL,
    options TEXT NOT NULL,
    backend_job_id TEXT,
    pid INTEGER,
    pid_start_ticks INTEGER,
    boot_id TEXT,
    host TEXT,
    exit_code INTEGER,
    reason TEXT,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT,
    cancel_requested_by TEXT,
    cancel_requested_at TEXT,
    scheduler_state TEXT,
    kind TEXT NOT NULL DEFAULT 'extend'
);
"""
_INDEXES = f"""
CREATE UNIQUE INDEX IF NOT EXISTS one_active_extend_per_parent_run
    ON jobs (parent_path, epochs) WHERE kind = 'extend' AND state IN {_ACTIVE_SQL};
CREATE UNIQUE INDEX IF NOT EXISTS one_active_job_per_new_run
    ON jobs (new_run_path) WHERE state IN {_ACTIVE_SQL};
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
"""
SCHEMA_VERSION = 3  # 1: extend jobs only (no ``kind`` column); 2: job kinds; 3: the scheduler's final state


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a registry file of any earlier version to :data:`SCHEMA_VERSION`, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # One statement at a time: ``executescript`` would commit the transaction half way.
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "kind" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'extend'")
        if "scheduler_state" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN scheduler_state TEXT")
        # Version 1's extend index covered every row; extends alone are one per (parent, epochs).
        db.execute("DROP INDEX IF EXISTS one_active_extend_per_parent")
        for statement in _INDEXES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class JobNotFoundError(KeyError):
    """No job with that id in this registry."""


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """``NNWATCH_JOBS_DB``, else ``jobs.sqlite3`` in nnwatch's state folder (``monitor.state``)."""
    environ = os.environ if environ is None else environ
    configured = environ.get("NNWATCH_JOBS_DB")
    if configured:
        return Path(configured).expanduser().absolute()
    return state_dir(environ) / "jobs.sqlite3"


#: Columns added after the first release: (name, SQL type). Older registries gain them on open.
def _age_s(timestamp: str) -> float:
    return (datetime.now(datetime.fromisoformat(timestamp).tzinfo) - datetime.fromisoformat(timestamp)).total_seconds()


class JobRegistry:
    """Jobs in one SQLite file; job folders (logs, scripts, exit records) in ``jobs/`` beside it."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 environ: Mapping[str, str] | None = None) -> None:
        self.path = Path(path).absolute() if path is not None else default_db_path(environ)
        self.jobs_dir = self.path.parent / "jobs"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                _migrate(db)

    def __repr__(self) -> str:
        return f"JobRegistry({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per operation: safe across threads and processes."""
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        try:
            yield db
        finally:
            db.close()

    def job_dir(self, job_id: str) -> Path:
        """The folder holding one job's log, script and exit record."""
        return self.jobs_dir / validate_name("job_id", job_id)

    # -- reading -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job's current record; :class:`JobNotFoundError` when there is none."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return Job.from_row(dict(row))

    def list_jobs(self, states: frozenset[JobState] | set[JobState] | None = None) -> list[Job]:
        """Jobs newest first, optionally only those in ``states``; jobs created within one second (the creation
        time's resolution) in the order they were recorded."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC").fetchall()
        jobs = [Job.from_row(dict(row)) for row in rows]
        return jobs if states is None else [job for job in jobs if job.state in states]

    def active_job_for(self, parent_path: str, epochs: int) -> Job | None:
        """The queued or running extend of this parent to this length, if any."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT * FROM jobs WHERE kind = 'extend' AND parent_path = ? AND epochs = ? "
                f"AND state IN {_ACTIVE_SQL}",
                (parent_path, epochs),
            ).fetchone()
        return None if row is None else Job.from_row(dict(row))

    def active_job_writing(self, folder: str) -> Job | None:
        """The queued or running job (of any kind) that writes into ``folder``, if any."""
        with self._connect() as db:
            row = db.execute(f"SELECT * FROM jobs WHERE new_run_path = ? AND state IN {_ACTIVE_SQL}",
                             (folder,)).fetchone()
        return None if row is None else Job.from_row(dict(row))

    # -- writing -------------------------------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        """Insert a queued job, or return the active job that already covers it (and ``False``).

        The partial unique indexes decide between concurrent callers; the loser launches nothing. The job
        returned may be of another kind when that job already writes into the same folder.
        """
        row = job.to_row()
        columns = ", ".join(row)
        placeholders = ", ".join(f":{name}" for name in row)
        for _attempt in range(3):
            with self._connect() as db:
                try:
                    db.execute(f"INSERT INTO jobs ({columns}) VALUES ({placeholders})", row)
                    return job, True
                except sqlite3.IntegrityError as exc:
                    error = exc
                    existing = db.execute(
                        f"SELECT * FROM jobs WHERE (kind = 'extend' AND ? AND parent_path = ? AND epochs = ? "
                        f"OR new_run_path = ?) AND state IN {_ACTIVE_SQL}",
                        (job.kind is JobKind.EXTEND, job.parent_path, job.epochs, job.new_run_path),
                    ).fetchone()
            if existing is not None:
                return Job.from_row(dict(existing)), False
            # The other job ended between our insert and this read: try again.
        raise RuntimeError(f"cannot record job {job.job_id}: {error}")

    def _update_active(self, job_id: str, **values: object) -> bool:
        values["updated_at"] = utc_now()
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        with self._connect() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = :job_id AND state IN {_ACTIVE_SQL}",
                {**values, "job_id": job_id},
            )
        return cursor.rowcount == 1

    def record_launch(self, job_id: str, launched: Launched) -> bool:
        """Store how a job was started; ``False`` when it was cancelled or failed meanwhile."""
        return self._update_active(
            job_id, backend_job_id=launched.backend_job_id, pid=launched.pid,
            pid_start_ticks=launched.pid_start_ticks, boot_id=launched.boot_id, host=launched.host,
            state=launched.state.value, started_at=utc_now(),
        )

    def record_observation(self, job: Job, observation: Observation) -> bool:
        """Write a backend's observation back if it changes anything; ``True`` when a row changed."""
        values: dict[str, object] = {}
        if observation.launched is not None and job.backend_job_id is None:
            launched = observation.launched
            values.update(backend_job_id=launched.backend_job_id, pid=launched.pid,
                          pid_start_ticks=launched.pid_start_ticks, boot_id=launched.boot_id,
                          host=launched.host, started_at=job.started_at or utc_now())
        if observation.state != job.state:
            values["state"] = observation.state.value
            if observation.state not in ACTIVE_STATES:
                values["finished_at"] = utc_now()
        if observation.reason is not None and observation.reason != job.reason:
            values["reason"] = observation.reason
        if observation.exit_code is not None and observation.exit_code != job.exit_code:
            values["exit_code"] = observation.exit_code
        if observation.scheduler_state is not None and observation.scheduler_state != job.scheduler_state:
            values["scheduler_state"] = observation.scheduler_state
        return bool(values) and self._update_active(job.job_id, **values)

    # -- reconciling ---------------------------------------------------------------------------------

    def refresh(self, backends: Mapping[str, Backend] | None = None) -> list[Job]:
        """Reconcile every queued or running job with its backend (one poll per backend); return all jobs.

        A job that is still queued without a backend id long after it was created lost its launcher
        before anything started, and is marked failed.
        """
        active = self.list_jobs(ACTIVE_STATES)
        by_backend: dict[str, list[Job]] = {}
        for job in active:
            by_backend.setdefault(job.backend, []).append(job)
        for name, jobs in by_backend.items():
            backend = (backends or {}).get(name) or get_backend(name)
            try:
                observations = backend.poll(jobs)
            except BackendError:
                continue  # cannot ask: keep the last known state
            for job in jobs:
                observation = observations.get(job.job_id)
                if observation is None and job.backend_job_id is None and _age_s(job.created_at) > (
                    backend.launch_grace_s
                ):
                    observation = Observation(JobState.FAILED, reason="the launcher stopped before the job "
                                              "was started (nothing is running)")
                if observation is not None:
                    self.record_observation(job, observation)
        return self.list_jobs()

    def cancel(self, job_id: str, requested_by: str, *, grace_s: float = 10.0,
               backends: Mapping[str, Backend] | None = None) -> Job:
        """Stop a job (SIGTERM then SIGKILL after ``grace_s`` locally, ``scancel`` on SLURM).

        Cancelling a job that already ended changes nothing and returns it as it is. Raises
        :class:`~trainer.backends.BackendError` when the backend cannot stop it (a local job of another
        host, ``scancel`` refused); the job then stays as it was.
        """
        job = self.get(job_id)
        if not job.state.active:
            return job
        self._update_active(job_id, cancel_requested_by=requested_by, cancel_requested_at=utc_now())
        job = self.get(job_id)
        reason = f"cancelled by {requested_by}"
        if job.backend_job_id is None:
            # Launch still in progress (or its launcher died): the launcher sees this and stops it.
            self._update_active(job_id, state=JobState.CANCELLED.value, reason=f"{reason} before it started",
                                finished_at=utc_now())
            return self.get(job_id)
        backend = (backends or {}).get(job.backend) or get_backend(job.backend)
        try:
            observation = backend.cancel(job, grace_s)
        except BackendError:
            self._update_active(job_id, cancel_requested_by=None, cancel_requested_at=None)
            raise
        self.record_observation(job, Observation(JobState.CANCELLED, reason=reason,
                                                 exit_code=observation.exit_code))
        return self.get(job_id)

