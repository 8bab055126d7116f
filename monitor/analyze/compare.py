"""The one rule that says how an extended run stands against its parent; every view states its answer.

A from-scratch run with a longer schedule is a stretched copy of its parent: nnU-Net's poly learning rate is a
function of epoch / planned epochs, so at epoch 700 of 2000 the extension is at a much higher learning rate than
its parent was at epoch 700 of 1000, and it is *expected* to be lower there. Comparing the two curves epoch by
epoch therefore says nothing. The rule compares what each schedule delivers at its end:

* both schedules ended: the EMA pseudo Dice at the end of each (the value behind ``checkpoint_final``);
* the extension still trains (or stopped early): "on track to beat the parent's final value?" Its end is
  projected by letting it follow the parent's curve from the same fraction of schedule, i.e. its value now
  plus what the parent still gained from that fraction to its end. It is on track exactly when it is above
  the parent at the same fraction.

How sure: the difference against the noise of the two EMA values (the epoch-to-epoch noise of the raw pseudo
Dice, robustly measured near each run's end, scaled by the EMA's variance factor). A projection is never more
than "likely".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.analyze.analyzer import frame_column
from monitor.analyze.result import verdict_is_final
from monitor.analyze.schedule import json_fields

if TYPE_CHECKING:
    import pandas as pd

    from monitor.runs.reader import RunReader

__all__ = ["COMPARISON_RULE", "Certainty", "ComparedRun", "ExtensionComparison", "Standing", "compare_extension",
           "compare_runs"]

COMPARISON_RULE = "end of schedule"
RULE_DESCRIPTION = (
    "Compares nnU-Net's EMA pseudo Dice at the end of each run's schedule (what checkpoint_final holds), not "
    "epoch by epoch: a longer schedule keeps a higher learning rate for longer and is expected to be lower at "
    "the same epoch. While the extended run has not finished its schedule, its end is projected by letting it "
    "follow the parent's curve from the same fraction of schedule."
)
_EMA_ALPHA = 0.1  # nnU-Net's EMA weight of the newest epoch
_EMA_SD_FACTOR = math.sqrt(_EMA_ALPHA / (2.0 - _EMA_ALPHA))  # SD of an EMA of white noise / SD of the noise
_NOISE_EPOCHS = 300  # epochs at each run's end whose noise is measured
_MIN_FRACTION = 0.05  # before 5 % of its schedule an extension is still in its first rise


class Standing(str, Enum):
    """The answer: the extension is (or is on track to end) ahead of its parent, behind it, or unknown."""

    AHEAD = "ahead"
    BEHIND = "behind"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class Certainty(str, Enum):
    """How sure: the difference beyond twice its noise (clear), beyond it once (likely), or within it."""

    CLEAR = "clear"
    LIKELY = "likely"
    TOO_CLOSE = "too_close"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ComparedRun:
    """What the rule needs of one run: its EMA pseudo Dice per epoch, raw mean (for the noise), schedule."""

    run_id: str
    epochs: np.ndarray
    ema: np.ndarray
    mean: np.ndarray
    planned_epochs: int | None
    status: str  # the run's status: finished, running, stalled, crashed, unknown

    @classmethod
    def from_frame(cls, run_id: str, frame: pd.DataFrame, planned_epochs: int | None, status: str) -> ComparedRun:
        """From a per-epoch frame (``epoch``, ``ema_fg_dice``, ``mean_fg_dice``) as the run reader builds it."""
        return cls(run_id, frame["epoch"].to_numpy(dtype=float) if "epoch" in frame.columns else np.zeros(0),
                   frame_column(frame, "ema_fg_dice"), frame_column(frame, "mean_fg_dice"), planned_epochs,
                   str(status))

    @property
    def epochs_completed(self) -> int:
        return int(self.epochs[-1]) + 1 if self.epochs.size else 0

    @property
    def ended(self) -> bool:
        """Its schedule has ended (the same test as a final verdict)."""
        return verdict_is_final(self.status, self.epochs_completed, self.planned_epochs)

    def valid(self) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(self.ema)
        return self.epochs[ok], self.ema[ok]

    def noise(self) -> float | None:
        """SD of the EMA at the end: robust epoch-to-epoch noise of the raw mean (MAD of differences) × the EMA
        factor. Dips and the slow trend barely move a median of differences."""
        tail = self.mean[np.isfinite(self.mean)][-_NOISE_EPOCHS:]
        if tail.size < 10:
            return None
        d = np.diff(tail)
        sd = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)
        return sd * _EMA_SD_FACTOR


@dataclass(frozen=True)
class ExtensionComparison:
    """The rule's answer for one parent → extension pair: what was compared, the difference, how sure, and the
    one sentence every view shows (``statement``). ``to_dict`` is its JSON."""

    rule: str
    rule_description: str
    question: str
    parent_run_id: str
    child_run_id: str
    parent_value: float | None  # the parent's EMA pseudo Dice at its end (where it stopped, if it stopped)
    child_value: float | None  # the extension's at its end, or its projected end while it trains
    difference: float | None  # child_value − parent_value
    noise: float | None  # SD of that difference
    standing: Standing
    certainty: Certainty
    projected: bool  # child_value is a projection (the extension has not ended its schedule)
    child_fraction: float | None  # how far through its schedule the extension is
    child_now: float | None  # its EMA now
    parent_at_fraction: float | None  # the parent's EMA at the same fraction of schedule
    statement: str

    @property
    def fell_behind(self) -> bool:
        """Behind its parent (or on track to end behind it) beyond the noise: worth telling someone."""
        return self.standing is Standing.BEHIND and self.certainty in (Certainty.CLEAR, Certainty.LIKELY)

    def to_dict(self) -> dict[str, Any]:
        return {**json_fields(self), "fell_behind": self.fell_behind}


def _certainty(difference: float, noise: float | None, projected: bool) -> Certainty:
    if noise is None or noise <= 0:
        return Certainty.LIKELY if abs(difference) > 0 else Certainty.TOO_CLOSE
    ratio = abs(difference) / noise
    if ratio < 1.0:
        return Certainty.TOO_CLOSE
    return Certainty.CLEAR if ratio >= 2.0 and not projected else Certainty.LIKELY


def _sure(certainty: Certainty) -> str:
    return {Certainty.CLEAR: "clearly", Certainty.LIKELY: "probably",
            Certainty.TOO_CLOSE: "within the noise, too close to call"}.get(certainty, "")


def _noise_text(noise: float | None) -> str:
    return "" if noise is None else f" (noise ±{noise:.4f})"


def compare_extension(parent: ComparedRun, child: ComparedRun) -> ExtensionComparison:
    """Apply the rule (see the module docstring) to one parent and its extended run."""
    p_ep, p_ema = parent.valid()
    c_ep, c_ema = child.valid()
    question = ("Did the extended schedule end higher than its parent?" if child.ended else
                "Is the extended run on track to beat its parent's final value?")
    base: dict[str, Any] = {"rule": COMPARISON_RULE, "rule_description": RULE_DESCRIPTION, "question": question,
                            "parent_run_id": parent.run_id, "child_run_id": child.run_id}

    def unknown(why: str) -> ExtensionComparison:
        return ExtensionComparison(**base, parent_value=None, child_value=None, difference=None, noise=None,
                                   standing=Standing.UNKNOWN, certainty=Certainty.UNKNOWN, projected=not child.ended,
                                   child_fraction=None, child_now=None, parent_at_fraction=None,
                                   statement=f"Not decided: {why} Rule: {COMPARISON_RULE}.")

    if not p_ep.size or not c_ep.size:
        return unknown("one of the two runs has no EMA pseudo Dice yet.")
    parent_value = float(p_ema[-1])
    parent_end = "final" if parent.ended else "last (it stopped early)"
    noises = [n for n in (parent.noise(), child.noise()) if n is not None]
    noise = math.sqrt(sum(n * n for n in noises)) if noises else None
    if child.ended:
        child_value = float(c_ema[-1])
        diff = child_value - parent_value
        certainty = _certainty(diff, noise, False)
        standing = Standing.AHEAD if diff > 0 else Standing.BEHIND
        where = "above" if diff > 0 else "below"
        statement = (f"{standing.value.capitalize()}, {_sure(certainty)}: the extended run ended at {child_value:.4f} "
                     f"EMA pseudo Dice, {abs(diff):.4f} {where} its parent's {parent_end} {parent_value:.4f}"
                     f"{_noise_text(noise)}; rule: {COMPARISON_RULE}.")
        return ExtensionComparison(**base, parent_value=parent_value, child_value=child_value, difference=diff,
                                   noise=noise, standing=standing, certainty=certainty, projected=False,
                                   child_fraction=1.0, child_now=child_value, parent_at_fraction=parent_value,
                                   statement=statement)
    if not parent.planned_epochs or not child.planned_epochs:
        return unknown("the schedule length of one run is unknown, so its end cannot be projected.")
    fraction = float(c_ep[-1] + 1) / child.planned_epochs
    p_frac = (p_ep + 1) / parent.planned_epochs
    if fraction < max(_MIN_FRACTION, float(p_frac[0])):
        return unknown(f"the extended run is at {fraction:.0%} of its schedule, too early to project its end.")
    if fraction > float(p_frac[-1]):
        return unknown(f"the parent stopped at {float(p_frac[-1]):.0%} of its schedule, before the "
                       f"{fraction:.0%} the extended run has reached: nothing to compare at the same fraction.")
    child_now = float(c_ema[-1])
    parent_there = float(np.interp(fraction, p_frac, p_ema))
    projected_end = min(1.0, max(0.0, child_now + parent_value - parent_there))
    diff = projected_end - parent_value
    certainty = _certainty(diff, noise, True)
    standing = Standing.AHEAD if diff > 0 else Standing.BEHIND
    answer = {Standing.AHEAD: "Yes", Standing.BEHIND: "No"}[standing]
    stopped = child.status not in ("running", "stalled")
    at = f"where it stopped, at {fraction:.0%} of its schedule," if stopped else f"at {fraction:.0%} of its schedule"
    statement = (f"{answer}, {_sure(certainty)}{_noise_text(noise)}: {at} the extended run's EMA pseudo Dice is "
                 f"{child_now:.4f}, {abs(child_now - parent_there):.4f} "
                 f"{'above' if child_now > parent_there else 'below'} the parent's at the same fraction "
                 f"({parent_there:.4f}); following the parent's curve from there it would end near "
                 f"{projected_end:.4f}, "
                 f"{'above' if diff > 0 else 'below'} the parent's {parent_end} {parent_value:.4f}; rule: "
                 f"{COMPARISON_RULE}.")
    return ExtensionComparison(**base, parent_value=parent_value, child_value=projected_end, difference=diff,
                               noise=noise, standing=standing, certainty=certainty, projected=True,
                               child_fraction=fraction, child_now=child_now, parent_at_fraction=parent_there,
                               statement=statement)


def _compared(run: RunReader | str | os.PathLike[str]) -> ComparedRun:
    from monitor.runs.reader import RunReader, load_run

    reader = run if isinstance(run, RunReader) else load_run(run)
    curves = reader.curves()
    return ComparedRun(reader.location.run_id, np.asarray(curves.epoch, dtype=float),
                       np.asarray(curves.ema_fg_dice, dtype=float), np.asarray(curves.mean_fg_dice, dtype=float),
                       reader.planned_epochs()[0], str(reader.status().value))


def compare_runs(parent: RunReader | str | os.PathLike[str],
                 child: RunReader | str | os.PathLike[str]) -> ExtensionComparison:
    """The rule on two runs read from disk (fold folders or readers): parent first, then its extension."""
    return compare_extension(_compared(parent), _compared(child))

