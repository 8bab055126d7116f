"""The classifier: every source about one stopped run, weighed by strength, into one :class:`StopDiagnosis`.

Sources, strongest first: for a job nnwatch launched, what its launcher hands down (:class:`JobEvidence`:
the scheduler's state, a cancel, the job's output, its signal); a scheduler output file the lab keeps that
mentions the run; then the run folder (NaN losses, a full disk, the training log's tail). Among findings of
equal strength the more specific cause wins (a time limit over the exception it caused, a full disk over
a NaN loss). Nothing found gives ``unknown`` with the last lines written.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from monitor.runs.layout import RunLocation
from monitor.runs.merge import Curves
from monitor.runs.status import RunStatus
from monitor.runs.summary import RunSummary
from monitor.stops.causes import StopCause, StopDiagnosis, Strength
from monitor.stops.evidence import JobEvidence, job_findings
from monitor.stops.folder import read_folder
from monitor.stops.lab_outputs import matching_output
from monitor.stops.text import classify_text, last_lines

__all__ = ["SCHEDULER_OUTPUTS_ENV", "STOPPED", "diagnose", "with_stop_cause"]

#: Statuses of a run that stopped before its planned end.
STOPPED = frozenset({RunStatus.CRASHED, RunStatus.STALLED})
#: A folder of the lab's scheduler output files (``slurm-%j.out``) to match runs against (optional).
SCHEDULER_OUTPUTS_ENV = "NNWATCH_SCHEDULER_OUTPUTS"
#: Among findings of equal strength, the first cause here wins.
_SPECIFICITY = (StopCause.TIME_LIMIT, StopCause.PREEMPTED_OR_NODE_FAILURE, StopCause.CANCELLED,
                StopCause.CUDA_OOM, StopCause.DISK_FULL, StopCause.DATA_MISSING_OR_CORRUPT, StopCause.HOST_OOM,
                StopCause.NAN_LOSS, StopCause.WORKERS_DIED, StopCause.EXCEPTION, StopCause.UNKNOWN)


def _rank(finding: StopDiagnosis) -> tuple[int, int]:
    return (int(finding.strength), -_SPECIFICITY.index(finding.cause))


def diagnose(location: RunLocation, curves: Curves | None = None, *, job: JobEvidence | None = None,
             scheduler_outputs: str | os.PathLike[str] | None = None) -> StopDiagnosis:
    """The most likely reason this run stopped, with its evidence (call it for runs that did stop)."""
    findings: list[StopDiagnosis] = []
    if job is not None:
        findings.extend(job_findings(job))
    lab_text = ""
    if scheduler_outputs:
        matched = matching_output(Path(scheduler_outputs), location)
        if matched is not None:
            path, lab_text = matched
            found = classify_text(lab_text, f"scheduler output {path}", Strength.STRONG)
            if found is not None:
                findings.append(found)
    folder = read_folder(Path(location.path), curves)
    findings.extend(folder.findings)
    notes = tuple(note for note in folder.notes)
    if findings:
        best = max(findings, key=_rank)
        agreeing = [f.evidence for f in findings if f is not best and f.cause is best.cause and f.evidence
                    and f.evidence not in best.evidence]
        evidence = "\n".join([best.evidence, *agreeing[:1]])  # e.g. SLURM's state and the line it printed
        return replace(best, evidence=evidence, notes=best.notes + tuple(n for n in notes if n not in best.notes))
    output = job.output if job is not None and job.output.strip() else lab_text
    if output.strip():
        where = (job.output_path or job.source) if job is not None and job.output.strip() else "scheduler output"
        evidence, source = last_lines(output, 8), f"last lines of {where}"
    else:
        evidence = folder.log_tail or "(no log lines)"
        source = f"last lines of training log {folder.log_name}" if folder.log_name else "run folder"
    summary = "no known cause found"
    if job is not None and job.reason:
        summary += f"; the job says: {job.reason}"
    return StopDiagnosis(StopCause.UNKNOWN, evidence, source, Strength.WEAK, summary, notes)


def with_stop_cause(summary: RunSummary, location: RunLocation, curves: Curves | None = None, *,
                    job: JobEvidence | None = None) -> RunSummary:
    """``summary`` with ``stop_cause`` and ``stop_evidence`` filled for a stopped run, cleared otherwise.

    The lab's scheduler output folder comes from ``$NNWATCH_SCHEDULER_OUTPUTS`` when set.
    """
    if summary.status not in STOPPED:
        if summary.stop_cause is None and summary.stop_evidence is None:
            return summary
        return replace(summary, stop_cause=None, stop_evidence=None)
    found = diagnose(location, curves, job=job, scheduler_outputs=os.environ.get(SCHEDULER_OUTPUTS_ENV) or None)
    return replace(summary, stop_cause=found.cause.value, stop_evidence=found.evidence)
