"""The run table's row: one typed, immutable summary per run, and its plain form for DataFrames, JSON and events."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.runs.status import RunAssessment, RunStatus

if TYPE_CHECKING:
    from monitor.runs.reader import RunReader

__all__ = ["SUMMARY_COLUMNS", "RunSummary", "iso_seconds", "summarize"]

# The median epoch time is taken over this many trailing epochs: the speed of the run as it is now.
_EPOCH_TIME_WINDOW = 50


def iso_seconds(timestamp: float | None) -> str | None:
    """The run table's time format (``2024-03-09T07:05:01Z``) for seconds since the epoch."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@dataclass(frozen=True)
class RunSummary:
    """One run in one row: where it is, how far it got, its status and what is wrong with it.

    Immutable (its lists are tuples), so the watcher shares one object with every reader. Fields are the run
    table's columns, in order; :meth:`row` is the plain form that DataFrames, JSON and events carry.
    """

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

    def row(self) -> dict[str, Any]:
        """The plain row: every column in order, the status as its string, tuples as fresh lists."""
        row = {name: getattr(self, name) for name in SUMMARY_COLUMNS}
        row.update(status=self.status.value, class_names=list(self.class_names), problems=list(self.problems))
        return row

    def assessed(self, assessment: RunAssessment) -> RunSummary:
        """This summary with the status, ETA and dead-Dice flag of a newer assessment (the clock moved on)."""
        return replace(self, **_assessment_fields(assessment))


SUMMARY_COLUMNS: tuple[str, ...] = tuple(column.name for column in fields(RunSummary))


def _assessment_fields(assessment: RunAssessment) -> dict[str, Any]:
    return {"status": assessment.status, "eta_s": assessment.eta_s, "eta": iso_seconds(assessment.eta),
            "dead_dice": assessment.dead_dice}


def _float(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def summarize(reader: RunReader, assessment: RunAssessment) -> RunSummary:
    """The summary of what ``reader`` has read, with the status ``assessment`` gives the run."""
    location = reader.location
    curves = reader.curves()
    n = len(curves)
    ema = curves.ema_fg_dice
    finite = np.flatnonzero(np.isfinite(ema))
    best = int(finite[np.argmax(ema[finite])]) if finite.size else None
    n_classes = int(curves.dice.shape[1]) if n else len(reader.metadata.class_names)
    recent_times = curves.epoch_time_s[-_EPOCH_TIME_WINDOW:]
    return RunSummary(
        run_id=location.run_id,
        nnunet_version=location.nnunet_version,
        dataset=location.dataset,
        trainer=location.trainer,
        plans=location.plans,
        configuration=location.configuration,
        fold=location.fold,
        epochs_completed=n,
        last_epoch=int(curves.epoch[-1]) if n else None,
        planned_epochs=reader.planned_epochs()[0],
        last_mean_fg_dice=_float(curves.mean_fg_dice[-1]) if n else None,
        last_ema_fg_dice=_float(ema[-1]) if n else None,
        best_ema_fg_dice=_float(ema[best]) if best is not None else None,
        best_ema_epoch=int(curves.epoch[best]) if best is not None else None,
        n_classes=n_classes,
        class_names=tuple(reader.class_names(n_classes)),
        final_validation_dice=reader.final_validation_dice(),
        median_epoch_time_s=_float(np.nanmedian(recent_times)) if np.isfinite(recent_times).any() else None,
        last_update=iso_seconds(reader.last_update()),
        training_done=reader.training_done(),
        log_files=reader.log_files,
        problems=tuple(reader.problems()),
        **_assessment_fields(assessment),
    )
