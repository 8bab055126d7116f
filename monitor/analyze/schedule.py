"""What nnU-Net's learning-rate schedule says about a run: where annealing starts, how long it was
planned, what an epoch costs, and what a longer from-scratch schedule might add.

nnU-Net's poly schedule ``lr = lr0·(1 - epoch/N)^0.9`` ends in an annealing phase where pseudo Dice
usually rises once more; a longer schedule ends with the same phase and stretches the whole curve
(nnU-Net issue #2474), so only the trend *before* annealing can suggest that more epochs buy Dice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np

__all__ = [
    "ScheduleOption",
    "anneal_start_epoch",
    "extra_gain_epochs",
    "json_fields",
    "json_value",
    "median_epoch_seconds",
    "poly_anneal_fraction",
    "poly_schedule",
]


@dataclass(frozen=True)
class ScheduleOption:
    """One from-scratch schedule length: projected Dice gain range (extrapolation), cost, and verdict."""

    epochs: int
    projected_gain: tuple[float, float] | None
    gpu_hours: float | None  # device-hours (GPU or CPU, see ``Analysis.hours_unit``)
    worth_it: bool
    why_not: str | None = None  # why it is not worth it, in words; None when it is (or nothing was projected)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return json_fields(self)


def json_value(value: Any) -> Any:
    """``value`` as strict JSON data: enums by value, tuples as lists, numpy scalars as Python numbers,
    non-finite floats as ``None`` (JSON has no NaN), objects with a ``to_dict`` by it."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


def json_fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, in declaration order, as :func:`json_value`."""
    return {field.name: json_value(getattr(obj, field.name)) for field in fields(obj)}


def poly_schedule(epochs: np.ndarray, lr: np.ndarray, exponent: float) -> tuple[float | None, int | None]:
    """Initial learning rate and schedule length implied by the run's own lr column.

    Under ``lr = lr0·(1 - e/N)^p`` the transform ``lr^(1/p) = lr0^(1/p)·(1 - e/N)`` is a straight line in
    the epoch, so one least-squares line gives ``lr0`` (its intercept) and ``N`` (where it hits zero),
    from any stretch of the run, a log resumed mid-run included. If the line does not fit (a custom
    schedule), only ``lr0`` is returned: the first logged lr when the log starts at epoch 0, else the
    largest one.
    """
    ok = np.isfinite(lr) & (lr >= 0)
    if int(ok.sum()) < 3:
        return None, None
    e, rate = epochs[ok].astype(float), lr[ok]
    u = rate ** (1.0 / exponent)
    ec = e - e.mean()
    sxx = float(ec @ ec)
    if sxx > 0 and int(np.sum(rate > 0)) >= 5:
        slope = float(ec @ (u - u.mean())) / sxx
        intercept = float(u.mean()) - slope * float(e.mean())
        resid = u - (intercept + slope * e)
        # A falling line that fits to within 1 % of lr0: nnU-Net's poly schedule.
        if slope < 0 and intercept > 0 and float(np.median(np.abs(resid))) <= 0.01 * intercept:
            return float(intercept**exponent), round(-intercept / slope)
    fallback = float(rate[0]) if e[0] <= 2 else float(np.max(rate))
    return (fallback if fallback > 0 else None), None


def anneal_start_epoch(
    epochs: np.ndarray,
    lr: np.ndarray,
    lr0: float | None,
    planned: int | None,
    fraction: float,
    exponent: float,
) -> tuple[int | None, str]:
    """First epoch whose learning rate is below ``fraction · lr0``, and where that answer came from.

    The run's own lr column is preferred (it is what the optimiser actually used, custom schedules
    included); the poly formula with the planned length is the fallback when lr was not logged. Returns
    ``(None, "none")`` when neither is available, or ``(None, "lr")`` when the logged lr never got there.
    """
    if lr0 is not None:
        ok = np.isfinite(lr)
        if ok.sum() >= 3:
            below = ok & (lr <= fraction * lr0)
            if below.any():
                first = int(np.argmax(below))
                if first == int(np.argmax(ok)) and planned:  # the log starts inside the annealing phase
                    return min(int(epochs[first]), _formula_start(planned, fraction, exponent)), "schedule"
                return int(epochs[first]), "lr"
            if planned is None or epochs[ok][-1] >= planned - 1:
                return None, "lr"
    if planned:
        return _formula_start(planned, fraction, exponent), "schedule"
    return None, "none"


def poly_anneal_fraction(fraction: float, exponent: float) -> float:
    """Where in a poly schedule the learning rate falls to ``fraction·lr0``, as a fraction of its length."""
    return 1.0 - float(fraction) ** (1.0 / exponent)


def _formula_start(planned: int, fraction: float, exponent: float) -> int:
    """First epoch of the poly schedule with ``lr <= fraction·lr0``."""
    return int(math.ceil(planned * poly_anneal_fraction(fraction, exponent)))


def median_epoch_seconds(times: np.ndarray, ends: np.ndarray | None) -> float | None:
    """Median wall time of one epoch: the logged epoch times, else the spacing of epoch end stamps
    (``datetime64``, NaT where unknown).

    The median ignores the slow first epoch (compilation, dataset unpacking) and a stray long epoch when
    the node was shared, so it predicts what a fresh run on the same hardware costs per epoch.
    """
    finite = times[np.isfinite(times) & (times > 0)]
    if finite.size:
        return float(np.median(finite))
    if ends is not None and len(ends) >= 3:
        stamps = ends.astype("datetime64[us]")
        known = ~np.isnat(stamps)
        deltas = np.diff(stamps.astype(np.int64)).astype(float) / 1e6
        deltas = deltas[known[1:] & known[:-1]]
        deltas = deltas[deltas > 0]
        if deltas.size:
            return float(np.median(deltas))
    return None


def extra_gain_epochs(timescale: float | None, extra_epochs: float, window: float) -> float:
    """How many epochs at the pre-annealing slope the extra epochs of a longer schedule are worth.

    With saturation ``D = a - b·exp(-e/T)`` the slope measured over a window centred ``window/2`` before
    annealing starts has already decayed by ``exp(-window/2T)`` at that point, and the next ``Δ`` epochs
    add ``slope·T·(1 - exp(-Δ/T))``. Without a timescale the curve is treated as linear (``Δ``), which
    for a concave learning curve is an upper bound.
    """
    if extra_epochs <= 0:
        return 0.0
    if timescale is None or not math.isfinite(timescale) or timescale <= 0:
        return extra_epochs
    t = timescale
    return t * math.exp(-window / (2.0 * t)) * (1.0 - math.exp(-extra_epochs / t))
