"""The analyzer's result: the verdict, the fitted trend line and the typed :class:`Analysis` that carries both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from monitor.analyze.schedule import ScheduleOption, json_fields, json_value

__all__ = ["Analysis", "FitLine", "Verdict"]


class Verdict(str, Enum):
    """The trend of the validation pseudo Dice at the end of the run (or so far, for a running one)."""

    IMPROVING = "improving"
    PLATEAU = "plateau"
    DECLINING = "declining"
    INSUFFICIENT_DATA = "insufficient_data"

    def __str__(self) -> str:
        return self.value


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

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict in field order, so the ten contract keys (the first ten fields) come first."""
        return json_fields(self)
