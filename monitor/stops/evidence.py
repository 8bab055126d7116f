"""What the launcher of a job knows about it, handed down to the classifier (monitor never reads the registry).

``trainer`` builds a :class:`JobEvidence` from its job record and job folder; the watcher's liveness callback
may return one instead of a bare ``True``/``False``, so a run whose job is known dead is marked at once and
its stop cause can use the job's own output.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.stops.causes import StopCause, StopDiagnosis, Strength
from monitor.stops.text import classify_text, last_lines

__all__ = ["JobEvidence", "job_findings"]

#: SLURM's final states that say why a job ended, without looking at its output.
_SCHEDULER_STATES: dict[str, tuple[StopCause, str]] = {
    "TIMEOUT": (StopCause.TIME_LIMIT, "the job reached its time limit"),
    "DEADLINE": (StopCause.TIME_LIMIT, "the job reached its deadline"),
    "OUT_OF_MEMORY": (StopCause.HOST_OOM, "the job exceeded its memory and was killed"),
    "NODE_FAIL": (StopCause.PREEMPTED_OR_NODE_FAILURE, "the node the job ran on failed"),
    "BOOT_FAIL": (StopCause.PREEMPTED_OR_NODE_FAILURE, "the node failed to boot"),
    "PREEMPTED": (StopCause.PREEMPTED_OR_NODE_FAILURE, "the job was preempted"),
    "REVOKED": (StopCause.PREEMPTED_OR_NODE_FAILURE, "the job was revoked"),
    "CANCELLED": (StopCause.CANCELLED, "the job was cancelled"),
}


@dataclass(frozen=True)
class JobEvidence:
    """One job's liveness and what it left behind; every field but ``alive`` and ``source`` is optional."""

    alive: bool | None  # True running or queued, False ended, None unknown
    source: str  # "local job 1a2b3c" / "SLURM job 42 (nnwatch job 1a2b3c)"
    output: str = ""  # the tail of the job's console output (runner log, SLURM output file)
    output_path: str | None = None
    exit_code: int | None = None  # 128 + signal number when killed
    signal: str | None = None  # "SIGKILL", …
    scheduler_state: str | None = None  # SLURM's final state: TIMEOUT, OUT_OF_MEMORY, "CANCELLED by 1000", …
    cancelled_by: str | None = None  # who asked for the cancel, where known
    reason: str | None = None  # the registry's reason text


def _scheduler(job: JobEvidence) -> StopDiagnosis | None:
    if not job.scheduler_state:
        return None
    raw, _, detail = job.scheduler_state.partition(" ")
    found = _SCHEDULER_STATES.get(raw.upper().rstrip("+"))
    if found is None:
        return None
    cause, summary = found
    if cause is StopCause.CANCELLED:
        who = job.cancelled_by or (detail[3:] if detail.startswith("by ") else None)
        summary = f"cancelled in the scheduler by {who}" if who else "cancelled in the scheduler"
    evidence = f"{job.source}: state {job.scheduler_state}"
    if job.exit_code is not None:
        evidence += f", exit code {job.exit_code}"
    return StopDiagnosis(cause, evidence, f"scheduler ({job.source})", Strength.STRONG, summary)


def job_findings(job: JobEvidence) -> list[StopDiagnosis]:
    """Everything the job's record says, strongest first: the scheduler's state, a cancel, the job's output,
    then a bare signal or exit code."""
    if job.alive:
        return []
    findings: list[StopDiagnosis] = []
    scheduler = _scheduler(job)
    if scheduler is not None:
        findings.append(scheduler)
    if job.cancelled_by and (scheduler is None or scheduler.cause is not StopCause.CANCELLED):
        findings.append(StopDiagnosis(StopCause.CANCELLED, f"{job.source}: cancel requested by {job.cancelled_by}",
                                      job.source, Strength.STRONG, f"cancelled by {job.cancelled_by}"))
    where = f"job output {job.output_path}" if job.output_path else f"output of {job.source}"
    killed = job.signal == "SIGKILL" or job.exit_code == 137
    signalled = job.signal is not None or (job.exit_code or 0) > 128
    from_output = classify_text(job.output, where, Strength.STRONG, signalled=signalled)
    if from_output is not None:
        findings.append(from_output)
    if killed:
        findings.append(StopDiagnosis(
            StopCause.HOST_OOM, f"{job.source}: killed by SIGKILL (exit code {job.exit_code or 137})\n"
            + last_lines(job.output, 3), job.source, Strength.MEDIUM,
            "killed by SIGKILL: the kernel's out-of-memory killer, or someone's kill -9"))
    elif job.signal in ("SIGTERM", "SIGINT", "SIGHUP"):
        findings.append(StopDiagnosis(StopCause.CANCELLED, f"{job.source}: stopped by {job.signal}", job.source,
                                      Strength.MEDIUM, f"stopped by {job.signal} outside nnwatch"))
    return findings
