"""From what the watcher publishes and what the job registry records to the events worth a message.

Two steps, so that a tree of 500 finished runs costs no analysis on every pass: :func:`run_conditions` and
:func:`job_conditions` say cheaply which events hold (their exactly-once keys); only for a key the outbox
has not seen yet does :func:`run_notifications` build the message (the verdict, the report PNG).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.notify.events import EventKind, Notification
from monitor.analyze import Analysis, analyze_curves, signed
from monitor.numbers import moment
from monitor.runs import RunStatus
from monitor.stops import StopCause
from monitor.watch import RunSnapshot
from trainer import Job, JobState

__all__ = ["Condition", "event_key", "job_conditions", "job_notification",
           "run_conditions", "run_notifications"]

log = logging.getLogger("nnwatch.notify")


def event_key(run_id: str, event: EventKind, job_id: str | None = None, *, root: str = "") -> str:
    """The exactly-once key: one per run and event (and job, for job events). A run event is scoped by its
    results ``root``: two roots can hold the same run id (two people's trees), each with its own events."""
    return "\t".join([*([root] if root else []), run_id, event.value, *([job_id] if job_id else [])])


@dataclass(frozen=True)
class Condition:
    """An event that holds now, not yet turned into a message."""

    event: EventKind
    run_id: str
    key: str


def _age_s(iso: str | None, now: float) -> float:
    if not iso:
        return math.inf
    try:
        moment = _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return math.inf
    return now - moment.timestamp()


def _nan_loss(snapshot: RunSnapshot) -> bool:
    curves = snapshot.curves
    if len(curves) == 0:
        return False
    last = [float(curves.train_loss[-1]), float(curves.val_loss[-1])]
    return any(math.isnan(value) or math.isinf(value) for value in last)


def run_conditions(snapshot: RunSnapshot, now: float, final_dice_wait_s: float, *, root: str = ""
                   ) -> list[Condition]:
    """The run events that hold for this run (of results ``root``) now (``run_finished`` waits for the final
    validation Dice, up to ``final_dice_wait_s`` after the last log line: nnU-Net validates after ``Training
    done.``)."""
    summary = snapshot.summary
    run_id = snapshot.run_id
    found: list[EventKind] = []
    if summary.status == RunStatus.FINISHED:
        if summary.final_validation_dice is not None or _age_s(summary.last_update, now) >= final_dice_wait_s:
            found.append(EventKind.RUN_FINISHED)
    elif summary.status == RunStatus.CRASHED:
        found.append(EventKind.RUN_STOPPED)
    elif summary.status == RunStatus.STALLED:
        found.append(EventKind.RUN_STALLED)
    if summary.dead_dice or _nan_loss(snapshot):
        found.append(EventKind.DEAD_DICE)
    return [Condition(event, run_id, event_key(run_id, event, root=root)) for event in found]


def job_conditions(job: Job) -> list[Condition]:
    """``job_started`` once a job ran, and ``job_succeeded`` / ``job_failed`` when it ended so."""
    found = []
    if job.state == JobState.RUNNING or job.started_at is not None:
        found.append(EventKind.JOB_STARTED)
    if job.state == JobState.SUCCEEDED:
        found.append(EventKind.JOB_SUCCEEDED)
    elif job.state == JobState.FAILED:
        found.append(EventKind.JOB_FAILED)
    return [Condition(event, job.new_run_id, event_key(job.new_run_id, event, job.job_id)) for event in found]


def _dataset(run_id: str) -> str:
    return run_id.split("/", 1)[0]


def _epochs(snapshot: RunSnapshot) -> str:
    summary = snapshot.summary
    of = f" of {summary.planned_epochs}" if summary.planned_epochs else ""
    return f"{summary.epochs_completed}{of} epochs"


def run_notifications(snapshot: RunSnapshot, events: set[EventKind], *, report_dir: Path | None = None,
                      failed_job: Job | None = None, root: str = "") -> list[Notification]:
    """The messages for the run events in ``events`` (``extend_recommended`` comes with ``run_finished``) of a run
    of results ``root``."""
    summary = snapshot.summary
    run_id = snapshot.run_id
    dataset = _dataset(run_id)
    out: list[Notification] = []

    def key(event: EventKind) -> str:
        return event_key(run_id, event, root=root)

    if EventKind.RUN_FINISHED in events:
        analysis = analyze_curves(snapshot.curves, planned_epochs=summary.planned_epochs, status=summary.status,
                                  frame=snapshot.frame)
        report = _report(snapshot, analysis, report_dir) if report_dir is not None else None
        out.append(Notification(EventKind.RUN_FINISHED, run_id, key(EventKind.RUN_FINISHED),
                                dataset, verdict=analysis.verdict.value, final_dice=summary.final_validation_dice,
                                detail=f"{_epochs(snapshot)}. {analysis.reason}", report=report))
        if analysis.recommends_longer_schedule:
            epochs = analysis.recommended_epochs or 2000
            gain = analysis.projected_gain_2000
            hours = analysis.gpu_hours_2000
            extra = ""
            if gain is not None:
                extra += f" Projected gain at 2000 epochs: {signed(gain[0], 4)} to {signed(gain[1], 4)} Dice"
            if hours is not None:
                extra += f" for about {hours:.0f} {analysis.hours_unit}"
            out.append(Notification(EventKind.EXTEND_RECOMMENDED, run_id,
                                    key(EventKind.EXTEND_RECOMMENDED), dataset,
                                    verdict=analysis.verdict.value, final_dice=summary.final_validation_dice,
                                    detail=f"A from-scratch run of {epochs} epochs is recommended.{extra}".rstrip()
                                    + ("." if extra else "")))
    if EventKind.RUN_STOPPED in events:
        found = StopCause(summary.stop_cause) if summary.stop_cause else StopCause.UNKNOWN
        cause = found.label if found is not StopCause.UNKNOWN else (
            f"its job failed: {failed_job.reason}" if failed_job and failed_job.reason else None)
        detail = f"Stopped after {_epochs(snapshot)}; last log line at {moment(summary.last_update)}."
        if summary.stop_evidence:
            detail += f"\n{summary.stop_evidence}"
        out.append(Notification(EventKind.RUN_STOPPED, run_id, key(EventKind.RUN_STOPPED), dataset,
                                cause=cause or "unknown (no cause found in the log or the job record)",
                                detail=detail))
    if EventKind.RUN_STALLED in events:
        out.append(Notification(EventKind.RUN_STALLED, run_id, key(EventKind.RUN_STALLED), dataset,
                                detail=f"No new epoch since {moment(summary.last_update)} "
                                f"(typical epoch {summary.median_epoch_time_s or math.nan:.0f} s), "
                                f"after {_epochs(snapshot)}."))
    if EventKind.DEAD_DICE in events:
        what = "the loss is NaN or infinite" if _nan_loss(snapshot) else \
            "the mean pseudo Dice has been 0 or NaN for the last epochs"
        out.append(Notification(EventKind.DEAD_DICE, run_id, key(EventKind.DEAD_DICE), dataset,
                                cause=what, detail=f"After {_epochs(snapshot)}: the run is not learning."))
    return out


def job_notification(job: Job, event: EventKind) -> Notification:
    """The message of one job event; the job's reason is the cause of a failure."""
    detail = f"Extension of {job.parent_run_id} to {job.epochs} epochs ({job.backend}, requested by " \
             f"{job.requested_by})."
    cause = None
    if event == EventKind.JOB_FAILED:
        cause = job.reason or (f"exit code {job.exit_code}" if job.exit_code is not None else "unknown")
    return Notification(event, job.new_run_id, event_key(job.new_run_id, event, job.job_id),
                        _dataset(job.new_run_id), cause=cause, detail=detail, job_id=job.job_id)


def _report(snapshot: RunSnapshot, analysis: Analysis, report_dir: Path) -> str | None:
    """Render the run report PNG beside the outbox (kept for retries); None when it cannot be drawn."""
    from monitor.report import render_run_report

    try:
        png = render_run_report(snapshot.location.path, analysis=analysis)
    except Exception as exc:  # a report is a bonus: the message goes out without it
        log.warning("%s: cannot draw the run report: %s", snapshot.run_id, exc)
        return None
    report_dir.mkdir(parents=True, exist_ok=True)
    name = snapshot.run_id.replace("/", "__") + ".png"
    path = report_dir / name
    path.write_bytes(png)
    return str(path)


def latest_jobs_by_run(jobs: list[Job]) -> Mapping[str, Job]:
    """The newest job of each new run id (the registry lists newest first)."""
    latest: dict[str, Job] = {}
    for job in jobs:
        latest.setdefault(job.new_run_id, job)
    return latest
