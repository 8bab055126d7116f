"""Run status from files alone: running, stalled, crashed, finished or unknown.

A results tree says nothing directly about live processes, so status is inferred from what nnU-Net
writes: ``Training done.`` / ``checkpoint_final.pth`` / a final validation mean the run finished; a log
that stopped changing for much longer than an epoch takes means the process is gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RunStatus", "StatusInputs", "infer_status"]


class RunStatus:
    """The status values (plain strings in tables and JSON)."""

    RUNNING = "running"
    STALLED = "stalled"
    CRASHED = "crashed"
    FINISHED = "finished"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StatusInputs:
    """Everything status depends on, so the rule is a pure, testable function."""

    now: float
    last_update: float | None  # newest log mtime (seconds since the epoch)
    finished: bool  # Training done. / final checkpoint / final validation written
    epochs_completed: int
    planned_epochs: int | None
    typical_epoch_s: float  # NaN when unknown


def infer_status(inputs: StatusInputs) -> str:
    if inputs.finished:
        return RunStatus.FINISHED
    if inputs.last_update is None:
        return RunStatus.UNKNOWN
    typical = inputs.typical_epoch_s
    quiet_limit = max(600.0, 5 * typical) if math.isfinite(typical) else 1800.0
    if inputs.now - inputs.last_update <= quiet_limit:
        return RunStatus.RUNNING
    return RunStatus.CRASHED
