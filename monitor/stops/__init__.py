"""Why a run stopped before its planned end: a typed classifier over the job's output, the scheduler's state
and the run folder, with one paragraph of advice per cause.

``diagnose(location, curves, job=JobEvidence(...))`` gives a :class:`StopDiagnosis`; ``with_stop_cause`` fills
a :class:`~monitor.runs.summary.RunSummary`'s ``stop_cause`` / ``stop_evidence`` for crashed and stalled runs;
``classify_text`` classifies console output alone.
"""

from monitor.stops.causes import StopCause, StopDiagnosis, Strength
from monitor.stops.diagnose import SCHEDULER_OUTPUTS_ENV, STOPPED, diagnose, with_stop_cause
from monitor.stops.evidence import JobEvidence
from monitor.stops.text import classify_text

__all__ = [
    "SCHEDULER_OUTPUTS_ENV",
    "STOPPED",
    "JobEvidence",
    "StopCause",
    "StopDiagnosis",
    "Strength",
    "classify_text",
    "diagnose",
    "with_stop_cause",
]
