"""Run status from files alone: running, stalled, crashed, finished or unknown, plus an ETA and a dead-Dice flag.

``Training done.``, a final checkpoint or a final validation mean finished. nnU-Net writes its log only at
epoch boundaries, so silence is measured in typical epochs (the median time between epoch ends, which includes
the checkpoint saves): **stalled** after ``STALL_FACTOR`` of them, **crashed** after ``CRASH_FACTOR``, each
with a floor because one save on a busy file server can outlast many seconds-long epochs. Before the first
epoch (start-up can be long) the ``UNKNOWN_*`` limits apply. Files cannot tell a hung process from a dead one:
where the caller knows (``alive``), a live job is never crashed and a dead one is crashed at once.
Everything is a pure function of :class:`StatusInputs`, so the watcher re-evaluates it with a new ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

__all__ = [
    "CRASH_FACTOR",
    "CRASH_FLOOR_S",
    "DEAD_DICE_MIN_EPOCHS",
    "RECENT_EPOCHS",
    "STALL_FACTOR",
    "STALL_FLOOR_S",
    "RunAssessment",
    "RunStatus",
    "StatusInputs",
    "assess",
    "dead_dice_problem",
    "is_dead_dice",
    "typical_epoch_seconds",
]

STALL_FACTOR = 3.0
STALL_FLOOR_S = 300.0
CRASH_FACTOR = 10.0
CRASH_FLOOR_S = 1800.0
UNKNOWN_STALL_S = 1800.0
UNKNOWN_CRASH_S = 7200.0
RECENT_EPOCHS = 20
#: Mean pseudo Dice 0 or NaN for this many trailing epochs: not learning (nnU-Net issues #2318, #2734). Rare
#: structures can sit at 0 for the first few epochs, so fewer epochs are not judged.
DEAD_DICE_MIN_EPOCHS = 10
#: nnU-Net logs 4 decimals; a mean pseudo Dice below this is "0" for every practical purpose.
DEAD_DICE_TOLERANCE = 1e-3


class RunStatus(str, Enum):
    """The status of a run; a ``str`` so tables, JSON and comparisons with plain strings see its value."""

    RUNNING = "running"
    STALLED = "stalled"
    CRASHED = "crashed"
    FINISHED = "finished"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StatusInputs:
    """Everything status depends on; ``alive``: the job is alive (True), known dead (False) or unknown (None)."""

    now: float
    last_update: float | None  # newest log mtime (seconds since the epoch)
    finished: bool  # Training done. / final checkpoint / final validation written
    epochs_completed: int
    planned_epochs: int | None
    typical_epoch_s: float  # NaN when unknown
    last_epoch: int | None = None  # number of the last completed epoch (resumed runs: not epochs_completed - 1)
    last_epoch_end: float | None = None  # when it ended (seconds since the epoch)
    recent_mean_fg_dice: tuple[float, ...] = ()  # the last ≤ RECENT_EPOCHS mean pseudo Dice values
    alive: bool | None = None


@dataclass(frozen=True)
class RunAssessment:
    """Status plus what a UI shows next to it; ``next_change_at`` is when the clock alone can change it."""

    status: RunStatus
    reason: str
    eta_s: float | None = None  # seconds until the last planned epoch ends (running runs only)
    eta: float | None = None  # that moment, seconds since the epoch
    dead_dice: bool = False
    stall_after_s: float = math.nan
    crash_after_s: float = math.nan
    next_change_at: float | None = None


def typical_epoch_seconds(epoch: Sequence[int] | np.ndarray, epoch_time_s: Sequence[float] | np.ndarray,
                          epoch_end_s: Sequence[float] | np.ndarray | None = None) -> float:
    """Median cadence of the last RECENT_EPOCHS consecutive epochs, else median logged epoch time, else NaN.
    Gaps across a resume (epoch numbers not consecutive) are skipped: they measure downtime, not speed."""
    epochs = np.asarray(epoch, dtype=np.float64)[-(RECENT_EPOCHS + 1):]
    if epoch_end_s is not None and epochs.size >= 6:
        ends = np.asarray(epoch_end_s, dtype=np.float64)[-(RECENT_EPOCHS + 1):]
        gaps = np.diff(ends)
        valid = (np.diff(epochs) == 1) & np.isfinite(gaps) & (gaps > 0)
        if valid.sum() >= 5:
            return float(np.median(gaps[valid]))
    times = np.asarray(epoch_time_s, dtype=np.float64)[-RECENT_EPOCHS:]
    times = times[np.isfinite(times) & (times > 0)]
    return float(np.median(times)) if times.size else math.nan


def is_dead_dice(recent_mean_fg_dice: Sequence[float]) -> bool:
    """True when the last DEAD_DICE_MIN_EPOCHS+ epochs (of the last RECENT_EPOCHS) all had mean Dice 0 or NaN."""
    window = [float(v) for v in list(recent_mean_fg_dice)[-RECENT_EPOCHS:]]
    if len(window) < DEAD_DICE_MIN_EPOCHS:
        return False
    return all(math.isnan(v) or abs(v) < DEAD_DICE_TOLERANCE for v in window)


def dead_dice_problem(n_epochs: int) -> str:
    """The problem string for a dead run (shown in the run table next to the other problems)."""
    return (f"pseudo Dice stuck at 0 or NaN for the last {min(n_epochs, RECENT_EPOCHS)} epochs: the run is not "
            "learning (nnU-Net issues #2318, #2734: check the labels, lower the learning rate)")


def _limits(typical: float) -> tuple[float, float]:
    if not math.isfinite(typical) or typical <= 0:
        return UNKNOWN_STALL_S, UNKNOWN_CRASH_S
    return max(STALL_FLOOR_S, STALL_FACTOR * typical), max(CRASH_FLOOR_S, CRASH_FACTOR * typical)


def _eta(inputs: StatusInputs, typical: float) -> tuple[float | None, float | None]:
    """Remaining epochs × typical epoch, minus the part of the current epoch already run."""
    if inputs.planned_epochs is None or not math.isfinite(typical) or typical <= 0:
        return None, None
    done = inputs.last_epoch + 1 if inputs.last_epoch is not None else inputs.epochs_completed
    remaining = max(inputs.planned_epochs - done, 0)
    started = inputs.last_epoch_end if inputs.last_epoch_end is not None else inputs.last_update
    elapsed = min(max(inputs.now - started, 0.0), typical) if started is not None else 0.0
    eta_s = max(remaining * typical - elapsed, 0.0) if remaining else 0.0
    return eta_s, inputs.now + eta_s


def assess(inputs: StatusInputs) -> RunAssessment:
    """Status, reason, ETA and dead-Dice flag for one run at ``inputs.now``."""
    typical = inputs.typical_epoch_s
    stall_after, crash_after = _limits(typical)
    base = RunAssessment(RunStatus.UNKNOWN, "no training log yet", dead_dice=is_dead_dice(inputs.recent_mean_fg_dice),
                         stall_after_s=stall_after, crash_after_s=crash_after)
    if inputs.finished:
        return replace(base, status=RunStatus.FINISHED,
                       reason="final checkpoint, 'Training done.' or final validation found")
    if inputs.alive is False:
        return replace(base, status=RunStatus.CRASHED, reason="its job is no longer alive and the run did not finish")
    if inputs.last_update is None:
        if inputs.alive:
            return replace(base, status=RunStatus.RUNNING, reason="its job is alive; no log written yet")
        return base
    quiet = inputs.now - inputs.last_update
    planned_done = inputs.planned_epochs is not None and inputs.last_epoch is not None \
        and inputs.last_epoch + 1 >= inputs.planned_epochs
    if quiet <= stall_after:
        eta_s, eta = _eta(inputs, typical)
        reason = "all planned epochs ran; final checkpoint and validation pending" if planned_done \
            else "log advancing"
        return replace(base, status=RunStatus.RUNNING, reason=reason, eta_s=eta_s, eta=eta,
                       next_change_at=inputs.last_update + stall_after)
    minutes = quiet / 60
    if inputs.alive or quiet <= crash_after:
        why = "its job is alive but " if inputs.alive else ""
        return replace(base, status=RunStatus.STALLED,
                       reason=f"{why}no log line for {minutes:.0f} min (stalled after {stall_after / 60:.0f} min)",
                       next_change_at=None if inputs.alive else inputs.last_update + crash_after)
    where = "after all planned epochs, without a final checkpoint" if planned_done \
        else "before its planned epochs, without 'Training done.'"
    return replace(base, status=RunStatus.CRASHED, reason=f"stopped {where}; silent for {minutes:.0f} min")

