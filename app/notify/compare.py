"""Has a running extension clearly fallen behind its parent at the same point of its schedule?

The comparison itself is the one the dashboard's parent-vs-extended view draws (EMA pseudo Dice at the same
fraction of schedule); :func:`extension_standing` and :func:`pairs` are the only places that reach for it, so
they are what to re-point when that rule moves. On top of it, "clearly behind" asks for a gap larger than a
margin at every sampled epoch over a recent stretch of the schedule, past its first part, and says how sure
that is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BehindCheck", "check_extension", "extension_standing", "pairs"]

MARGIN = 0.01  # EMA pseudo Dice: a gap below this is noise between two trainings of the same model
MIN_FRACTION = 0.2  # before a fifth of the schedule two runs differ by seed and warm-up more than by length
SPAN = 0.1  # the gap must hold over this stretch of the schedule (fractions)
SAMPLES = 8


def extension_standing(parent: pd.DataFrame, parent_planned: int | None, child: pd.DataFrame,
                       child_planned: int | None) -> Any:
    """The dashboard's comparison at the child's last epoch (``.fraction``, ``.delta``, ``.child_value``,
    ``.parent_value``), or None where it cannot be made."""
    from app.dashboard.compare_data import standing

    return standing(parent, parent_planned, child, child_planned)


def pairs(table: pd.DataFrame, jobs: Iterable[Any] = ()) -> dict[str, str]:
    """Extended run id → parent run id, as the dashboard pairs them (job registry, then trainer names)."""
    from app.dashboard.compare_data import extension_pairs

    return {child: parent for parent, child, _how in extension_pairs(table, jobs)}


@dataclass(frozen=True)
class BehindCheck:
    """The verdict on an extension against its parent."""

    behind: bool
    fraction: float  # of the extension's schedule, at its last epoch
    delta: float  # extension minus parent, EMA pseudo Dice, at that fraction
    worst: float  # the smallest gap over the checked stretch (the least behind)
    checked: int  # epochs compared
    sure: str  # "high" or "moderate"

    def sentence(self) -> str:
        where = "behind" if self.delta < 0 else "ahead of"
        text = (f"At {self.fraction:.0%} of its schedule the extension is {where} its parent by {abs(self.delta):.4f} "
                f"EMA pseudo Dice at the same fraction of schedule")
        if self.behind:
            text += (f", and was behind by at least {abs(self.worst):.4f} at each of {self.checked} epochs over the "
                     f"last {SPAN:.0%} of its schedule. Confidence: {self.sure}"
                     + (" (the gap is more than twice the margin of noise throughout)." if self.sure == "high" else
                        " (behind throughout, but by less than twice the margin of noise at times).")
                     + " Stopping it now saves the rest of its GPU-hours")
        return text + "."


def check_extension(parent: pd.DataFrame, parent_planned: int | None, child: pd.DataFrame,
                    child_planned: int | None, *, margin: float = MARGIN) -> BehindCheck | None:
    """Compare at up to :data:`SAMPLES` epochs of the last :data:`SPAN` of the child's schedule so far."""
    if not child_planned or child.empty:
        return None
    now = extension_standing(parent, parent_planned, child, child_planned)
    if now is None:
        return None
    if now.fraction < MIN_FRACTION:
        return BehindCheck(False, now.fraction, now.delta, now.delta, 1, "moderate")
    epochs = child["epoch"].to_numpy()
    first = (now.fraction - SPAN) * child_planned - 1
    window = epochs[epochs >= first]
    step = max(1, len(window) // SAMPLES)
    deltas = []
    for epoch in window[::-1][::step][:SAMPLES]:
        standing = extension_standing(parent, parent_planned, child[child["epoch"] <= epoch], child_planned)
        if standing is not None:
            deltas.append(standing.delta)
    if len(deltas) < 3:
        return BehindCheck(False, now.fraction, now.delta, now.delta, len(deltas), "moderate")
    worst = max(deltas)
    behind = worst < -margin
    sure = "high" if worst < -2 * margin else "moderate"
    return BehindCheck(behind, now.fraction, now.delta, worst, len(deltas), sure)
