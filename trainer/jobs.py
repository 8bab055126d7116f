"""A job record: what was asked, by whom, how it was started and how it ended.

A :class:`Job` is an immutable snapshot of one registry row, a handle rather than a live process: its
state is whatever the registry last reconciled with the backend. ``to_dict`` is what the CLI's ``--json``
and the dashboard show.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from trainer.states import JobState

__all__ = ["Job", "JobKind", "new_job_id", "utc_now", "validated_with_best"]


class JobKind(str, Enum):
    """What a job does. Every kind shares the registry, the backends, the checks and the audit trail.

    ``extend`` retrains a run with a longer schedule; the others are nnU-Net's next steps once runs exist:
    ``train_fold`` trains a fold a configuration is missing, ``validate`` re-runs a finished fold's
    validation with ``--npz``, ``find_best`` runs ``nnUNetv2_find_best_configuration`` for a dataset.
    ``demo`` is the bundled demo's tiny job: it writes a synthetic training into the demo tree, nothing else.
    """

    EXTEND = "extend"
    TRAIN_FOLD = "train_fold"
    VALIDATE = "validate"
    FIND_BEST = "find_best"
    DEMO = "demo"

    def __str__(self) -> str:
        return self.value


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with seconds: sortable as text, readable in a table."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_job_id() -> str:
    """A short random id: unique across machines that share a registry, easy to type for ``cancel``."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Job:
    """One job as recorded in the registry.

    For an extend, ``parent_*`` is the run it lengthens and ``new_*`` the run it creates. For the other
    kinds ``new_run_path`` is the folder the job writes into (the fold folder it trains or validates, the
    dataset folder ``find_best`` writes its result to) and ``parent_*`` what it was planned from.
    """

    job_id: str
    state: JobState
    parent_run_id: str
    parent_path: str
    new_run_id: str
    new_run_path: str
    new_trainer: str
    epochs: int
    backend: str
    device: str
    requested_by: str
    created_at: str
    argv: tuple[str, ...]
    env: dict[str, str]
    job_dir: str
    log_path: str
    options: dict[str, Any] = field(default_factory=dict)
    backend_job_id: str | None = None
    pid: int | None = None
    pid_start_ticks: int | None = None
    boot_id: str | None = None
    host: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    cancel_requested_by: str | None = None
    cancel_requested_at: str | None = None
    scheduler_state: str | None = None  # the scheduler's final state (SLURM: TIMEOUT, NODE_FAIL, …), where known
    kind: JobKind = JobKind.EXTEND

    _JSON_FIELDS = ("argv", "env", "options")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the state as its string value)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if not name.startswith("_")}
        data["state"] = self.state.value
        data["kind"] = self.kind.value
        data["argv"] = list(self.argv)
        return data

    def to_row(self) -> dict[str, Any]:
        """The registry's column values (lists and dicts as JSON text)."""
        row = self.to_dict()
        for name in self._JSON_FIELDS:
            row[name] = json.dumps(row[name])
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """Rebuild a job from a registry row."""
        values = dict(row)
        for name in cls._JSON_FIELDS:
            values[name] = json.loads(values[name]) if values[name] else ({} if name != "argv" else [])
        values["argv"] = tuple(values["argv"])
        values["state"] = JobState(values["state"])
        values["kind"] = JobKind(values.get("kind") or JobKind.EXTEND.value)
        return cls(**values)

    def evolve(self, **changes: Any) -> Job:
        """A copy with some fields changed (the registry writes it back)."""
        return replace(self, **changes)


_CLOCK_SLACK_S = 2.0  # registry times have whole seconds


def _epoch_s(timestamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(timestamp).timestamp() if timestamp else None
    except ValueError:
        return None


def validated_with_best(jobs: Iterable[Job], run_dir: str | os.PathLike[str],
                        summary_mtime: float | None) -> bool | None:
    """What this registry knows about the checkpoint behind ``run_dir``'s ``validation/summary.json``.

    nnU-Net writes ``--val_best`` validations into the same folder without marking them, so the files cannot
    tell; a job can. The summary was written by the latest succeeded job that wrote into ``run_dir`` while it
    ran (the file's modification time lies between the job's start and end): True for a validate job with
    ``--val_best``, False for one without it and for a training (nnU-Net validates the final weights at the end
    of it). None when no job of the registry wrote this file (validated from a terminal, or later by hand).
    """
    if summary_mtime is None:
        return None
    target = os.path.abspath(run_dir)
    writers = []
    for job in jobs:
        if job.state is not JobState.SUCCEEDED or job.kind is JobKind.FIND_BEST:
            continue
        if os.path.abspath(job.new_run_path) != target:
            continue
        start, end = _epoch_s(job.started_at or job.created_at), _epoch_s(job.finished_at)
        if start is None or end is None or not start - _CLOCK_SLACK_S <= summary_mtime <= end + _CLOCK_SLACK_S:
            continue
        writers.append((start, job))
    if not writers:
        return None
    job = max(writers, key=lambda item: item[0])[1]
    return job.kind is JobKind.VALIDATE and bool(job.options.get("val_best"))
