"""The run table's row: one typed, immutable summary per run, and its plain form for DataFrames, JSON and events."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any

from monitor.runs.status import RunAssessment, RunStatus

__all__ = ["SUMMARY_COLUMNS", "RunSummary", "assessment_fields", "iso_seconds"]


def iso_seconds(timestamp: float | None) -> str | None:
    """The run table's time format (``2024-03-09T07:05:01Z``) for seconds since the epoch."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@dataclass(frozen=True)
class RunSummary:
    """One run in one row: the run table's columns, in order. Immutable, so the watcher shares it."""

    run_id: str
    nnunet_version: str
    dataset: str
    trainer: str
    plans: str
    configuration: str
    fold: str
    epochs_completed: int
    last_epoch: int | None
    planned_epochs: int | None
    status: RunStatus
    last_mean_fg_dice: float | None  # None where unknown or not finite
    last_ema_fg_dice: float | None
    best_ema_fg_dice: float | None
    best_ema_epoch: int | None
    n_classes: int
    class_names: tuple[str, ...]
    final_validation_dice: float | None
    median_epoch_time_s: float | None
    eta_s: float | None  # seconds until the last planned epoch ends (running runs only)
    eta: str | None  # that moment (ISO 8601, UTC)
    dead_dice: bool
    last_update: str | None  # newest log change (ISO 8601, UTC)
    training_done: bool
    log_files: int
    problems: tuple[str, ...]
    device: str | None = None  # the torch device from debug.json ("cuda:0", "cpu"); None when unknown
    stop_cause: str | None = None  # why a crashed or stalled run stopped: a monitor.stops.StopCause value
    stop_evidence: str | None = None  # a few lines (output, scheduler state or log) that show it

    def row(self) -> dict[str, Any]:
        """The plain row: every column in order, the status as its string, tuples as fresh lists."""
        row = {name: getattr(self, name) for name in SUMMARY_COLUMNS}
        row.update(status=self.status.value, class_names=list(self.class_names), problems=list(self.problems))
        return row

    def assessed(self, assessment: RunAssessment) -> RunSummary:
        """This summary with the status, ETA and dead-Dice flag of a newer assessment (the clock moved on)."""
        return replace(self, **assessment_fields(assessment))


SUMMARY_COLUMNS: tuple[str, ...] = tuple(column.name for column in fields(RunSummary))


def assessment_fields(assessment: RunAssessment) -> dict[str, Any]:
    return {"status": assessment.status, "eta_s": assessment.eta_s, "eta": iso_seconds(assessment.eta),
            "dead_dice": assessment.dead_dice}
