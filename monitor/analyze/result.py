"""The analyzer's result: the verdict, the fitted trend line and the typed :class:`Analysis` that carries both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from monitor.analyze.schedule import ScheduleOption, json_fields, json_value

__all__ = ["Analysis", "FitLine", "Trend", "Verdict", "verdict_is_final"]


class Verdict(str, Enum):
    """The trend of the validation pseudo Dice at the end of the run (or so far, for a running one)."""

    IMPROVING = "improving"
    PLATEAU = "plateau"
    DECLINING = "declining"
    INSUFFICIENT_DATA = "insufficient_data"

    def __str__(self) -> str:
        return self.value


class Trend(str, Enum):
    """What the fitted slope says in words, finer than the verdict: a slope whose interval excludes 0 but
    that stays under the practical threshold is a plateau that is still rising (or falling) slowly."""

    RISING = "rising"
    RISING_SLOWLY = "rising_slowly"
    FLAT = "flat"
    FALLING_SLOWLY = "falling_slowly"
    FALLING = "falling"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


def verdict_is_final(status: str, epochs_completed: int, planned_epochs: int | None) -> bool:
    """Whether a run's verdict is final: its schedule has ended (finished, or every planned epoch ran).

    A running run's verdict holds only so far, a run that stopped early only where it stopped; the run
    table (which has these three columns) and :attr:`Analysis.final` both answer with this function.
    """
    status = str(status)
    if status == "finished":
        return True
    if status in ("running", "stalled") or not planned_epochs:
        return False
    return epochs_completed >= int(planned_epochs)


@dataclass(frozen=True)
class FitLine:
    """The fitted line over the window, so a chart can draw exactly what the verdict was based on."""

    first_epoch: int
    last_epoch: int
    intercept: float  # fitted value at ``first_epoch``
    slope_per_epoch: float

    def value_at(self, epoch: float) -> float:
        """Fitted value at ``epoch``."""
        return self.intercept + self.slope_per_epoch * (epoch - self.first_epoch)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with both end points so a chart can draw a segment without arithmetic."""
        return {**json_fields(self), "start_value": json_value(self.value_at(self.first_epoch)),
                "end_value": json_value(self.value_at(self.last_epoch))}


@dataclass(frozen=True)
class Analysis:
    """The analyzer's answer for one run; ``to_dict`` is what the CLI and dashboard serialise."""

    verdict: Verdict
    slope_per_100_epochs: float | None
    slope_ci95: tuple[float, float] | None
    window: tuple[int, int] | None
    series: str
    min_practical_gain: float
    projected_gain_2000: tuple[float, float] | None
    gpu_hours_2000: float | None
    reason: str
    epochs_completed: int
    schedules: tuple[ScheduleOption, ...] = ()
    recommended_epochs: int | None = None
    fit: FitLine | None = None
    explanation: str = ""
    planned_epochs: int | None = None
    status: str = "finished"  # "finished" | "running" | "stopped"
    anneal_start_epoch: int | None = None
    pre_anneal_slope_per_100_epochs: float | None = None
    pre_anneal_ci95: tuple[float, float] | None = None
    trend: Trend = Trend.UNKNOWN
    min_practical_gain_per_100_epochs: float | None = None  # the threshold in slope units for this schedule
    final: bool = True  # the schedule has ended (see verdict_is_final); else the verdict is provisional
    device: str | None = None  # "cuda:0", "cpu", … from debug.json; sets the unit of the cost
    hours_unit: str = "GPU-hours"  # "CPU-hours" on a CPU device

    @property
    def provisional_note(self) -> str | None:
        """"so far" (running), "where it stopped" (stopped before its schedule ended), None when final."""
        if self.final:
            return None
        return "so far" if self.status == "running" else "where it stopped"

    @property
    def recommends_longer_schedule(self) -> bool:
        """The advice to extend: a final "improving" verdict with a projected gain worth the cost."""
        if not self.final or self.verdict.value != "improving":
            return False
        return self.recommended_epochs is not None or any(s.worth_it for s in self.schedules)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict in field order, so the ten contract keys (the first ten fields) come first."""
        return json_fields(self)


@dataclass(frozen=True)
class VerdictRow:
    """A run's verdict as every run table carries it (the scan, the dashboard, the run index), and the run
    status it was judged at: a stored verdict is reused only while the run's status is still ``status``."""

    verdict: str
    reason: str
    label: str  # the badge's words: "plateau, rising slowly (so far)"
    final: bool  # the schedule has ended (verdict_is_final)
    status: str

    def columns(self) -> dict[str, Any]:
        """The run table's verdict columns."""
        return {"verdict": self.verdict, "verdict_reason": self.reason, "verdict_label": self.label,
                "verdict_final": self.final}

