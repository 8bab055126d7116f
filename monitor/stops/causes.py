"""Why a run stopped: the classes, how sure a finding is, and the typed answer every view shows.

A :class:`StopDiagnosis` names one :class:`StopCause`, quotes a few lines of evidence, says where they came
from and how strong that source is. Causes are ``str`` enums: their values are what JSON and the run table
carry (``stop_cause``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from monitor.stops.advice import ADVICE, LABELS

__all__ = ["StopCause", "StopDiagnosis", "Strength"]


class StopCause(str, Enum):
    """The most likely reason a run stopped before its planned end."""

    CUDA_OOM = "cuda_oom"
    HOST_OOM = "host_oom"
    WORKERS_DIED = "workers_died"
    NAN_LOSS = "nan_loss"
    TIME_LIMIT = "time_limit"
    PREEMPTED_OR_NODE_FAILURE = "preempted_or_node_failure"
    CANCELLED = "cancelled"
    DISK_FULL = "disk_full"
    DATA_MISSING_OR_CORRUPT = "data_missing_or_corrupt"
    EXCEPTION = "exception"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """A short human name ("CUDA out of memory")."""
        return LABELS[self.value]

    @property
    def advice(self) -> str:
        """One paragraph on what to do, from nnU-Net's documentation and its maintainers' answers."""
        return ADVICE[self.value]

    def stopped(self, evidence: str = "") -> str:
        """One line for a run that stopped of this cause: ``stopped because of NaN or inf loss: <the line that
        shows it>``; of an unknown cause, where the log ends (all its evidence then)."""
        last = evidence.strip().splitlines()[-1:]
        if self is StopCause.UNKNOWN:
            return f"stopped, {self.label}" + (f"; the log ends: {last[0].strip()}" if last else "")
        return f"stopped because of {self.label}" + (f": {last[0].strip()}" if last else "")


class Strength(IntEnum):
    """How much a finding can be trusted, by its source: the job's own record beats signs in the run folder."""

    WEAK = 1  # indirect signs only (the last log lines, nothing recognised)
    MEDIUM = 2  # the run folder or training log shows it (NaN losses, a full disk), or a bare signal
    STRONG = 3  # the job's own output or the scheduler says so

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class StopDiagnosis:
    """One answer: the cause, the lines that show it, where they came from and how strong that source is."""

    cause: StopCause
    evidence: str  # a few lines, as written by the training, the job or the scheduler
    source: str  # which file or scheduler said so ("job output …/job.log", "SLURM state", "training log …")
    strength: Strength
    summary: str  # one line for tables and notifications
    notes: tuple[str, ...] = field(default=())  # further signs (Dice stuck at 0, epoch time exploded, …)

    @property
    def advice(self) -> str:
        return self.cause.advice

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the enums as their values)."""
        return {"cause": self.cause.value, "label": self.cause.label, "summary": self.summary,
                "evidence": self.evidence, "source": self.source, "strength": str(self.strength),
                "notes": list(self.notes), "advice": self.advice}
